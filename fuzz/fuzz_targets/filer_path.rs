//! cargo-fuzz target: the filer's request-path parser (`src/filer/path.rs`, compiled in with
//! `#[path]`) never panics, and what it accepts is a clean path: cleaning it again gives it
//! back, split and join agree, every ancestor is a directory prefix of it.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/filer/limits.rs"]
mod limits;

#[allow(dead_code)]
#[path = "../../src/filer/path.rs"]
mod path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = path::parse_request_path(text) else {
        return;
    };
    let clean = parsed.path;
    assert!(clean.starts_with('/'));
    assert!(!clean.contains('\0'));
    assert!(clean == "/" || !clean.ends_with('/'));
    assert_eq!(path::clean(&clean).expect("a clean path is accepted").path, clean);
    if let Some((parent, name)) = path::split(&clean) {
        assert!(!name.is_empty() && !name.contains('/'));
        assert_eq!(path::join(parent, name), clean);
    }
    for ancestor in path::ancestors(&clean) {
        assert!(path::is_within(&clean, ancestor));
    }
});
