//! A filer entry (a file or a directory) as the stores keep it, and as SeaweedFS's filer shows
//! it in JSON (`?metadata=true`, directory listings).
//!
//! Stored encoding: JSON with one-letter field names (compact, self-describing, the same in
//! every store). The entry's path is the store's key, not part of the value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Go's `os.ModeDir`, which SeaweedFS keeps in the entry's mode.
pub const MODE_DIR: u32 = 0x8000_0000;
/// Mode of a file SeaweedFS's filer creates over HTTP (0660) and of a directory (0771).
pub const MODE_FILE_DEFAULT: u32 = 0o660;
pub const MODE_DIR_DEFAULT: u32 = MODE_DIR | 0o771;

/// A piece of a file's data, stored on a volume server under `fid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    #[serde(rename = "f")]
    pub fid: String,
    /// Where the chunk's bytes start in the file.
    #[serde(rename = "o", default)]
    pub offset: u64,
    /// Bytes of the file it holds (the first `size` bytes of the stored blob: a truncated
    /// file keeps a chunk whose blob is longer).
    #[serde(rename = "s")]
    pub size: u64,
    #[serde(rename = "t")]
    pub mtime_ns: i64,
    /// Base64 MD5 of the blob as uploaded.
    #[serde(rename = "e", default)]
    pub etag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Entry {
    #[serde(rename = "m")]
    pub mode: u32,
    #[serde(rename = "t")]
    pub mtime_ns: i64,
    #[serde(rename = "c")]
    pub crtime_s: i64,
    #[serde(rename = "y", default, skip_serializing_if = "String::is_empty")]
    pub mime: String,
    #[serde(rename = "l", default, skip_serializing_if = "is_zero")]
    pub ttl_sec: u32,
    /// Base64 MD5 of the whole file; empty when unknown (appended files).
    #[serde(rename = "h", default, skip_serializing_if = "String::is_empty")]
    pub md5: String,
    #[serde(rename = "s", default)]
    pub file_size: u64,
    #[serde(rename = "i", default)]
    pub inode: u64,
    /// `Seaweed-*` headers kept with the file (full header name -> value).
    #[serde(rename = "x", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extended: BTreeMap<String, String>,
    #[serde(rename = "k", default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<Chunk>,
    /// FastDFS-style per-file metadata (key -> value), set and read without the data.
    #[serde(rename = "u", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    #[serde(rename = "n", default, skip_serializing_if = "String::is_empty")]
    pub collection: String,
    #[serde(rename = "r", default, skip_serializing_if = "String::is_empty")]
    pub replication: String,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl Entry {
    pub fn new_directory(now_ns: i64) -> Entry {
        Entry {
            mode: MODE_DIR_DEFAULT,
            mtime_ns: now_ns,
            crtime_s: now_ns.div_euclid(1_000_000_000),
            inode: rand::random(),
            ..Entry::default()
        }
    }

    pub fn new_file(now_ns: i64) -> Entry {
        Entry {
            mode: MODE_FILE_DEFAULT,
            mtime_ns: now_ns,
            crtime_s: now_ns.div_euclid(1_000_000_000),
            inode: rand::random(),
            ..Entry::default()
        }
    }

    pub fn is_directory(&self) -> bool {
        self.mode & MODE_DIR != 0
    }

    /// Has the entry's TTL passed at `now_ns`?
    pub fn is_expired(&self, now_ns: i64) -> bool {
        self.ttl_sec > 0 && now_ns / 1_000_000_000 >= self.crtime_s + i64::from(self.ttl_sec)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("entries always serialize")
    }

    pub fn decode(bytes: &[u8], path: &str) -> Result<Entry, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("stored entry {path:?} unreadable: {e}"))
    }

    /// The quoted ETag of a GET: the hex MD5 of the whole file when known, else one made of
    /// the chunks' ETags (as SeaweedFS does for chunked files).
    pub fn etag(&self) -> String {
        use base64::Engine;
        if let Ok(md5) = base64::engine::general_purpose::STANDARD.decode(&self.md5)
            && md5.len() == 16
        {
            return format!("\"{}\"", hex(&md5));
        }
        let mut joined = String::new();
        for chunk in &self.chunks {
            joined.push_str(&chunk.fid);
            joined.push_str(&chunk.etag);
        }
        let digest = <md5::Md5 as md5::Digest>::digest(joined.as_bytes());
        format!("\"{}-{}\"", hex(&digest), self.chunks.len())
    }

    /// Fids of `self`'s chunks that `kept` no longer holds (what an update leaves behind).
    pub fn chunks_dropped_by(&self, kept: Option<&Entry>) -> Vec<String> {
        let still: std::collections::HashSet<&str> = kept
            .map(|e| e.chunks.iter().map(|c| c.fid.as_str()).collect())
            .unwrap_or_default();
        self.chunks
            .iter()
            .filter(|c| !still.contains(c.fid.as_str()))
            .map(|c| c.fid.clone())
            .collect()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// RFC 3339 in UTC with nanoseconds, trailing zeros dropped (Go's `time.RFC3339Nano`, which
/// SeaweedFS's JSON uses).
pub fn rfc3339_nano(unix_ns: i64) -> String {
    let seconds = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The entry as SeaweedFS 4.48's filer writes it in JSON (its field names, in its order).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SeaweedEntry<'a> {
    full_path: &'a str,
    mtime: String,
    crtime: String,
    ctime: &'static str,
    atime: String,
    mode: u32,
    uid: u32,
    gid: u32,
    mime: &'a str,
    ttl_sec: u32,
    user_name: &'static str,
    group_names: Option<()>,
    symlink_target: &'static str,
    md5: Option<&'a str>,
    file_size: u64,
    rdev: u32,
    inode: u64,
    extended: Option<BTreeMap<&'a str, String>>,
    #[serde(rename = "chunks", skip_serializing_if = "Vec::is_empty")]
    chunks: Vec<SeaweedChunk<'a>>,
    hard_link_id: Option<()>,
    hard_link_counter: u32,
    content: Option<()>,
    remote: Option<()>,
    quota: u64,
    #[serde(rename = "WORMEnforcedAtTsNs")]
    worm_enforced_at_ts_ns: u64,
}

#[derive(Serialize)]
struct SeaweedChunk<'a> {
    file_id: &'a str,
    #[serde(skip_serializing_if = "is_zero_u64")]
    offset: u64,
    size: u64,
    modified_ts_ns: i64,
    e_tag: &'a str,
    fid: serde_json::Value,
}

fn is_zero_u64(value: &u64) -> bool {
    *value == 0
}

pub fn seaweed_entry<'a>(full_path: &'a str, entry: &'a Entry) -> SeaweedEntry<'a> {
    use base64::Engine;
    let mtime = rfc3339_nano(entry.mtime_ns);
    let file = !entry.is_directory();
    let extended = (!entry.extended.is_empty()).then(|| {
        entry
            .extended
            .iter()
            .map(|(name, value)| {
                let value = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
                (name.as_str(), value)
            })
            .collect()
    });
    let chunks = if file {
        entry
            .chunks
            .iter()
            .map(|chunk| SeaweedChunk {
                file_id: &chunk.fid,
                offset: chunk.offset,
                size: chunk.size,
                modified_ts_ns: chunk.mtime_ns,
                e_tag: &chunk.etag,
                fid: super::fids::json_parts(&chunk.fid),
            })
            .collect()
    } else {
        Vec::new()
    };
    SeaweedEntry {
        full_path,
        crtime: rfc3339_nano(entry.crtime_s * 1_000_000_000),
        ctime: "0001-01-01T00:00:00Z",
        atime: mtime.clone(),
        mtime,
        mode: entry.mode,
        uid: 0,
        gid: 0,
        mime: &entry.mime,
        ttl_sec: entry.ttl_sec,
        user_name: "",
        group_names: None,
        symlink_target: "",
        md5: (file && !entry.md5.is_empty()).then_some(entry.md5.as_str()),
        file_size: entry.file_size,
        rdev: 0,
        inode: entry.inode,
        extended,
        chunks,
        hard_link_id: None,
        hard_link_counter: 0,
        content: None,
        remote: None,
        quota: 0,
        worm_enforced_at_ts_ns: 0,
    }
}

/// [`seaweed_entry`] as a JSON value.
#[cfg(test)]
pub fn seaweed_json(full_path: &str, entry: &Entry) -> serde_json::Value {
    serde_json::to_value(seaweed_entry(full_path, entry)).expect("entries serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves times print as Go's RFC3339Nano, and an entry survives its stored encoding.
    #[test]
    fn times_and_encoding() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(1_796_461_184_985_606_660),
            "2026-12-05T08:59:44.98560666Z"
        );
        assert_eq!(
            rfc3339_nano(951_782_400_000_000_000),
            "2000-02-29T00:00:00Z"
        );
        let mut entry = Entry::new_file(1_796_461_184_985_606_660);
        entry.chunks.push(Chunk {
            fid: "5,027103f133".into(),
            offset: 0,
            size: 6,
            mtime_ns: 1,
            etag: "sZRqySSS0jR8YjW00mERhA==".into(),
        });
        entry.md5 = "sZRqySSS0jR8YjW00mERhA==".into();
        entry.extended.insert("Seaweed-Color".into(), "blue".into());
        let decoded = Entry::decode(&entry.encode(), "/x").unwrap();
        assert_eq!(decoded, entry);
        assert_eq!(entry.etag(), "\"b1946ac92492d2347c6235b4d2611184\"");
        let json = seaweed_json("/foo/hello.txt", &entry);
        assert_eq!(json["Crtime"], "2026-12-05T08:59:44Z");
        assert_eq!(json["chunks"][0]["fid"]["cookie"], 1_896_083_763u64);
        assert_eq!(json["Extended"]["Seaweed-Color"], "Ymx1ZQ==");
        assert!(Entry::decode(b"{", "/x").unwrap_err().contains("/x"));
    }
}
