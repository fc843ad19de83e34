//! The master's gRPC API (SeaweedFS's `master_pb.Seaweed`) with a gRPC client of our own:
//! KeepConnected's first message and pushed changes, the filers it lists, a follower's
//! redirect, Assign / LookupVolume / VolumeList / admin locks answering as the HTTP API does.

mod master_common;
mod support;

mod pb {
    pub mod master_pb {
        tonic::include_proto!("master_pb");
    }
}

use std::time::Duration;

use master_common::{FakeVolumeServer, MasterProcess, get, launch_together, wait_for_leader};
use pb::master_pb::seaweed_client::SeaweedClient;
use pb::master_pb::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// A master's gRPC port (its HTTP port + 10000).
fn grpc_of(master: &MasterProcess) -> String {
    format!("http://127.0.0.1:{}", master.port + 10_000)
}

/// A free port whose gRPC companion (+10000) is free too.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let port = support::free_port();
        if std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair (p, p+10000)");
}

async fn client(master: &MasterProcess) -> SeaweedClient<Channel> {
    let address = grpc_of(master);
    for _ in 0..100 {
        if let Ok(client) = SeaweedClient::connect(address.clone()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no gRPC at {address}");
}

/// Open KeepConnected as `kind` at `address`: the sender (kept open) and the answers.
async fn keep_connected(
    client: &mut SeaweedClient<Channel>,
    kind: &str,
    address: &str,
) -> (
    mpsc::Sender<KeepConnectedRequest>,
    tonic::Streaming<KeepConnectedResponse>,
) {
    let (sender, receiver) = mpsc::channel(4);
    let request = KeepConnectedRequest {
        client_type: kind.into(),
        client_address: address.into(),
        version: "test".into(),
        ..Default::default()
    };
    sender.send(request).await.unwrap();
    let answers = client
        .keep_connected(ReceiverStream::new(receiver))
        .await
        .expect("KeepConnected opens")
        .into_inner();
    (sender, answers)
}

async fn next_location(answers: &mut tonic::Streaming<KeepConnectedResponse>) -> VolumeLocation {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), answers.message())
            .await
            .expect("a KeepConnected message within 20 s")
            .expect("the stream goes on")
            .expect("the stream goes on");
        if let Some(location) = message.volume_location {
            return location;
        }
    }
}

/// The ids `field` names in the next messages, until there are `count` of them (one grow may
/// be pushed in more than one message), with the place of the last message.
async fn collect_ids(
    answers: &mut tonic::Streaming<KeepConnectedResponse>,
    count: usize,
    field: impl Fn(&VolumeLocation) -> &Vec<u32>,
) -> (std::collections::BTreeSet<u32>, VolumeLocation) {
    let mut ids = std::collections::BTreeSet::new();
    loop {
        let location = next_location(answers).await;
        ids.extend(field(&location).iter().copied());
        if ids.len() >= count {
            assert_eq!(ids.len(), count, "{ids:?}");
            return (ids, location);
        }
    }
}

/// A single master, once it leads: a KeepConnected to a master that knows no leader yet is
/// refused (the client retries), which is not what these tests are about.
fn start_master(root: &std::path::Path) -> MasterProcess {
    let master = MasterProcess::start(root, "m", free_port_pair(), "", &[]);
    master_common::wait_for_leader(&[&master], 1, Duration::from_secs(30));
    master
}

// Proves KeepConnected tells a new client the leader first (with no volume yet), then pushes
// the volumes a grow creates and those a collection delete drops, per volume server; and that
// a filer is listed by ListClusterNodes while its stream is open, and no longer once it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_connected_pushes_volume_changes_and_lists_filers() {
    let root = tempfile::tempdir().unwrap();
    let master = start_master(root.path());
    let volume = FakeVolumeServer::start(vec![master.address.clone()], "dc1", "r1", 10);
    let mut client = client(&master).await;
    let (sender, mut answers) = keep_connected(&mut client, "filer", "127.0.0.1:8888").await;
    let first = next_location(&mut answers).await;
    assert_eq!(
        (first.leader.as_str(), first.url.as_str()),
        (master.address.as_str(), "")
    );

    let listed = client
        .list_cluster_nodes(ListClusterNodesRequest {
            client_type: "filer".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let addresses: Vec<&str> = listed
        .cluster_nodes
        .iter()
        .map(|n| n.address.as_str())
        .collect();
    assert_eq!(addresses, vec!["127.0.0.1:8888"]);

    let assigned = tokio::task::spawn_blocking({
        let address = master.address.clone();
        move || master_common::assign_retrying(&address, "collection=pics", Duration::from_secs(20))
    })
    .await
    .unwrap();
    let (grown, place) = collect_ids(&mut answers, 7, |l| &l.new_vids).await;
    assert_eq!(place.url, volume.address);
    assert_eq!(place.data_center, "dc1");
    let fid_volume: u32 = assigned["fid"]
        .as_str()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(grown.contains(&fid_volume), "{grown:?}");

    let deleted = client
        .collection_delete(CollectionDeleteRequest {
            name: "pics".into(),
        })
        .await;
    assert!(deleted.is_ok(), "{deleted:?}");
    let (dropped, _) = collect_ids(&mut answers, 7, |l| &l.deleted_vids).await;
    assert_eq!(dropped, grown);

    drop(sender);
    drop(answers);
    for _ in 0..100 {
        let listed = client
            .list_cluster_nodes(ListClusterNodesRequest {
                client_type: "filer".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if listed.cluster_nodes.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the filer is still listed after its stream closed");
}

// Proves Assign takes the HTTP assign's options (count, collection, replication, ttl) and
// refuses bad ones as it does, LookupVolume finds the assigned volume, VolumeList shows the
// node with its volumes, and an admin lock has one holder at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_lookup_volume_list_and_admin_lock() {
    let root = tempfile::tempdir().unwrap();
    let master = start_master(root.path());
    let volume = FakeVolumeServer::start(vec![master.address.clone()], "", "", 10);
    let mut client = client(&master).await;
    let request = AssignRequest {
        count: 3,
        collection: "docs".into(),
        ttl: "60m".into(),
        ..Default::default()
    };
    let mut assigned = None;
    for _ in 0..100 {
        match client.assign(request.clone()).await {
            Ok(answer) => {
                assigned = Some(answer.into_inner());
                break;
            }
            // Until the volume server's first heartbeat: no node to grow a volume on.
            Err(status) => assert!(
                matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::FailedPrecondition
                ),
                "{status:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let assigned = assigned.expect("an assignment within 10 s");
    assert_eq!(assigned.count, 3);
    let location = assigned.location.clone().unwrap();
    assert_eq!(location.url, volume.address);

    let bad = AssignRequest {
        ttl: "3x".into(),
        ..Default::default()
    };
    let refused = client.assign(bad).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("3x"), "{refused:?}");

    let looked_up = client
        .lookup_volume(LookupVolumeRequest {
            volume_or_file_ids: vec![assigned.fid.clone(), "999".into(), "x,y".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .volume_id_locations;
    assert_eq!(looked_up[0].locations[0].url, volume.address);
    assert!(looked_up[1].error.contains("999"), "{:?}", looked_up[1]);
    assert!(!looked_up[2].error.is_empty());
    let http = get(
        &master.address,
        &format!("/dir/lookup?fileId={}", assigned.fid),
    )
    .unwrap();
    assert_eq!(http.json()["locations"][0]["url"], volume.address.as_str());

    let listed = client
        .volume_list(VolumeListRequest::default())
        .await
        .unwrap()
        .into_inner();
    let topology = listed.topology_info.unwrap();
    let node = &topology.data_center_infos[0].rack_infos[0].data_node_infos[0];
    assert_eq!(node.id, volume.address);
    let disk = &node.disk_infos[""];
    assert_eq!(disk.volume_count, 7);
    assert!(
        disk.volume_infos
            .iter()
            .all(|v| v.collection == "docs" && v.ttl == (1 << 8 | 2))
    );

    let lease = |client_name: &str| LeaseAdminTokenRequest {
        lock_name: "admin".into(),
        client_name: client_name.into(),
        ..Default::default()
    };
    let held = client
        .lease_admin_token(lease("a"))
        .await
        .unwrap()
        .into_inner();
    let refused = client.lease_admin_token(lease("b")).await.unwrap_err();
    assert!(
        refused.message().contains("already locked by a"),
        "{refused:?}"
    );
    client
        .release_admin_token(ReleaseAdminTokenRequest {
            previous_token: held.token,
            previous_lock_time: held.lock_ts_ns,
            lock_name: "admin".into(),
        })
        .await
        .unwrap();
    assert!(client.lease_admin_token(lease("b")).await.is_ok());
}

// Proves a follower answers KeepConnected with the leader's address and ends the stream (the
// client moves there) and refuses Assign with Unavailable (which clients retry), while
// GetMasterConfiguration names the leader on every master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_send_clients_to_the_leader() {
    let root = tempfile::tempdir().unwrap();
    let masters = tokio::task::spawn_blocking({
        let path = root.path().to_path_buf();
        move || {
            let masters = launch_together(&path, 3);
            let all: Vec<&MasterProcess> = masters.iter().collect();
            let leader = wait_for_leader(&all, 3, Duration::from_secs(30));
            (masters, leader)
        }
    })
    .await
    .unwrap();
    let (masters, leader) = masters;
    let follower = masters.iter().find(|m| m.address != leader).unwrap();
    let mut client = client(follower).await;
    // Unavailable until the follower's probes found the leader answering; then a redirect.
    let mut redirected = None;
    for _ in 0..50 {
        let (sender, receiver) = mpsc::channel(1);
        sender.send(KeepConnectedRequest::default()).await.unwrap();
        match client.keep_connected(ReceiverStream::new(receiver)).await {
            Ok(answers) => {
                redirected = Some((sender, answers.into_inner()));
                break;
            }
            Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_sender, mut answers) = redirected.expect("a redirect within 5 s");
    let redirect = next_location(&mut answers).await;
    assert_eq!(redirect.leader, leader);
    let end = tokio::time::timeout(Duration::from_secs(10), answers.message()).await;
    assert!(matches!(end, Ok(Ok(None)) | Ok(Err(_))), "{end:?}");
    let refused = client.assign(AssignRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(refused.message().contains(&leader), "{refused:?}");
    let configuration = client
        .get_master_configuration(GetMasterConfigurationRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(configuration.leader, leader);
}

// Proves that with a security.toml write key Assign's `auth` is a token for the assigned fid,
// as /dir/assign's Authorization header is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_carries_the_file_token() {
    let root = tempfile::tempdir().unwrap();
    let security = root.path().join("security.toml");
    let text = "[jwt.signing]\nkey = \"grpc-write\"\nexpires_after_seconds = 10\n";
    std::fs::write(&security, text).unwrap();
    let security = security.to_str().unwrap().to_string();
    let master = MasterProcess::start(
        root.path(),
        "m",
        free_port_pair(),
        "",
        &["--security", &security],
    );
    let _volume = FakeVolumeServer::start(vec![master.address.clone()], "", "", 10);
    let mut client = client(&master).await;
    let mut assigned = None;
    for _ in 0..100 {
        if let Ok(answer) = client.assign(AssignRequest::default()).await {
            assigned = Some(answer.into_inner());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let assigned = assigned.expect("an assignment within 10 s");
    let parts: Vec<&str> = assigned.auth.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {:?}", assigned.auth);
    use base64::Engine;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
    assert_eq!(claims["fid"], assigned.fid.as_str());
}
