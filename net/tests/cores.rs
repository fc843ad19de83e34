//! Several cores serving one address through SO_REUSEPORT.

use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use kelp_net::http::{Handler, HttpLimits, Request, Response, serve_until};
use kelp_net::runtime::{DriverChoice, RuntimeConfig, Shutdown, run_cores_with};

struct CoreName {
    core_index: usize,
}

impl Handler for CoreName {
    async fn handle(&self, _request: Request) -> Response {
        Response::new(200).body_bytes(format!("core {}", self.core_index))
    }
}

fn ask(addr: std::net::SocketAddr) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(count) => response.extend_from_slice(&chunk[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => panic!("read: {error}"),
        }
    }
    let text = String::from_utf8(response).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    text.rsplit("\r\n\r\n").next().unwrap().to_string()
}

// Proves two cores bind the same address with SO_REUSEPORT, the kernel spreads connections
// over both, each answers from its own handler instance, and a shared Shutdown stops them.
#[test]
fn two_cores_share_one_port() {
    // Reserve a free port, then release it for the cores (both bind it with SO_REUSEPORT).
    let probe = kelp_net::http::bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let config = RuntimeConfig {
        cores: 2,
        driver: DriverChoice::Auto,
        pin_threads: true,
    };
    let server = std::thread::spawn(move || {
        run_cores_with(config, move |context| {
            let stop = stop.clone();
            async move {
                let handler = Rc::new(CoreName {
                    core_index: context.core_index,
                });
                serve_until(addr, HttpLimits::default(), handler, stop.wait()).await
            }
        })
    });
    // Until both cores have bound, connections are refused or all reach one core.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 && std::time::Instant::now() < deadline {
        match std::net::TcpStream::connect(addr) {
            Ok(_) => {
                seen.insert(ask(addr));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["core 0", "core 1"],
        "connections not spread over both cores"
    );
    shutdown.trigger();
    server.join().unwrap().unwrap();
}
