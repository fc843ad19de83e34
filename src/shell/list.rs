//! `volume.list`: data centers > racks > servers > volumes, as `weed shell volume.list`.

use super::cluster::{Cluster, Node, placement_of, ttl_text};
use super::flags::{Flag, Flags};
use super::{CommandSpec, Shell};

pub const SPEC: CommandSpec = CommandSpec {
    name: "volume.list",
    help: "list data centers, racks, servers and their volumes (size, files, deleted, \
           collection, placement, ttl, read-only)",
    flags: &[
        Flag {
            name: "collection",
            takes_value: true,
            help: "only the volumes of this collection",
        },
        Flag {
            name: "volumeId",
            takes_value: true,
            help: "only this volume",
        },
    ],
};

pub async fn run(shell: &Shell, flags: &Flags) -> Result<(), String> {
    let cluster = Cluster::fetch(shell).await?;
    let volume_id = flags.volume_id()?;
    let collection = flags.text("collection");
    print!("{}", format(&cluster, collection, volume_id));
    Ok(())
}

/// The listing; `collection`/`volume_id` select the volumes shown (the counts cover all).
pub fn format(cluster: &Cluster, collection: Option<&str>, volume_id: Option<u32>) -> String {
    let (used, max) = counts(cluster.nodes.iter());
    let mut text = format!(
        "Topology volumeSizeLimit:{} MB volumes:{used}/{max} free:{}\n",
        cluster.volume_size_limit_mb,
        max - used
    );
    let mut data_centers: Vec<&str> = cluster
        .nodes
        .iter()
        .map(|n| n.data_center.as_str())
        .collect();
    data_centers.dedup(); // the nodes are sorted by data center and rack
    for dc in data_centers {
        let in_dc = cluster.nodes.iter().filter(|n| n.data_center == dc);
        let (used, max) = counts(in_dc.clone());
        text.push_str(&format!(
            "  DataCenter {} volumes:{used}/{max}\n",
            name_or_default(dc)
        ));
        let mut racks: Vec<&str> = in_dc.clone().map(|n| n.rack.as_str()).collect();
        racks.dedup();
        for rack in racks {
            let in_rack = in_dc.clone().filter(|n| n.rack == rack);
            let (used, max) = counts(in_rack.clone());
            text.push_str(&format!(
                "    Rack {} volumes:{used}/{max}\n",
                name_or_default(rack)
            ));
            for node in in_rack {
                text.push_str(&format_node(node, collection, volume_id));
            }
        }
    }
    text
}

fn format_node(node: &Node, collection: Option<&str>, volume_id: Option<u32>) -> String {
    let mut text = format!(
        "      DataNode {} volumes:{}/{} free:{}\n",
        node.url,
        node.volumes.len(),
        node.max_volumes,
        node.free_slots().max(0)
    );
    let shown = node.volumes.iter().filter(|v| {
        collection.is_none_or(|c| v.collection == c) && volume_id.is_none_or(|id| v.id == id)
    });
    let (mut bytes, mut files) = (0, 0);
    for volume in shown {
        bytes += volume.size;
        files += volume.file_count;
        text.push_str(&format!(
            "        volume id:{} size:{} file_count:{} delete_count:{} collection:{:?} \
             replica_placement:{} ttl:{:?} read_only:{}\n",
            volume.id,
            volume.size,
            volume.file_count,
            volume.delete_count,
            volume.collection,
            placement_of(volume),
            ttl_text(volume),
            volume.read_only
        ));
    }
    text.push_str(&format!(
        "      DataNode {} total size:{bytes} file_count:{files}\n",
        node.url
    ));
    text
}

/// Volumes held and volume slots of `nodes`.
fn counts<'a>(nodes: impl Iterator<Item = &'a Node>) -> (i64, i64) {
    nodes.fold((0, 0), |(used, max), n| {
        (used + n.volumes.len() as i64, max + n.max_volumes)
    })
}

/// SeaweedFS names the unnamed data center and rack this way.
fn name_or_default(name: &str) -> &str {
    if name.is_empty() {
        "DefaultDataCenter"
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::super::cluster::tests::node;
    use super::*;

    // Proves the tree nests servers in racks in data centers and shows each volume's fields.
    #[test]
    fn listing_nests_and_filters() {
        let mut a = node("a:1", "dc1", "r1", &[(1, "010"), (2, "000")]);
        a.volumes[0].file_count = 3;
        a.volumes[0].size = 100;
        a.volumes[1].read_only = true;
        a.volumes[1].collection = "pics".into();
        let b = node("b:1", "dc1", "r2", &[(1, "010")]);
        let cluster = Cluster {
            nodes: vec![a, b],
            volume_size_limit_mb: 30,
        };
        let text = format(&cluster, None, None);
        let expected_start = "Topology volumeSizeLimit:30 MB volumes:3/16 free:13\n  \
            DataCenter dc1 volumes:3/16\n    Rack r1 volumes:2/8\n      \
            DataNode a:1 volumes:2/8 free:6\n        volume id:1 size:100 file_count:3 \
            delete_count:0 collection:\"\" replica_placement:010 ttl:\"\" read_only:false\n";
        assert!(text.starts_with(expected_start), "{text}");
        assert!(text.contains("collection:\"pics\" replica_placement:000 ttl:\"\" read_only:true"));
        assert!(text.contains("    Rack r2 volumes:1/8\n      DataNode b:1"));
        let pics = format(&cluster, Some("pics"), None);
        assert!(!pics.contains("volume id:1 "), "{pics}");
        assert!(pics.contains("volume id:2 "));
    }
}
