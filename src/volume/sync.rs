//! Group commit: `fsync=true` writes wait for an fdatasync that started after their write.
//! One sync runs per volume at a time; every write that arrives while it runs joins the next
//! one, so N concurrent durable writes cost about two syncs, not N.

use super::limits::SYNC_WAITERS_MAX;
use kelp_net::mesh::{OneshotSender, oneshot};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::rc::Rc;
use std::sync::Arc;

type SyncResult = Result<(), String>;

#[derive(Default)]
struct VolumeQueue {
    waiters: Vec<OneshotSender<SyncResult>>,
    running: bool,
    /// The files of the latest waiter: a compaction's swap replaces a volume's files, and
    /// a round syncs the ones its waiters' writes (or their replay) are in.
    files: Vec<Arc<File>>,
}

/// Per-core group commit state, by volume id.
#[derive(Default)]
pub struct GroupCommit {
    queues: Rc<RefCell<HashMap<u32, VolumeQueue>>>,
}

impl GroupCommit {
    /// Wait until a sync of `files` that started after this call completed.
    pub async fn sync(&self, volume_id: u32, files: Vec<Arc<File>>) -> SyncResult {
        assert!(!files.is_empty());
        let (reply, answer) = oneshot();
        let start_runner = {
            let mut queues = self.queues.borrow_mut();
            let queue = queues.entry(volume_id).or_default();
            if queue.waiters.len() >= SYNC_WAITERS_MAX {
                return Err(format!(
                    "volume {volume_id}: {SYNC_WAITERS_MAX} writes already wait for fsync"
                ));
            }
            queue.waiters.push(reply);
            queue.files = files;
            !std::mem::replace(&mut queue.running, true)
        };
        if start_runner {
            let queues = self.queues.clone();
            compio::runtime::spawn(run_syncs(queues, volume_id)).detach();
        }
        answer
            .await
            .unwrap_or_else(|e| Err(format!("volume {volume_id} sync: {e}")))
    }
}

/// Sync until no writer waits: each round takes every waiter queued so far, and syncs the
/// files the latest of them named (after a compaction's swap, the new files, which hold the
/// earlier waiters' writes too: the commit replayed and fsynced them).
async fn run_syncs(queues: Rc<RefCell<HashMap<u32, VolumeQueue>>>, volume_id: u32) {
    loop {
        let (batch, files) = {
            let mut queues = queues.borrow_mut();
            let queue = queues
                .get_mut(&volume_id)
                .expect("queue exists while running");
            assert!(queue.running);
            if queue.waiters.is_empty() {
                queue.running = false;
                return;
            }
            (std::mem::take(&mut queue.waiters), queue.files.clone())
        };
        // The files are synced at once, not one after the other: a write is acknowledged only
        // when all of them are on disk, and the order between them gives nothing (the kernel
        // may write back either file's pages first at any moment; recovery reads both).
        let syncs = files
            .iter()
            .map(|file| kelp_net::fs::sync_data(file.clone()));
        let failure = futures_util::future::join_all(syncs)
            .await
            .into_iter()
            .find_map(Result::err);
        let result = match failure {
            Some(error) => Err(format!("volume {volume_id}: fdatasync failed: {error}")),
            None => Ok(()),
        };
        for waiter in batch {
            let _ = waiter.send(result.clone()); // a writer that went away needs no answer
        }
    }
}
