//! Where a request is served: a request that lands on a core that does not own its volume is
//! handed to the owner over the mesh and answered from there; the owner serves at most
//! `limits::HANDOFF_REQUESTS_MAX` handed-off requests at once and answers more with 503.

use super::metrics::RequestSample;
use super::state::{CoreMessage, CoreState, snapshot};
use super::{fid, handlers, query, shard};
use kelp_net::http::{Handler, Method, Request, Response};
use kelp_net::mesh::oneshot;
use std::rc::Rc;
use std::time::Instant;

/// The per-core HTTP handler.
pub struct VolumeHandler {
    pub state: Rc<CoreState>,
}

impl Handler for VolumeHandler {
    async fn handle(&self, request: Request) -> Response {
        let started = Instant::now();
        let method = request.method.as_str();
        let bytes_in = request.body.len() as u64;
        let response = route(&self.state, request).await;
        let sample = RequestSample {
            bytes_in,
            bytes_out: response.body.len(),
            latency_us: started.elapsed().as_micros() as u64,
        };
        self.state.record_request(method, response.status, sample);
        response
    }
}

/// Admin and replica-repair calls about one volume (`?volume=N`), served by its owner core.
fn is_volume_admin(path: &str) -> bool {
    matches!(
        path,
        "/admin/volume/create" | "/admin/volume/delete" | "/admin/volume/repair"
    ) || path.starts_with("/admin/vacuum/")
        || path.starts_with("/replica/")
}

/// Which core serves a request: the owner of its volume, or this one.
fn target_core(state: &CoreState, request: &Request) -> Option<usize> {
    let volume_id = match request.path.as_str() {
        path if is_volume_admin(path) => {
            query::param(&request.query, "volume").and_then(|v| fid::parse_volume_id(&v).ok())
        }
        path => fid::parse_path(path).ok().map(|p| p.fid.volume_id),
    }?;
    let owner = shard::owner_core(volume_id, state.config.cores);
    (owner != state.core_index).then_some(owner)
}

async fn route(state: &Rc<CoreState>, request: Request) -> Response {
    if request.path.starts_with("/admin/")
        && let Err(refusal) = state.admin_guard.authorize(&request)
    {
        return refusal;
    }
    match request.path.as_str() {
        "/healthz" => return Response::json(200, "{\"status\":\"ok\"}".to_string()),
        "/status" => return handlers::status(state).await,
        "/metrics" => return handlers::metrics(state).await,
        "/" | "/ui/index.html" => return super::status_page::index(state, &request).await,
        _ => {}
    }
    match target_core(state, &request) {
        Some(owner) => hand_off(state, owner, request).await,
        None => serve_local(state, request).await,
    }
}

/// Serve a request whose volume this core owns.
pub async fn serve_local(state: &Rc<CoreState>, request: Request) -> Response {
    match (request.method, request.path.as_str()) {
        (Method::Post, "/admin/volume/create") => handlers::create_volume(state, &request).await,
        (Method::Post, "/admin/volume/delete") => handlers::delete_volume(state, &request),
        (Method::Post, path) if path.starts_with("/admin/vacuum/") => {
            handlers::vacuum_admin(state, &request).await
        }
        (Method::Post, "/admin/volume/repair") => {
            super::repair::repair_admin(state, &request).await
        }
        (Method::Get, path) if path.starts_with("/replica/") => {
            super::repair::serve::serve_replica(state, &request).await
        }
        (_, path) if path.starts_with("/replica/") => {
            Response::error(405, "replica calls take GET")
        }
        (_, path) if is_volume_admin(path) => Response::error(405, "admin volume calls take POST"),
        (Method::Get | Method::Head, _) => handlers::read(state, &request).await,
        (Method::Post | Method::Put, _) => handlers::write(state, &request).await,
        (Method::Delete, _) => handlers::delete(state, &request).await,
        (Method::Options, _) => {
            Response::new(200).header("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
        }
        (Method::Other, _) => Response::error(405, "method not allowed"),
    }
}

async fn hand_off(state: &Rc<CoreState>, owner: usize, request: Request) -> Response {
    let (reply, answer) = oneshot();
    let message = CoreMessage::Request { request, reply };
    if !state.try_send(owner, message) {
        let text = format!("core {owner} is overloaded (hand-off queue full); retry");
        return Response::error(503, &text).header("Retry-After", "1");
    }
    match answer.await {
        Ok(response) => response,
        Err(canceled) => Response::error(500, &format!("core {owner}: {canceled}")),
    }
}

/// Receive messages from other cores until the runtime ends.
pub async fn mesh_loop(state: Rc<CoreState>) {
    loop {
        let message = state.recv().await;
        receive(&state, message);
    }
}

/// Act on one message from another core. A handed-off request is served in a task of its
/// own, if fewer than the most hand-offs are in flight; beyond them it is answered 503.
fn receive(state: &Rc<CoreState>, message: CoreMessage) {
    match message {
        CoreMessage::Request { request, reply } => {
            if !state.handoff_begin() {
                let _ = reply.send(handoff_refusal(state)); // the asker may have gone
                return;
            }
            let task_state = state.clone();
            compio::runtime::spawn(async move {
                let response = serve_local(&task_state, request).await;
                task_state.handoff_end();
                let _ = reply.send(response); // the asker may have gone: nothing to do
            })
            .detach();
        }
        CoreMessage::Snapshot { reply } => {
            let _ = reply.send(snapshot(state));
        }
        CoreMessage::SizeLimit { bytes } => state.store.borrow_mut().set_size_limit(bytes),
    }
}

/// The answer to a request handed to this core while it serves the most hand-offs it takes.
fn handoff_refusal(state: &CoreState) -> Response {
    let text = format!(
        "core {} is overloaded ({} handed-off requests in progress); retry",
        state.core_index,
        state.handoffs_max()
    );
    Response::error(503, &text).header("Retry-After", "1")
}

#[cfg(test)]
mod tests;
