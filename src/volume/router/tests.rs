use super::*;
use crate::volume::admin_guard::{AdminGuard, MasterAddresses};
use crate::volume::compaction::CompactionSlot;
use crate::volume::config::Config;
use crate::volume::state::CoreParts;
use crate::volume::store;
use kelp_net::http::Body;
use kelp_net::mesh::OneshotReceiver;
use std::sync::{Arc, Mutex};

/// A one-core state serving `dir` that takes at most `handoffs_max` hand-offs at once.
fn core_state(dir: &std::path::Path, handoffs_max: usize) -> Rc<CoreState> {
    let config = Arc::new(Config::for_tests(dir));
    let store = store::open_dir(&config).unwrap().pop().unwrap();
    let mesh = kelp_net::mesh::mesh::<CoreMessage>(1, 4).pop().unwrap();
    let mut state = CoreState::new(CoreParts {
        core_index: 0,
        config,
        registry: Arc::new(Mutex::new(Default::default())),
        admin_guard: Arc::new(AdminGuard::new(MasterAddresses::resolve(Vec::new()))),
        mesh,
        store,
        compaction_slot: Arc::new(CompactionSlot::start().unwrap()),
        seaweed_link: Default::default(),
    });
    state.set_handoffs_max(handoffs_max);
    Rc::new(state)
}

/// Hands `state` an OPTIONS request as another core would; the answer comes on the receiver.
fn hand_options(state: &Rc<CoreState>) -> OneshotReceiver<Response> {
    let request = Request {
        method: Method::Options,
        path: "/3,01637037d6".to_string(),
        query: String::new(),
        headers: Default::default(),
        body: Default::default(),
        peer: None,
    };
    let (reply, answer) = oneshot();
    receive(state, CoreMessage::Request { request, reply });
    answer
}

fn handoffs_in_flight(state: &CoreState) -> u64 {
    snapshot(state).metrics.handoff_queue_depth[&0]
}

// Proves a core serves at most its limit of handed-off requests at once: one more is
// answered 503 with a JSON error and Retry-After (not queued, not dropped), and an answered
// hand-off gives its slot back.
#[test]
fn handoffs_past_the_limit_are_answered_503() {
    let dir = tempfile::tempdir().unwrap();
    let state = core_state(dir.path(), 1);
    let runtime = compio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let first = hand_options(&state);
        assert_eq!(handoffs_in_flight(&state), 1);
        let refused = hand_options(&state).await.unwrap();
        assert_eq!(refused.status, 503);
        assert!(
            refused
                .headers
                .contains(&("Retry-After".into(), "1".into()))
        );
        let Body::Bytes(body) = &refused.body else {
            panic!("a JSON body")
        };
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(
            json["error"].as_str().unwrap().contains("overloaded"),
            "{json}"
        );
        assert_eq!(first.await.unwrap().status, 200);
        assert_eq!(handoffs_in_flight(&state), 0);
        assert_eq!(hand_options(&state).await.unwrap().status, 200);
        assert_eq!(handoffs_in_flight(&state), 0);
    });
}
