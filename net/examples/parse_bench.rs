//! Micro-benchmark of the request reader: ns per request for a typical volume-server GET
//! (as `kelp benchmark` sends it), a 1 KiB upload and a chunked upload, fed whole.
//!
//! Usage: `cargo run --release -p kelp-net --example parse_bench -- [ROUNDS]`
//! Prints the median of ROUNDS (default 7) runs of 200,000 requests each.

mod support;

use std::hint::black_box;

use kelp_net::http::parse::{Event, ParseLimits, RequestReader};

const REQUESTS_PER_RUN: usize = 200_000;

fn typical_get() -> Vec<u8> {
    b"GET /3,01637037d6 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: kelp-benchmark\r\n\
      Accept-Encoding: gzip\r\n\r\n"
        .to_vec()
}

fn upload_1k() -> Vec<u8> {
    let mut request = b"POST /3,01637037d6 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
        Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n"
        .to_vec();
    request.extend_from_slice(&[b'k'; 1024]);
    request
}

fn chunked_1k() -> Vec<u8> {
    let mut request = b"POST /3,01637037d6 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
        Transfer-Encoding: chunked\r\n\r\n200\r\n"
        .to_vec();
    request.extend_from_slice(&[b'k'; 512]);
    request.extend_from_slice(b"\r\n200\r\n");
    request.extend_from_slice(&[b'k'; 512]);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    request
}

/// CPU time of this thread: on a machine shared with other work, wall time would count the
/// time other processes ran.
fn thread_cpu_ns() -> u128 {
    support::cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU ns per request over one run.
fn run(request: &[u8]) -> f64 {
    let limits = ParseLimits {
        header_bytes_max: 16 * 1024,
        body_bytes_max: 1 << 20,
    };
    let mut reader = RequestReader::new(limits);
    let started = thread_cpu_ns();
    for _ in 0..REQUESTS_PER_RUN {
        reader.feed(request);
        match reader.next_event() {
            Ok(Event::Request(request, meta)) => {
                black_box((request, meta));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (thread_cpu_ns() - started) as f64 / REQUESTS_PER_RUN as f64
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(7);
    let cases = [
        ("GET, 4 headers", typical_get()),
        ("POST 1 KiB, Content-Length", upload_1k()),
        ("POST 1 KiB, chunked", chunked_1k()),
    ];
    for (name, request) in cases {
        let mut samples: Vec<f64> = (0..rounds).map(|_| run(&request)).collect();
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        println!(
            "{name}: median {median:.0} CPU ns/request over {rounds} runs of {REQUESTS_PER_RUN}"
        );
    }
}
