//! The one place the filer reads or writes the parts of a file id or a TTL (the engine's
//! format types): leases of consecutive keys, chunk JSON, `?ttl=` checks.

use kelp_engine::format::FileId;

/// `vid,keycookie` of key `key` in a lease that began at `first` (same volume, same cookie).
pub fn nth_of_lease(first: &FileId, index: u64) -> String {
    let key = first.key + index;
    let fid = FileId {
        volume_id: first.volume_id,
        key,
        cookie: first.cookie,
    };
    format!("{},{}", fid.volume_id, fid.key_cookie_text())
}

/// The upload path of key `first.key + index` that a token for `first` covers: `/<first>`
/// and then `/<first>_<index>` (SeaweedFS's batch form; the volume server adds `index`).
pub fn nth_of_lease_path(first: &FileId, index: u64) -> String {
    let base = format!("/{},{}", first.volume_id, first.key_cookie_text());
    match index {
        0 => base,
        _ => format!("{base}_{index}"),
    }
}

pub fn parse(text: &str) -> Result<FileId, String> {
    FileId::parse(text).map_err(|e| e.to_string())
}

/// The volume id of a fid text, for locating it.
pub fn volume_of(text: &str) -> Result<u32, String> {
    parse(text).map(|fid| fid.volume_id)
}

/// SeaweedFS's `fid` object of a chunk: `{"volume_id", "file_key", "cookie"}`.
pub fn json_parts(text: &str) -> serde_json::Value {
    match FileId::parse(text) {
        Ok(fid) => serde_json::json!({
            "volume_id": fid.volume_id,
            "file_key": fid.key,
            "cookie": fid.cookie,
        }),
        Err(_) => serde_json::Value::Null,
    }
}

/// Seconds of a `?ttl=` text (`3m`, `4h`, `5d`, ...); an error names the text.
pub fn ttl_seconds(text: &str) -> Result<u32, String> {
    let ttl = kelp_engine::format::Ttl::parse(text).map_err(|e| format!("ttl {text:?}: {e}"))?;
    let seconds = u64::from(ttl.count) * ttl.unit.seconds();
    u32::try_from(seconds).map_err(|_| format!("ttl {text:?} is too long"))
}
