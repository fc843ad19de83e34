//! The calls the gRPC thread hands to the cores: one bounded inbox per core, drained by a task
//! on that core, so a call touches a volume on the thread that owns it (share-nothing, as an
//! HTTP request handed over the mesh) and never makes a core wait.

use std::rc::Rc;

use kelp_engine::format::FileId;
use tokio::sync::{mpsc, oneshot};

use super::super::handlers::now_unix_ns;
use super::super::limits::GRPC_CALLS_PER_CORE_MAX;
use super::super::state::{CoreSnapshot, CoreState};
use super::super::store::{self, StoreError};

/// A call for the core that owns the volume it names.
pub enum CoreCall {
    /// Delete `fid` here, without fanning out to the replicas (the caller asks each replica,
    /// as SeaweedFS's BatchDelete does); `check_cookie` false takes the live record's cookie.
    Delete {
        fid: FileId,
        check_cookie: bool,
        reply: oneshot::Sender<DeleteOutcome>,
    },
    /// Report this core's volumes and metrics (the heartbeat to a SeaweedFS master).
    Report { reply: oneshot::Sender<CoreReport> },
    /// The master's volume size limit (from a SeaweedFS master's heartbeat answer).
    SizeLimit { bytes: u64 },
    /// An administrative call on one volume this core owns (`volume_admin`).
    Admin {
        volume_id: u32,
        call: super::volume_admin::AdminCall,
        reply: oneshot::Sender<super::volume_admin::AdminAnswer>,
    },
}

/// What one core reports for a heartbeat: its volumes, and how many volumes the server may
/// hold (every core computes it the same way; the first core's is used).
pub struct CoreReport {
    pub snapshot: CoreSnapshot,
    pub volumes_max: u32,
}

/// What a delete did, in SeaweedFS's `DeleteResult` terms: an HTTP status (202 deleted, 404
/// not found, ...), the error text, and the bytes the file held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub status: u16,
    pub error: String,
    pub size: u32,
}

/// SeaweedFS's filers take a delete answered exactly "not found" as done.
pub const NOT_FOUND: &str = "not found";

pub type Sender = mpsc::Sender<CoreCall>;
pub type Receiver = mpsc::Receiver<CoreCall>;

/// One inbox per core: the senders (for the gRPC thread) and the receivers (one per core).
pub fn inboxes(cores: usize) -> (Vec<Sender>, Vec<Receiver>) {
    (0..cores)
        .map(|_| mpsc::channel(GRPC_CALLS_PER_CORE_MAX))
        .unzip()
}

/// Serve this core's inbox until the gRPC thread is gone. One delete at a time (a small
/// append; the inbox bounds what waits); an administrative call runs as a task of its own,
/// each awaited by one gRPC call (so they are as many as the gRPC calls in flight).
pub async fn serve_calls(state: Rc<CoreState>, mut inbox: Receiver) {
    while let Some(call) = inbox.recv().await {
        match call {
            CoreCall::Delete {
                fid,
                check_cookie,
                reply,
            } => {
                let outcome = delete(&state, fid, check_cookie).await;
                let _ = reply.send(outcome); // the caller may have gone: nothing to do
            }
            CoreCall::Report { reply } => {
                let _ = reply.send(report(&state));
            }
            CoreCall::SizeLimit { bytes } => state.store.borrow_mut().set_size_limit(bytes),
            CoreCall::Admin {
                volume_id,
                call,
                reply,
            } => {
                // Its own task: a commit or a record's append waits on I/O, and the calls
                // behind it need not.
                let state = state.clone();
                compio::runtime::spawn(async move {
                    let answer = super::volume_admin::serve(&state, volume_id, call).await;
                    let _ = reply.send(answer); // the caller may have gone: nothing to do
                })
                .detach();
            }
        }
    }
}

fn report(state: &CoreState) -> CoreReport {
    // Measured every heartbeat: a volume reports read-only when its disk is nearly full.
    state.store.borrow_mut().measure_free_space();
    let snapshot = super::super::state::snapshot(state);
    let volumes_now = state.registry.lock().expect("registry").volumes.len();
    let (volumes_max, _) = super::super::space::volumes_max(
        state.config.volumes_max,
        volumes_now,
        &mut state.store.borrow_mut(),
        &state.config.dir,
    );
    CoreReport {
        snapshot,
        volumes_max,
    }
}

async fn delete(state: &CoreState, fid: FileId, check_cookie: bool) -> DeleteOutcome {
    let fid = if check_cookie {
        fid
    } else {
        let cookie = state.store.borrow_mut().live_cookie(fid.volume_id, fid.key);
        match cookie {
            Ok(Some(cookie)) => FileId { cookie, ..fid },
            Ok(None) => return not_found(),
            Err(error) => return failure(&error),
        }
    };
    match store::delete(&state.store, fid, now_unix_ns()).await {
        Ok(deleted) => DeleteOutcome {
            status: 202,
            error: String::new(),
            size: u32::try_from(deleted.size).unwrap_or(u32::MAX),
        },
        Err(error) => failure(&error),
    }
}

fn not_found() -> DeleteOutcome {
    DeleteOutcome {
        status: 404,
        error: NOT_FOUND.into(),
        size: 0,
    }
}

fn failure(error: &StoreError) -> DeleteOutcome {
    match error {
        StoreError::NotFound { .. } | StoreError::VolumeNotHere { .. } => not_found(),
        error => DeleteOutcome {
            status: error.status(),
            error: error.to_string(),
            size: 0,
        },
    }
}
