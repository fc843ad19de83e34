//! Fid parsing (`kelp_engine::format::FileId`, the one definition the master, the volume
//! server and the benchmark use) never panics, and a parsed fid prints back to text that
//! parses to the same fid.
#![no_main]

use kelp_engine::format::FileId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(fid) = FileId::parse(text) {
        assert_eq!(FileId::parse(&fid.to_string()), Ok(fid));
    }
});
