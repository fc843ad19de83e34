//! Cross-core channels between real runtime threads.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kelp_net::mesh::{MeshEndpoint, OneshotSender, mesh, oneshot};
use kelp_net::runtime::{DriverChoice, RuntimeConfig, run_cores_with};

/// A request handed to the owning core with a reply channel, as the volume server does.
struct Ask {
    value: u64,
    reply: OneshotSender<u64>,
}

fn two_cores() -> RuntimeConfig {
    RuntimeConfig {
        cores: 2,
        driver: DriverChoice::Auto,
        pin_threads: false,
    }
}

// Proves core 0 can hand 2000 requests to core 1 and get every answer back, with a queue of
// only 8 per pair: a full queue is reported (Err gives the message back) and retried.
#[test]
fn requests_cross_cores_and_answers_return() {
    let endpoints: Vec<MeshEndpoint<Ask>> = mesh(2, 8);
    let endpoints: Arc<Mutex<Vec<Option<MeshEndpoint<Ask>>>>> =
        Arc::new(Mutex::new(endpoints.into_iter().map(Some).collect()));
    let full_seen = Arc::new(AtomicUsize::new(0));
    let full_seen_by_cores = full_seen.clone();
    run_cores_with(two_cores(), move |context| {
        let endpoint = endpoints.lock().unwrap()[context.core_index]
            .take()
            .unwrap();
        let full_seen = full_seen_by_cores.clone();
        async move {
            if context.core_index == 1 {
                for _ in 0..2000 {
                    let ask = endpoint.recv().await;
                    let _ = ask.reply.send(ask.value * 2);
                }
                return Ok(());
            }
            let mut replies = Vec::new();
            for value in 0..2000u64 {
                let (reply, answer) = oneshot();
                let mut ask = Ask { value, reply };
                loop {
                    match endpoint.send(1, ask) {
                        Ok(()) => break,
                        Err(back) => {
                            full_seen.fetch_add(1, Ordering::Relaxed);
                            ask = back;
                            // Let the owner drain: await the oldest answer.
                            if !replies.is_empty() {
                                let (value, answer): (u64, _) = replies.remove(0);
                                assert_eq!(answer.await, Ok(value * 2));
                            } else {
                                compio::time::sleep(std::time::Duration::from_millis(1)).await;
                            }
                        }
                    }
                }
                replies.push((value, answer));
            }
            for (value, answer) in replies {
                assert_eq!(answer.await, Ok(value * 2));
            }
            Ok(())
        }
    })
    .unwrap();
    assert!(
        full_seen.load(Ordering::Relaxed) > 0,
        "queue of 8 never filled"
    );
}

// Proves a receiving core parked in `recv` is woken by a message from another thread.
#[test]
fn parked_receiver_wakes() {
    let mut endpoints: Vec<MeshEndpoint<u32>> = mesh(2, 4);
    let sender = endpoints.pop().unwrap();
    let receiver = endpoints.pop().unwrap();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        sender.send(0, 7).unwrap();
        sender
    });
    let runtime = kelp_net::runtime::build_runtime(kelp_net::runtime::DriverKind::Poll).unwrap();
    assert_eq!(runtime.block_on(receiver.recv()), 7);
    thread.join().unwrap();
}
