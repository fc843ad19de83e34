//! The ceiling reference: an HTTP server on Kelp's runtime that answers every request with a
//! fixed 1 KiB body from memory. The volume server's 1 KB GET is measured against it.
//!
//! Usage: `cargo run --release -p kelp-net --example fixed_body -- [PORT] [CORES]`

use std::rc::Rc;

use kelp_net::http::{HttpLimits, Request, Response, serve};
use kelp_net::runtime::run_cores;

struct FixedBody {
    body: bytes::Bytes,
}

impl kelp_net::http::Handler for FixedBody {
    async fn handle(&self, _request: Request) -> Response {
        Response::new(200)
            .header("Content-Type", "application/octet-stream")
            .body_bytes(self.body.clone())
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .map_or(Ok(22080), |text| text.parse())
        .map_err(|error| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("PORT: {error}"))
        })?;
    let cores: usize = args
        .next()
        .map_or(Ok(kelp_net::runtime::available_cores()), |text| {
            text.parse()
        })
        .map_err(|error| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("CORES: {error}"))
        })?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    match kelp_net::runtime::io_uring_unavailable_reason() {
        None => eprintln!("fixed_body: io_uring available"),
        Some(reason) => eprintln!("fixed_body: io_uring unavailable: {reason}"),
    }
    eprintln!("fixed_body: http://{addr}/ on {cores} cores");
    run_cores(cores, move |_context| async move {
        let handler = Rc::new(FixedBody {
            body: bytes::Bytes::from(vec![b'k'; 1024]),
        });
        serve(addr, HttpLimits::default(), handler).await
    })
}
