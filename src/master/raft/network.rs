//! Raft RPCs between masters: JSON over HTTP on the masters' API port (`POST /raft/append`,
//! `/raft/vote`, `/raft/snapshot`). The body of an answer is the JSON of
//! `Result<response, RaftError>`.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Node, NodeId, TypeConfig};
use crate::master::http_client::{CallError, HttpClient};

pub struct NetworkFactory {
    pub client: HttpClient,
}

pub struct PeerConnection {
    client: HttpClient,
    target: NodeId,
    node: Node,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerConnection {
        PeerConnection {
            client: self.client.clone(),
            target,
            node: node.clone(),
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

#[derive(Debug)]
struct BadAnswer(String);

impl std::fmt::Display for BadAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadAnswer {}

impl PeerConnection {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let url = format!("http://{}{path}", self.node.addr);
        let body = serde_json::to_vec(request).expect("a Raft RPC always serializes");
        let reply = match self.client.post_json(&url, body, timeout).await {
            Ok(reply) => reply,
            Err(error @ CallError::Unreachable { .. }) => {
                return Err(RPCError::Unreachable(Unreachable::new(&error)));
            }
            Err(error) => return Err(RPCError::Network(NetworkError::new(&error))),
        };
        if reply.status != 200 {
            let text = String::from_utf8_lossy(&reply.body).into_owned();
            let error = BadAnswer(format!("{url}: status {}: {text}", reply.status));
            return Err(RPCError::Network(NetworkError::new(&error)));
        }
        let answer: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply.body)
            .map_err(|e| {
                let error = BadAnswer(format!("{url}: undecodable answer: {e}"));
                RPCError::Network(NetworkError::new(&error))
            })?;
        answer.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.rpc("/raft/append", &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.rpc("/raft/snapshot", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.rpc("/raft/vote", &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
