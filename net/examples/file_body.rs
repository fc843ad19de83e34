//! Serves bodies of any length to measure the ways of sending them: `GET /<len>` answers `len`
//! bytes of a 16 MiB page-cached file (`Body::File`), or of a 16 MiB buffer in memory
//! (`Body::Bytes`).
//!
//! Usage: `FILE_BODY_MODE=copy|splice|bytes|sendzc [BIND_IP=127.0.0.1] cargo run --release -p
//! kelp-net --example file_body -- [PORT] [CORES]`. copy: the file by read+send; splice: the
//! file by splice; bytes: the buffer by a copying send; sendzc: the buffer by SEND_ZC.

use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;

use kelp_net::http::{FileRegion, HttpLimits, Request, Response, serve};
use kelp_net::runtime::run_cores;

const FILE_BYTES: u64 = 16 << 20;

struct FileBody {
    file: Arc<std::fs::File>,
    /// Serve from this buffer instead of the file.
    memory: Option<bytes::Bytes>,
}

impl kelp_net::http::Handler for FileBody {
    async fn handle(&self, request: Request) -> Response {
        let Ok(len) = request.path.trim_start_matches('/').parse::<u64>() else {
            return Response::error(400, "path must be /<length>");
        };
        if len > FILE_BYTES {
            return Response::error(416, "longer than the file");
        }
        if let Some(memory) = &self.memory {
            return Response::new(200).body_bytes(memory.slice(..len as usize));
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
    let mode = std::env::var("FILE_BODY_MODE").unwrap_or_else(|_| "copy".to_string());
    let (zero_copy_min_bytes, send_zc_min_bytes, in_memory) = match mode.as_str() {
        "copy" => (u64::MAX, u64::MAX, false),
        "splice" => (0, u64::MAX, false),
        "bytes" => (u64::MAX, u64::MAX, true),
        "sendzc" => (u64::MAX, 0, true),
        other => panic!("FILE_BODY_MODE={other}: expected copy, splice, bytes or sendzc"),
    };
    let mut file = tempfile::tempfile()?;
    file.write_all(&vec![b'f'; FILE_BYTES as usize])?;
    let file = Arc::new(file);
    let memory = in_memory.then(|| bytes::Bytes::from(vec![b'm'; FILE_BYTES as usize]));
    let ip: std::net::IpAddr = std::env::var("BIND_IP")
        .unwrap_or_else(|_| "127.0.0.1".to_string())
        .parse()
        .expect("BIND_IP: an IP address");
    let addr = std::net::SocketAddr::new(ip, port);
    eprintln!("file_body: http://{addr}/<len> mode={mode}");
    run_cores(cores, move |_context| {
        let file = file.clone();
        let memory = memory.clone();
        async move {
            let limits = HttpLimits {
                zero_copy_min_bytes,
                send_zc_min_bytes,
                ..HttpLimits::default()
            };
            serve(addr, limits, Rc::new(FileBody { file, memory })).await
        }
    })
}
