//! Serving a gRPC service (tonic, on tokio) on a bound listener, for the master and the
//! volume server alike: a bounded number of connections (past it, accepting waits until one
//! closes), a bounded number of requests in flight per connection, and HTTP/2 keep-alive
//! pings, so a client that vanished without closing its connection is noticed.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// HTTP/2 keep-alive: a ping after this much silence, and the connection is closed when the
/// answer takes longer than the timeout.
pub const KEEPALIVE_INTERVAL_MS: u64 = 10_000;
pub const KEEPALIVE_TIMEOUT_MS: u64 = 20_000;

/// The limits of one gRPC server.
#[derive(Debug, Clone, Copy)]
pub struct GrpcLimits {
    pub connections_max: usize,
    pub streams_per_connection_max: u32,
}

/// Bind `ip:port` for gRPC; the error names the address and `flag`.
pub async fn bind(ip: &str, port: u16, flag: &str) -> Result<TcpListener, String> {
    let address = format!("{ip}:{port}");
    TcpListener::bind(&address)
        .await
        .map_err(|e| format!("listen for gRPC on {address} ({flag}): {e}"))
}

/// A tonic server builder with the limits and keep-alive set.
pub fn server_builder(limits: GrpcLimits) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(limits.streams_per_connection_max)
        .http2_keepalive_interval(Some(Duration::from_millis(KEEPALIVE_INTERVAL_MS)))
        .http2_keepalive_timeout(Some(Duration::from_millis(KEEPALIVE_TIMEOUT_MS)))
}

/// The connections of `listener`, at most `connections_max` open at once.
pub fn incoming(
    listener: TcpListener,
    connections_max: usize,
) -> impl futures_util::Stream<Item = io::Result<LimitedStream>> {
    let permits = Arc::new(Semaphore::new(connections_max));
    futures_util::stream::unfold((listener, permits), |(listener, permits)| async move {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let limited = LimitedStream {
                        stream,
                        _permit: permit,
                    };
                    return Some((Ok(limited), (listener, permits)));
                }
                Err(error) => {
                    tracing::warn!("grpc: accept: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

/// An accepted connection that holds its place among the open connections until it closes.
pub struct LimitedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for LimitedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
