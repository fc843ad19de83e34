//! The master's outbound HTTP: Raft RPCs, proxying to the leader, volume admin calls,
//! `/submit` uploads. One pooled hyper client (keep-alive), every call bounded by a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A failed outbound call; names the URL.
#[derive(Debug)]
pub enum CallError {
    /// Connecting or sending failed (the peer is down or went away).
    Unreachable { url: String, message: String },
    /// No complete answer within the timeout.
    Timeout { url: String, timeout_ms: u64 },
    /// The URL could not be built (a bad address).
    BadUrl { url: String, message: String },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable { url, message } => write!(f, "{url}: {message}"),
            CallError::Timeout { url, timeout_ms } => {
                write!(f, "{url}: no answer within {timeout_ms} ms")
            }
            CallError::BadUrl { url, message } => write!(f, "bad url {url}: {message}"),
        }
    }
}

impl std::error::Error for CallError {}

/// A complete answer.
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    pub fn new() -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(2_000)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HttpClient { client }
    }

    /// `method` `url` with `headers` and `body`; the whole answer, or an error naming the URL.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let mut builder = hyper::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| CallError::BadUrl {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| CallError::Unreachable {
                        url: url.to_string(),
                        message: format!("{e:?}"),
                    })?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| CallError::Unreachable {
                url: url.to_string(),
                message: e.to_string(),
            })?;
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.to_bytes(),
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                url: url.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// POST a JSON body.
    pub async fn post_json(
        &self,
        url: &str,
        json: Vec<u8>,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let headers = [("content-type", "application/json")];
        self.call(Method::POST, url, &headers, Bytes::from(json), timeout)
            .await
    }
}
