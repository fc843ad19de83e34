//! Collection names, the one rule for the master, the volume server, the benchmark and the
//! tools, and the volume file names that carry them: `<collection>_<id>.dat`, or `<id>.dat`
//! for the default collection ("").
//!
//! A name is 1 to `COLLECTION_NAME_BYTES_MAX` bytes of ASCII letters, digits, `_`, `-` and
//! `.`, not starting with `.`. SeaweedFS 4.48 checks nothing: it grows a collection named
//! `a b`, `ä` or `..` and fails only on `/`, when the volume file cannot be created. Kelp keeps
//! the characters that are safe in a file name, a URL query and a shell without quoting.
//! A name may hold `_`: file names are split at their last `_`, as SeaweedFS does
//! (`a_b_7.dat` is volume 7 of collection `a_b`).

use std::fmt;

use crate::limits::COLLECTION_NAME_BYTES_MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionError {
    pub name: String,
    pub reason: String,
}

impl fmt::Display for CollectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad collection {:?}: {}", self.name, self.reason)
    }
}
impl std::error::Error for CollectionError {}

/// Checks a collection name ("" is the default collection and passes).
pub fn check_collection(name: &str) -> Result<(), CollectionError> {
    let bad = |reason: String| CollectionError {
        name: name.to_string(),
        reason,
    };
    if name.len() > COLLECTION_NAME_BYTES_MAX {
        return Err(bad(format!(
            "longer than {COLLECTION_NAME_BYTES_MAX} bytes"
        )));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
    if !name.bytes().all(allowed) {
        return Err(bad("may hold only letters, digits, '_', '-' and '.'".into()));
    }
    if name.starts_with('.') {
        return Err(bad("may not start with '.'".into()));
    }
    Ok(())
}

/// The collection and volume id in a volume file's base name (its name without `.dat`,
/// `.idx` or `.vif`): `a_b_7` is (`a_b`, 7), `7` is ("", 7). None when the name is not one
/// a volume file has (no decimal id after the last `_`, or an empty collection before it).
/// The collection is returned as written; [`check_collection`] says whether Kelp takes it.
pub fn parse_volume_base_name(base: &str) -> Option<(&str, u32)> {
    let (collection, id_text) = match base.rsplit_once('_') {
        Some(("", _)) => return None,
        Some((collection, id_text)) => (collection, id_text),
        None => ("", base),
    };
    let volume_id = super::fid::parse_volume_id(id_text).ok()?;
    Some((collection, volume_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the names the rule takes and refuses, each refusal with its reason.
    #[test]
    fn names_follow_one_rule() {
        for name in ["", "pics", "pics_2024", "a-b.c", "A9", "_a", "-a"] {
            assert_eq!(check_collection(name), Ok(()), "{name:?}");
        }
        for name in ["a b", "a/b", "../etc", "ä", "a%", "a:b", "a,b"] {
            let error = check_collection(name).unwrap_err().to_string();
            assert!(error.contains("only letters, digits"), "{name:?}: {error}");
        }
        assert!(check_collection(".a").is_err());
        assert!(check_collection("..").is_err());
        let long = "a".repeat(COLLECTION_NAME_BYTES_MAX + 1);
        assert!(check_collection(&long).is_err());
        assert!(check_collection(&long[1..]).is_ok());
    }

    // Proves volume file names split at their last `_`, as SeaweedFS splits them.
    #[test]
    fn file_names_split_at_the_last_underscore() {
        assert_eq!(parse_volume_base_name("7"), Some(("", 7)));
        assert_eq!(parse_volume_base_name("pics_7"), Some(("pics", 7)));
        assert_eq!(parse_volume_base_name("a_b_7"), Some(("a_b", 7)));
        assert_eq!(parse_volume_base_name("a__7"), Some(("a_", 7)));
        assert_eq!(parse_volume_base_name("_7"), None);
        assert_eq!(parse_volume_base_name("a_b"), None);
        assert_eq!(parse_volume_base_name("notes"), None);
        assert_eq!(parse_volume_base_name("a_99999999999"), None);
    }
}
