//! Bounded channels between cores (Seastar's `invoke_on`, glommio's shared channels): every
//! ordered pair of cores has its own bounded single-producer queue, so a full queue pushes back
//! on exactly the sender that fills it. A receiving core parks with its runtime's waker; a
//! sender wakes it only when it is parked (one atomic swap otherwise).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::limits::{CORES_MAX, MESH_CAPACITY_PER_PAIR_MAX};

/// Where a core parks while its queues are empty.
#[derive(Default)]
struct Parking {
    parked: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Parking {
    fn wake(&self) {
        // Pairs with the fence in `park`: either the receiver sees the message on its
        // re-check, or this sees `parked` set.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::AcqRel) {
            let waker = self.waker.lock().expect("mesh waker").take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    fn park(&self, waker: &Waker) {
        let mut slot = self.waker.lock().expect("mesh waker");
        match slot.as_ref() {
            Some(parked) if parked.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        self.parked.store(true, Ordering::SeqCst);
        drop(slot);
        fence(Ordering::SeqCst);
    }
}

/// One core's end of the mesh: it sends to any core and receives from all.
pub struct MeshEndpoint<M> {
    core_index: usize,
    /// Indexed by target core.
    senders: Vec<SyncSender<M>>,
    /// Indexed by source core.
    receivers: Vec<Receiver<M>>,
    /// Indexed by core.
    parkings: Arc<Vec<Parking>>,
    /// Source core to look at first, rotated so no sender starves the others.
    next_source: Cell<usize>,
}

/// `cores` endpoints; endpoint i belongs to core i. Each ordered pair of cores (including a
/// core to itself) gets a queue of `capacity_per_pair` messages.
pub fn mesh<M: Send + 'static>(cores: usize, capacity_per_pair: usize) -> Vec<MeshEndpoint<M>> {
    assert!(cores > 0 && cores <= CORES_MAX, "mesh of {cores} cores");
    assert!(capacity_per_pair > 0 && capacity_per_pair <= MESH_CAPACITY_PER_PAIR_MAX);
    let parkings: Arc<Vec<Parking>> = Arc::new((0..cores).map(|_| Parking::default()).collect());
    // queues[from][to]
    let mut senders: Vec<Vec<SyncSender<M>>> = (0..cores).map(|_| Vec::new()).collect();
    let mut receivers: Vec<Vec<Receiver<M>>> = (0..cores).map(|_| Vec::new()).collect();
    for from_senders in senders.iter_mut() {
        for to_receivers in receivers.iter_mut() {
            let (sender, receiver) = sync_channel(capacity_per_pair);
            from_senders.push(sender);
            to_receivers.push(receiver);
        }
    }
    senders
        .into_iter()
        .zip(receivers)
        .enumerate()
        .map(|(core_index, (senders, receivers))| MeshEndpoint {
            core_index,
            senders,
            receivers,
            parkings: parkings.clone(),
            next_source: Cell::new(0),
        })
        .collect()
}

impl<M> MeshEndpoint<M> {
    pub fn core_index(&self) -> usize {
        self.core_index
    }

    pub fn core_count(&self) -> usize {
        self.senders.len()
    }

    /// Queues `msg` for `to_core`; gives it back when that queue is full (or the core is gone).
    pub fn send(&self, to_core: usize, msg: M) -> Result<(), M> {
        assert!(
            to_core < self.senders.len(),
            "core {to_core} not in the mesh"
        );
        match self.senders[to_core].try_send(msg) {
            Ok(()) => {
                self.parkings[to_core].wake();
                Ok(())
            }
            Err(TrySendError::Full(msg) | TrySendError::Disconnected(msg)) => Err(msg),
        }
    }

    /// The next message from any core. One task per core receives: the endpoint parks a
    /// single waker, so a second task awaiting `recv` on the same endpoint could sleep through
    /// a message.
    pub async fn recv(&self) -> M {
        std::future::poll_fn(|context| self.poll_recv(context)).await
    }

    /// A message if one is queued now.
    pub fn try_recv(&self) -> Option<M> {
        let sources = self.receivers.len();
        let first = self.next_source.get();
        for step in 0..sources {
            let source = (first + step) % sources;
            match self.receivers[source].try_recv() {
                Ok(msg) => {
                    self.next_source.set((source + 1) % sources);
                    return Some(msg);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
            }
        }
        None
    }

    fn poll_recv(&self, context: &mut Context<'_>) -> Poll<M> {
        if let Some(msg) = self.try_recv() {
            return Poll::Ready(msg);
        }
        let parking = &self.parkings[self.core_index];
        parking.park(context.waker());
        match self.try_recv() {
            Some(msg) => {
                parking.parked.store(false, Ordering::Relaxed);
                Poll::Ready(msg)
            }
            None => Poll::Pending,
        }
    }
}

/// The receiver was dropped, or the sender was dropped without sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canceled;

impl std::fmt::Display for Canceled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the other core dropped the reply channel")
    }
}

impl std::error::Error for Canceled {}

struct OneshotState<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

type OneshotShared<T> = Arc<Mutex<OneshotState<T>>>;

/// Sends one reply to another core.
pub struct OneshotSender<T> {
    shared: OneshotShared<T>,
}

/// Awaits the reply; `Err(Canceled)` when the sender was dropped without sending.
pub struct OneshotReceiver<T> {
    shared: OneshotShared<T>,
}

/// A single-use reply channel between cores (the receiver is a Future).
pub fn oneshot<T: Send>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let shared = Arc::new(Mutex::new(OneshotState {
        value: None,
        waker: None,
        sender_gone: false,
        receiver_gone: false,
    }));
    (
        OneshotSender {
            shared: shared.clone(),
        },
        OneshotReceiver { shared },
    )
}

impl<T> OneshotSender<T> {
    /// Delivers `value`; gives it back when the receiver is gone.
    pub fn send(self, value: T) -> Result<(), T> {
        let waker = {
            let mut state = self.shared.lock().expect("oneshot");
            if state.receiver_gone {
                return Err(value);
            }
            assert!(state.value.is_none());
            state.value = Some(value);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    pub fn is_canceled(&self) -> bool {
        self.shared.lock().expect("oneshot").receiver_gone
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock().expect("oneshot");
            state.sender_gone = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for OneshotReceiver<T> {
    type Output = Result<T, Canceled>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.lock().expect("oneshot");
        if let Some(value) = state.value.take() {
            return Poll::Ready(Ok(value));
        }
        if state.sender_gone {
            return Poll::Ready(Err(Canceled));
        }
        state.waker = Some(context.waker().clone());
        Poll::Pending
    }
}

impl<T> Drop for OneshotReceiver<T> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.lock() {
            state.receiver_gone = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a full pair queue gives the message back (backpressure) and that other pairs are
    // unaffected by it.
    #[test]
    fn full_queue_returns_message() {
        let endpoints = mesh::<u32>(3, 2);
        assert_eq!(endpoints[0].send(1, 10), Ok(()));
        assert_eq!(endpoints[0].send(1, 11), Ok(()));
        assert_eq!(endpoints[0].send(1, 12), Err(12));
        assert_eq!(endpoints[2].send(1, 20), Ok(()));
        let mut got = vec![];
        while let Some(msg) = endpoints[1].try_recv() {
            got.push(msg);
        }
        got.sort();
        assert_eq!(got, vec![10, 11, 20]);
        assert_eq!(endpoints[0].send(1, 12), Ok(()));
    }

    // Proves a dropped sender cancels the receiver instead of leaving it waiting forever.
    #[test]
    fn oneshot_dropped_sender_cancels() {
        let runtime = compio::runtime::Runtime::new().unwrap();
        let (sender, receiver) = oneshot::<u8>();
        drop(sender);
        assert_eq!(runtime.block_on(receiver), Err(Canceled));
        let (sender, receiver) = oneshot::<u8>();
        drop(receiver);
        assert_eq!(sender.send(5), Err(5));
    }
}
