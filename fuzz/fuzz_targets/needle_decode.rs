//! Needle decoding never panics, and a needle with data that decodes re-encodes to a
//! record that decodes to the same needle. (A body with an empty data field is valid on
//! disk, but Kelp encodes a needle without data as a bodiless delete marker, so such a
//! needle does not round-trip; the first crash this target found.)
#![no_main]

use kelp_engine::format::needle::{DATA_PREFIX_BYTES, Needle, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for version in [Version::V2, Version::V3] {
        let decoded = Needle::decode(bytes, version).ok();
        if let Some(needle) = decoded.filter(|n| !n.data.is_empty()) {
            let mut record = Vec::new();
            if needle.encode(version, &mut record).is_ok() {
                let again = Needle::decode(&record, version).expect("re-encoded needle decodes");
                assert_eq!(again.data, needle.data);
                assert_eq!(again.name, needle.name);
                assert_eq!(again.pairs, needle.pairs);
            }
        }
        let split = bytes.len().min(DATA_PREFIX_BYTES);
        let _ = Needle::decode_without_data(&bytes[..split], &bytes[split..], version);
    }
});
