//! The rule a repair applies to one key: the latest event wins, by append time, and a needle
//! absent here is copied only if this replica cannot have forgotten deleting it (README
//! "Replicas and failures", FORMAT.md "Delete horizon").

use super::records::KeyState;

/// What to do with one key here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// This replica agrees, or is the newer one (its peers fix themselves).
    Nothing,
    /// Copy the record of peer `peer`: a needle, or the delete of a key live here (a marker
    /// with the peer's delete time).
    Copy { peer: usize },
    /// Not decided safely: a needle absent here older than what this replica can still tell
    /// apart from a forgotten delete, or a delete whose time is unknown.
    Skip,
}

/// Decides one key from its state here (`local`, None: absent) and on the peers (`peers`,
/// `(peer index, state)`, at least one). `copy_after_ns` is the local delete horizon plus the
/// clock skew allowed between servers: a needle absent here and appended before it may have
/// been deleted here by a delete marker a compaction dropped since.
pub fn decide(local: Option<&KeyState>, peers: &[(usize, KeyState)], copy_after_ns: u64) -> Action {
    assert!(!peers.is_empty());
    // The newest event on the peers; on a tie, a delete wins (never resurrect).
    let (peer, newest) = peers
        .iter()
        .max_by_key(|(_, state)| (state.append_at_ns, state.is_deleted()))
        .expect("at least one peer");
    let (peer, newest) = (*peer, *newest);
    match (local, newest.is_deleted()) {
        (Some(local), true) if !local.is_deleted() => {
            if newest.append_at_ns == 0 {
                Action::Skip
            } else if newest.append_at_ns > local.append_at_ns {
                Action::Copy { peer }
            } else {
                Action::Nothing
            }
        }
        (_, true) => Action::Nothing,
        (None, false) if newest.append_at_ns < copy_after_ns => Action::Skip,
        (None, false) => Action::Copy { peer },
        (Some(local), false) if local.is_deleted() && local.append_at_ns == 0 => Action::Skip,
        // One write's copies (each replica stamped its own time): nothing to copy.
        (Some(local), false) if same_write(local, &newest) => Action::Nothing,
        (Some(local), false) if newest.append_at_ns > local.append_at_ns => Action::Copy { peer },
        (Some(_), false) => Action::Nothing,
    }
}

/// Whether two live records hold the same write: same size and data checksum.
fn same_write(a: &KeyState, b: &KeyState) -> bool {
    !a.is_deleted() && !b.is_deleted() && (a.size, a.checksum) == (b.size, b.checksum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelp_engine::needle_map::TOMBSTONE_SIZE;

    fn live(at: u64) -> KeyState {
        KeyState {
            key: 7,
            offset_units: 3,
            size: 10,
            append_at_ns: at,
            checksum: at as u32,
        }
    }

    fn deleted(at: u64) -> KeyState {
        KeyState {
            size: TOMBSTONE_SIZE,
            checksum: 0,
            ..live(at)
        }
    }

    // Proves the latest event wins, a delete wins a tie, and nothing older than the horizon
    // is copied to where it is absent.
    #[test]
    fn latest_event_wins_and_nothing_is_resurrected() {
        let horizon = 100;
        let one =
            |local: Option<KeyState>, peer: KeyState| decide(local.as_ref(), &[(0, peer)], horizon);
        assert_eq!(one(None, live(150)), Action::Copy { peer: 0 });
        assert_eq!(
            one(None, live(50)),
            Action::Skip,
            "may be a forgotten delete"
        );
        assert_eq!(one(None, deleted(150)), Action::Nothing);
        assert_eq!(one(Some(live(120)), deleted(150)), Action::Copy { peer: 0 });
        assert_eq!(one(Some(live(160)), deleted(150)), Action::Nothing);
        assert_eq!(one(Some(deleted(160)), live(150)), Action::Nothing);
        assert_eq!(one(Some(deleted(140)), live(150)), Action::Copy { peer: 0 });
        assert_eq!(one(Some(live(140)), live(150)), Action::Copy { peer: 0 });
        assert_eq!(one(Some(live(150)), live(150)), Action::Nothing);
        assert_eq!(one(Some(live(150)), live(40)), Action::Nothing);
        assert_eq!(
            one(Some(live(150)), deleted(0)),
            Action::Skip,
            "unknown time"
        );
        assert_eq!(
            one(Some(deleted(0)), live(150)),
            Action::Skip,
            "unknown time"
        );
        let copy_of = |at: u64, stamped: u64| KeyState {
            append_at_ns: stamped,
            ..live(at)
        };
        assert_eq!(
            one(Some(live(150)), copy_of(150, 151)),
            Action::Nothing,
            "one write, stamped by each replica's clock"
        );
        // Three replicas: the newest event among the peers decides.
        let peers = [(0, live(150)), (1, deleted(160))];
        assert_eq!(decide(None, &peers, horizon), Action::Nothing);
        assert_eq!(
            decide(Some(&live(150)), &peers, horizon),
            Action::Copy { peer: 1 }
        );
        let tie = [(0, live(160)), (1, deleted(160))];
        assert_eq!(
            decide(Some(&live(150)), &tie, horizon),
            Action::Copy { peer: 1 }
        );
    }
}
