//! cargo-fuzz target: arbitrary bytes, fed whole and then split at a fuzzer-chosen point, into
//! Kelp's HTTP request reader. It must never panic, and both feeds must agree.

#![no_main]

use kelp_net::http::parse::{Event, ParseLimits, RequestReader};
use libfuzzer_sys::fuzz_target;

const LIMITS: ParseLimits = ParseLimits {
    header_bytes_max: 4096,
    body_bytes_max: 1 << 16,
};

fn run(pieces: &[&[u8]]) -> Vec<String> {
    let mut reader = RequestReader::new(LIMITS);
    let mut seen = Vec::new();
    for piece in pieces {
        reader.feed(piece);
        loop {
            match reader.next_event() {
                Ok(Event::Request(request, meta)) => seen.push(format!("{request:?} {meta:?}")),
                Ok(Event::SendContinue) => continue,
                Ok(Event::NeedMore) => break,
                Err(error) => {
                    seen.push(format!("error {error:?}"));
                    return seen;
                }
            }
        }
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let split = usize::from(data[0]) * data.len() / 256;
    let input = &data[1..];
    let split = split.min(input.len());
    let whole = run(&[input]);
    let halves = run(&[&input[..split], &input[split..]]);
    assert_eq!(whole, halves);
});
