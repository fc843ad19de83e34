//! `volume.balance` and `volume.server.evacuate`: plan moves on a copy of the topology (each
//! keeping every volume's placement, as the master's placement code decides), print them,
//! and with `-apply` make them one by one as `volume.move` does.

use super::cluster::{Cluster, Node, placement_met, placement_of};
use super::flags::{Flag, Flags};
use super::limits::PLANNED_MOVES_MAX;
use super::volume_ops::{Transfer, check_transfer, transfer};
use super::{CommandSpec, Shell};

const APPLY: Flag = Flag {
    name: "apply",
    takes_value: false,
    help: "make the moves (without it the plan is only printed)",
};

pub const BALANCE_SPEC: CommandSpec = CommandSpec {
    name: "volume.balance",
    help: "even out the number of volumes per server, keeping each volume's placement",
    flags: &[
        Flag {
            name: "collection",
            takes_value: true,
            help: "balance only this collection's volumes",
        },
        APPLY,
    ],
};

pub const EVACUATE_SPEC: CommandSpec = CommandSpec {
    name: "volume.server.evacuate",
    help: "move every volume off a server (to servers that keep its placement), so it can be \
           stopped",
    flags: &[
        Flag {
            name: "node",
            takes_value: true,
            help: "the volume server host:port to empty",
        },
        APPLY,
    ],
};

/// One move of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMove {
    pub volume_id: u32,
    pub source: String,
    pub target: String,
}

pub async fn balance_command(shell: &Shell, flags: &Flags) -> Result<(), String> {
    let collection = flags.text("collection");
    let apply = flags.switch("apply")?;
    let cluster = Cluster::fetch(shell).await?;
    let moves = plan_balance(&cluster, collection);
    if moves.is_empty() {
        println!("the volumes are balanced: nothing to move");
        return Ok(());
    }
    make(shell, &moves, apply).await
}

pub async fn evacuate_command(shell: &Shell, flags: &Flags) -> Result<(), String> {
    let node = flags.server("node")?;
    let apply = flags.switch("apply")?;
    let cluster = Cluster::fetch(shell).await?;
    cluster.node(&node).map_err(|e| format!("-node: {e}"))?;
    let (moves, stuck) = plan_evacuation(&cluster, &node);
    for (volume_id, reason) in &stuck {
        println!("volume {volume_id} cannot leave {node}: {reason}");
    }
    if moves.is_empty() && stuck.is_empty() {
        println!("{node} holds no volume: nothing to move");
        return Ok(());
    }
    make(shell, &moves, apply).await?;
    if !stuck.is_empty() {
        return Err(format!(
            "{} volumes cannot leave {node}: add servers that keep their placement",
            stuck.len()
        ));
    }
    if apply {
        println!("{node} holds no volume now: it can be stopped");
    }
    Ok(())
}

/// Print the moves; with `apply`, make them in turn (the first failure stops the rest).
async fn make(shell: &Shell, moves: &[PlannedMove], apply: bool) -> Result<(), String> {
    for planned in moves {
        println!(
            "volume.move -volumeId {} -source {} -target {}",
            planned.volume_id, planned.source, planned.target
        );
    }
    if !apply {
        println!(
            "{} moves planned; run with -apply to make them",
            moves.len()
        );
        return Ok(());
    }
    for (done, planned) in moves.iter().enumerate() {
        let cluster = Cluster::fetch(shell).await?;
        let volume_id = planned.volume_id;
        let made = match check_transfer(&cluster, volume_id, &planned.source, &planned.target) {
            Ok(pair) => transfer(shell, volume_id, pair, Transfer::Move, 0).await,
            Err(error) => Err(error),
        };
        made.map_err(|e| {
            format!(
                "move {} of {}: volume {volume_id}: {e}",
                done + 1,
                moves.len()
            )
        })?;
    }
    println!("made {} moves", moves.len());
    Ok(())
}

/// Where each volume of `node` can go: the least loaded server that keeps its placement.
/// Volumes no server can take are listed with the reason.
pub fn plan_evacuation(cluster: &Cluster, node: &str) -> (Vec<PlannedMove>, Vec<(u32, String)>) {
    let mut view = cluster.clone();
    let mut moves = Vec::new();
    let mut stuck = Vec::new();
    let volume_ids: Vec<u32> = match view.node(node) {
        Ok(source) => source.volumes.iter().map(|v| v.id).collect(),
        Err(_) => Vec::new(),
    };
    for volume_id in volume_ids {
        match best_target(&view, volume_id, node, |_| true) {
            Some(target) => {
                let planned = PlannedMove {
                    volume_id,
                    source: node.to_string(),
                    target,
                };
                apply(&mut view, &planned);
                moves.push(planned);
            }
            None => stuck.push((
                volume_id,
                "no other server with a free slot keeps its placement".into(),
            )),
        }
    }
    (moves, stuck)
}

/// Moves from the fullest servers to the emptiest until no two servers differ by more than
/// one volume (of `collection` when given), or no move keeps the placements.
pub fn plan_balance(cluster: &Cluster, collection: Option<&str>) -> Vec<PlannedMove> {
    let mut view = cluster.clone();
    let mut moves = Vec::new();
    let counted = |n: &Node| {
        n.volumes
            .iter()
            .filter(|v| collection.is_none_or(|c| v.collection == c))
            .count()
    };
    while moves.len() < PLANNED_MOVES_MAX {
        let mut order: Vec<(usize, String)> = view
            .nodes
            .iter()
            .map(|n| (counted(n), n.url.clone()))
            .collect();
        order.sort();
        let Some(planned) = next_balancing_move(&view, &order, collection) else {
            break;
        };
        apply(&mut view, &planned);
        moves.push(planned);
    }
    moves
}

/// A move from one of the fullest servers to a server with at least two volumes fewer
/// (`order`: counts and servers, emptiest first).
fn next_balancing_move(
    view: &Cluster,
    order: &[(usize, String)],
    collection: Option<&str>,
) -> Option<PlannedMove> {
    for (full_count, full) in order.iter().rev() {
        let source = view.node(full).ok()?;
        for volume in &source.volumes {
            if collection.is_some_and(|c| volume.collection != c) {
                continue;
            }
            let roomy = |n: &Node| {
                order
                    .iter()
                    .any(|(count, url)| *url == n.url && count + 1 < *full_count)
            };
            if let Some(target) = best_target(view, volume.id, full, roomy) {
                return Some(PlannedMove {
                    volume_id: volume.id,
                    source: full.clone(),
                    target,
                });
            }
        }
    }
    None
}

/// The server with the fewest volumes, a free slot, not holding `volume_id`, accepted by
/// `allowed`, to which `volume_id` can move from `source` keeping its placement (when the
/// placement was met before; else any such server).
fn best_target(
    view: &Cluster,
    volume_id: u32,
    source: &str,
    allowed: impl Fn(&Node) -> bool,
) -> Option<String> {
    let holders = view.holders(volume_id);
    let volume = holders.first()?.volume(volume_id)?;
    let placement = placement_of(volume);
    let met_before = placement_met(&holders, placement);
    let others: Vec<&Node> = holders.into_iter().filter(|n| n.url != source).collect();
    let mut candidates: Vec<&Node> = view
        .nodes
        .iter()
        .filter(|n| n.url != source && !n.holds(volume_id) && n.free_slots() > 0 && allowed(n))
        .filter(|n| {
            let mut after = others.clone();
            after.push(n);
            !met_before || placement_met(&after, placement)
        })
        .collect();
    candidates.sort_by_key(|n| (n.volumes.len(), n.url.clone()));
    candidates.first().map(|n| n.url.clone())
}

/// `planned` made on the view: the volume's message moves from source to target.
fn apply(view: &mut Cluster, planned: &PlannedMove) {
    let source = view
        .nodes
        .iter_mut()
        .find(|n| n.url == planned.source)
        .expect("planned from a known server");
    let at = source
        .volumes
        .iter()
        .position(|v| v.id == planned.volume_id)
        .expect("planned from a server holding it");
    let volume = source.volumes.remove(at);
    let target = view
        .nodes
        .iter_mut()
        .find(|n| n.url == planned.target)
        .expect("planned to a known server");
    assert!(!target.holds(planned.volume_id));
    target.volumes.push(volume);
}

#[cfg(test)]
mod tests {
    use super::super::cluster::tests::node;
    use super::*;

    fn cluster(nodes: Vec<Node>) -> Cluster {
        Cluster {
            nodes,
            volume_size_limit_mb: 30,
        }
    }

    // Proves balancing evens the counts and never puts two copies of 010 in one rack.
    #[test]
    fn balance_evens_counts_keeping_placement() {
        let view = cluster(vec![
            node(
                "a:1",
                "dc1",
                "r1",
                &[(1, "000"), (2, "000"), (3, "000"), (4, "010")],
            ),
            node("b:1", "dc1", "r2", &[(4, "010")]),
            node("c:1", "dc1", "r2", &[]),
        ]);
        let moves = plan_balance(&view, None);
        let mut after = view.clone();
        for planned in &moves {
            apply(&mut after, planned);
        }
        let counts: Vec<usize> = after.nodes.iter().map(|n| n.volumes.len()).collect();
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{moves:?}"
        );
        for planned in &moves {
            if planned.volume_id == 4 {
                assert_ne!(
                    planned.target, "c:1",
                    "two copies of 010 in rack r2: {moves:?}"
                );
            }
        }
        assert!(plan_balance(&after, None).is_empty());
    }

    // Proves evacuation empties the node and reports volumes whose placement no server keeps.
    #[test]
    fn evacuation_keeps_placement_or_says_why_not() {
        let view = cluster(vec![
            node("a:1", "dc1", "r1", &[(1, "000"), (2, "010")]),
            node("b:1", "dc1", "r2", &[(2, "010")]),
            node("c:1", "dc1", "r2", &[]),
        ]);
        let (moves, stuck) = plan_evacuation(&view, "a:1");
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert_eq!(moves[0].volume_id, 1);
        assert_eq!(stuck.len(), 1);
        assert_eq!(stuck[0].0, 2);
        let mut roomy = view.clone();
        roomy.nodes.push(node("d:1", "dc1", "r3", &[]));
        let (moves, stuck) = plan_evacuation(&roomy, "a:1");
        assert!(stuck.is_empty());
        assert!(
            moves.iter().any(|m| m.volume_id == 2 && m.target == "d:1"),
            "{moves:?}"
        );
    }
}
