//! `.idx` parsing never panics, returns every whole entry, and entries re-encode to the
//! same bytes.
#![no_main]

use kelp_engine::format::idx::{IdxEntry, OffsetWidth, parse_entries};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for width in [OffsetWidth::Four, OffsetWidth::Five] {
        let (entries, torn) = parse_entries(bytes, width);
        let entries: Vec<IdxEntry> = entries.collect();
        assert_eq!(entries.len(), bytes.len() / width.entry_bytes());
        assert_eq!(torn.is_some(), bytes.len() % width.entry_bytes() != 0);
        for (entry, chunk) in entries.iter().zip(bytes.chunks_exact(width.entry_bytes())) {
            let mut encoded = vec![0u8; width.entry_bytes()];
            entry.encode(width, &mut encoded).expect("a decoded offset fits its width");
            assert_eq!(encoded, chunk);
        }
    }
});
