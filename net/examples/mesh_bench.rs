//! Cost of handing a request to another core and getting the answer back (mesh + oneshot), as
//! the volume server does for a volume another core owns.
//!
//! Usage: `cargo run --release -p kelp-net --example mesh_bench -- [ROUND_TRIPS]`
//! Prints, for one request in flight (ping-pong) and for 64 in flight: round trips per second
//! and process CPU per round trip (both cores together).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use kelp_net::mesh::{MeshEndpoint, OneshotSender, mesh, oneshot};
use kelp_net::runtime::{DriverChoice, RuntimeConfig, run_cores_with};

struct Ask {
    value: u64,
    reply: OneshotSender<u64>,
}

fn process_cpu_ns() -> u128 {
    support::cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn run(round_trips: u64, in_flight: usize) {
    let endpoints: Vec<Option<MeshEndpoint<Ask>>> = mesh(2, 256).into_iter().map(Some).collect();
    let endpoints = Arc::new(Mutex::new(endpoints));
    let config = RuntimeConfig {
        cores: 2,
        driver: DriverChoice::Auto,
        pin_threads: true,
    };
    let wall = Instant::now();
    let cpu = process_cpu_ns();
    run_cores_with(config, move |context| {
        let endpoint = endpoints.lock().unwrap()[context.core_index]
            .take()
            .unwrap();
        async move {
            if context.core_index == 1 {
                for _ in 0..round_trips {
                    let ask = endpoint.recv().await;
                    let _ = ask.reply.send(ask.value + 1);
                }
                return Ok(());
            }
            let mut waiting = std::collections::VecDeque::with_capacity(in_flight);
            for value in 0..round_trips {
                if waiting.len() == in_flight {
                    let (sent, answer): (u64, _) = waiting.pop_front().unwrap();
                    assert_eq!(answer.await, Ok(sent + 1));
                }
                let (reply, answer) = oneshot();
                let sent = endpoint.send(1, Ask { value, reply });
                assert!(sent.is_ok(), "queue of 256 full with {in_flight} in flight");
                waiting.push_back((value, answer));
            }
            for (sent, answer) in waiting {
                assert_eq!(answer.await, Ok(sent + 1));
            }
            Ok(())
        }
    })
    .unwrap();
    let seconds = wall.elapsed().as_secs_f64();
    let cpu_ns = (process_cpu_ns() - cpu) as f64;
    println!(
        "{in_flight:>3} in flight: {:.0} round trips/s, {:.2} µs CPU per round trip",
        round_trips as f64 / seconds,
        cpu_ns / 1000.0 / round_trips as f64
    );
}

fn main() {
    let round_trips: u64 = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(200_000);
    for _ in 0..3 {
        run(round_trips, 1);
        run(round_trips, 64);
    }
}
