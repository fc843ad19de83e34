//! Serves `Body::File` regions to measure where splice (zero-copy) beats read+send.
//! `GET /<len>` answers `len` bytes of a 16 MiB page-cached file.
//!
//! Usage: `FILE_BODY_MODE=copy|splice cargo run --release -p kelp-net --example file_body --
//! [PORT] [CORES]` (copy: zero_copy_min_bytes = u64::MAX; splice: 0).

use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;

use kelp_net::http::{FileRegion, HttpLimits, Request, Response, serve};
use kelp_net::runtime::run_cores;

const FILE_BYTES: u64 = 16 << 20;

struct FileBody {
    file: Arc<std::fs::File>,
}

impl kelp_net::http::Handler for FileBody {
    async fn handle(&self, request: Request) -> Response {
        let Ok(len) = request.path.trim_start_matches('/').parse::<u64>() else {
            return Response::error(400, "path must be /<length>");
        };
        if len > FILE_BYTES {
            return Response::error(416, "longer than the file");
        }
        Response::new(200).body_file(FileRegion {
            file: self.file.clone(),
            offset: 0,
            len,
        })
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(22081);
    let cores: usize = args.next().and_then(|text| text.parse().ok()).unwrap_or(1);
    let zero_copy_min_bytes = match std::env::var("FILE_BODY_MODE").as_deref() {
        Ok("splice") => 0,
        Ok("copy") | Err(_) => u64::MAX,
        Ok(other) => panic!("FILE_BODY_MODE={other}: expected copy or splice"),
    };
    let mut file = tempfile::tempfile()?;
    file.write_all(&vec![b'f'; FILE_BYTES as usize])?;
    let file = Arc::new(file);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    eprintln!("file_body: http://{addr}/<len> zero_copy_min_bytes={zero_copy_min_bytes}");
    run_cores(cores, move |_context| {
        let file = file.clone();
        async move {
            let limits = HttpLimits {
                zero_copy_min_bytes,
                ..HttpLimits::default()
            };
            serve(addr, limits, Rc::new(FileBody { file })).await
        }
    })
}
