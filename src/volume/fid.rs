//! File ids in request paths: every path form SeaweedFS's volume server accepts, split here
//! and parsed by `kelp_engine::format::fid` (the one definition of a fid).
//!
//! `/3,01637037d6`, `/3,01637037d6.jpg`, `/3/01637037d6`, `/3/01637037d6.jpg`,
//! `/3/01637037d6/name.jpg`, and the batch form `3,01637037d6_2` (key + 2).

use std::fmt;

use kelp_engine::format::fid::parse_key_cookie;
pub use kelp_engine::format::fid::parse_volume_id;
pub use kelp_engine::format::{FidError, FileId};

/// A request path resolved to a file id, plus what the path says about the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FidPath {
    pub fid: FileId,
    /// Extension with its dot (`.jpg`), "" when none: used for the Content-Type fallback.
    pub ext: String,
    /// The `/vid/fid/<name>` form's name, percent-decoded.
    pub filename: Option<String>,
}

/// Why a path is not a file id: not a fid at all (answered 404), or a malformed one (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// No fid in the path (`/`, `/3`, `/a/b/c/d`).
    NotAFid { path: String },
    /// The path has a fid's shape, but its volume id, key or cookie is malformed.
    BadFid(FidError),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::NotAFid { path } => write!(f, "path {path:?} is not a file id"),
            PathError::BadFid(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for PathError {}

/// Parse a request path (raw, not percent-decoded, no query) into a file id.
pub fn parse_path(path: &str) -> Result<FidPath, PathError> {
    let not_a_fid = || PathError::NotAFid {
        path: path.to_string(),
    };
    let trimmed = path.strip_prefix('/').ok_or_else(not_a_fid)?;
    let parts: Vec<&str> = trimmed.split('/').collect();
    let (vid_text, fid_text, filename) = match parts.as_slice() {
        [single] => single
            .split_once(',')
            .map(|(v, f)| (v, f, None))
            .ok_or_else(not_a_fid)?,
        [vid, fid] => (*vid, *fid, None),
        [vid, fid, name] => (*vid, *fid, Some(percent_decode(name))),
        _ => return Err(not_a_fid()),
    };
    let (fid_text, ext) = match (&filename, fid_text.rfind('.')) {
        (None, Some(dot)) if dot > 0 => (&fid_text[..dot], fid_text[dot..].to_string()),
        (Some(name), _) => (fid_text, extension_of(name).to_string()),
        _ => (fid_text, String::new()),
    };
    let volume_id = parse_volume_id(vid_text).map_err(PathError::BadFid)?;
    let (key, cookie) = parse_key_cookie(fid_text).map_err(PathError::BadFid)?;
    Ok(FidPath {
        fid: FileId {
            volume_id,
            key,
            cookie,
        },
        ext,
        filename,
    })
}

/// The extension of a file name with its dot, "" when none (`a.tar.gz` -> `.gz`).
pub fn extension_of(name: &str) -> &str {
    match name.rfind('.') {
        Some(dot) => &name[dot..],
        None => "",
    }
}

/// Decode `%XX` escapes; invalid escapes are kept as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes
            .get(index + 1..index + 3)
            .filter(|_| bytes[index] == b'%');
        let value = escape
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match value {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FID: FileId = FileId {
        volume_id: 3,
        key: 0x01,
        cookie: 0x637037d6,
    };

    // Proves every path form SeaweedFS accepts resolves to the same fid, with ext and name.
    #[test]
    fn every_path_form_resolves() {
        let plain = parse_path("/3,01637037d6").unwrap();
        assert_eq!(
            (plain.fid, plain.ext.as_str(), plain.filename),
            (FID, "", None)
        );
        let dotted = parse_path("/3,01637037d6.jpg").unwrap();
        assert_eq!((dotted.fid, dotted.ext.as_str()), (FID, ".jpg"));
        let slashed = parse_path("/3/01637037d6").unwrap();
        assert_eq!((slashed.fid, slashed.ext.as_str()), (FID, ""));
        let slashed_ext = parse_path("/3/01637037d6.png").unwrap();
        assert_eq!((slashed_ext.fid, slashed_ext.ext.as_str()), (FID, ".png"));
        let named = parse_path("/3/01637037d6/my%20cat.gif").unwrap();
        assert_eq!(named.fid, FID);
        assert_eq!(named.ext, ".gif");
        assert_eq!(named.filename.as_deref(), Some("my cat.gif"));
    }

    // Proves the `_N` batch suffix adds N to the key, as assign with count=N promises.
    #[test]
    fn delta_suffix_adds_to_key() {
        let fid = parse_path("/7,0a00000001_5").unwrap().fid;
        assert_eq!((fid.volume_id, fid.key, fid.cookie), (7, 0x0a + 5, 1));
        assert!(matches!(
            parse_path("/7,0a00000001_x"),
            Err(PathError::BadFid(FidError::BadDelta { .. }))
        ));
    }

    // Proves malformed fids give the engine's typed error naming the problem, and paths that
    // are no fid at all are told apart (the handlers answer 404 for those, 400 for the rest).
    #[test]
    fn malformed_fids_are_rejected() {
        for path in ["/", "/3", "/a/b/c/d", "3,01637037d6"] {
            assert!(
                matches!(parse_path(path), Err(PathError::NotAFid { .. })),
                "{path}"
            );
        }
        let bad = |path: &str| match parse_path(path) {
            Err(PathError::BadFid(error)) => error,
            other => panic!("{path}: {other:?}"),
        };
        assert!(matches!(bad("/x,01637037d6"), FidError::BadVolumeId { .. }));
        assert!(matches!(
            bad("/3,637037d6"),
            FidError::KeyCookieTooShort { .. }
        ));
        let long = format!("/3,{}", "1".repeat(25));
        assert!(matches!(bad(&long), FidError::KeyCookieTooLong { .. }));
        assert!(matches!(bad("/3,0g637037d6"), FidError::BadHex { .. }));
        assert!(matches!(
            bad("/99999999999,01637037d6"),
            FidError::BadVolumeId { .. }
        ));
        assert!(bad("/3,0g637037d6").to_string().contains("0g637037d6"));
    }

    proptest::proptest! {
        // Proves no path text makes the parser panic.
        #[test]
        fn arbitrary_paths_never_panic(path in ".{0,64}") {
            let _ = parse_path(&path);
            let _ = percent_decode(&path);
        }

        // Proves any fid the engine prints resolves as a path to the same fid.
        #[test]
        fn printed_fids_resolve(volume_id: u32, key: u64, cookie: u32) {
            let fid = FileId { volume_id, key, cookie };
            proptest::prop_assert_eq!(parse_path(&format!("/{fid}")).unwrap().fid, fid);
        }
    }
}
