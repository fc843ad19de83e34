//! The volume server's background thread: a compaction's copy and replay steps and the
//! dropping of replaced volume files run there, at the lowest CPU priority (nice 19), so
//! that on a busy server the cores' requests get the CPU first and the compaction takes
//! what is left (a small share at worst: it still progresses). Jobs wait in a bounded
//! queue; a core awaits each job's result without blocking. The commit, which holds a
//! volume's writes, does not run here: it must not wait behind the CPU.

use super::limits::BACKGROUND_JOBS_MAX;
use kelp_net::mesh::oneshot;
use std::sync::Mutex;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

type Job = Box<dyn FnOnce() + Send>;

/// The thread and its queue (one per server, shared by the cores).
pub struct Background {
    jobs: Mutex<SyncSender<Job>>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Background")
    }
}

impl Background {
    /// Starts the thread (named `kelp-background`).
    pub fn start() -> Result<Background, String> {
        let (jobs, queue) = sync_channel::<Job>(BACKGROUND_JOBS_MAX);
        std::thread::Builder::new()
            .name("kelp-background".into())
            .spawn(move || {
                lower_priority();
                for job in queue {
                    job();
                }
            })
            .map_err(|e| format!("start the background thread: {e}"))?;
        Ok(Background {
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs `job` on the background thread and waits for its result (without blocking
    /// the core). Err: the queue is full, or the job panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot();
        let wrapped: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            // The waiting core may be gone (the server stops): nothing to tell.
            let _ = reply.send(result.map_err(|_| "a background job panicked".to_string()));
        });
        match self
            .jobs
            .lock()
            .expect("background queue")
            .try_send(wrapped)
        {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(format!(
                    "the background queue is full ({BACKGROUND_JOBS_MAX} jobs); retry"
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err("the background thread has stopped".into());
            }
        }
        answer
            .await
            .map_err(|_| "a background job was dropped".to_string())?
    }
}

/// nice 19 for the calling thread (Linux: per thread). Raising one's own nice needs no
/// privilege; a failure only leaves the thread at the normal priority (logged).
fn lower_priority() {
    // SAFETY: setpriority(2) on the calling thread (who = 0); no memory is touched.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!("background thread: setpriority(19): {error}; it runs at normal priority");
    }
}
