//! cargo-fuzz target: the small parsers of a volume's metadata — superblock bytes, TTL text
//! and bytes, replica placement text, collection names and volume file names, the `.vif`
//! JSON — never panic, and what they accept prints or encodes back to a form that parses to
//! the same value. These are the one definitions (`kelp_engine::format`) the master, the
//! volume server and the benchmark use.
#![no_main]

use kelp_engine::format::collection::{check_collection, parse_volume_base_name};
use kelp_engine::format::placement::ReplicaPlacement;
use kelp_engine::format::superblock::SuperBlock;
use kelp_engine::format::ttl::Ttl;
use kelp_engine::format::vif::VolumeInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(superblock) = SuperBlock::decode(bytes) {
        if superblock.extra_bytes == 0 {
            let encoded = superblock.encode();
            assert_eq!(SuperBlock::decode(&encoded), Ok(superblock));
        }
    }
    if bytes.len() >= 2 {
        if let Ok(ttl) = Ttl::from_bytes([bytes[0], bytes[1]]) {
            assert_eq!(Ttl::from_bytes(ttl.to_bytes()), Ok(ttl));
        }
    }
    let _ = VolumeInfo::decode(bytes).map(|info| info.offset_width());
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(ttl) = Ttl::parse(text) {
        assert_eq!(ttl.canonical().to_bytes(), ttl.to_bytes(), "parsed text is canonical");
        assert_eq!(Ttl::parse(&ttl.to_string()).map(Ttl::to_bytes), Ok(ttl.to_bytes()));
    }
    if check_collection(text).is_ok() && !text.is_empty() {
        let base = format!("{text}_7");
        assert_eq!(parse_volume_base_name(&base), Some((text, 7)));
    }
    if let Ok(placement) = ReplicaPlacement::parse(text) {
        assert_eq!(ReplicaPlacement::parse(&placement.to_string()), Ok(placement));
        assert_eq!(ReplicaPlacement::from_byte(placement.to_byte()), placement);
    }
});
