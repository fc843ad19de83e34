//! File ids in request paths: every path form SeaweedFS's volume server accepts.
//!
//! `/3,01637037d6`, `/3,01637037d6.jpg`, `/3/01637037d6`, `/3/01637037d6.jpg`,
//! `/3/01637037d6/name.jpg`, and the batch form `3,01637037d6_2` (key + 2). The key is hex
//! without leading zero bytes, the last 8 hex digits are the cookie.

use std::fmt;

/// A parsed file id: volume, needle key, cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub volume_id: u32,
    pub key: u64,
    pub cookie: u32,
}

impl fmt::Display for FileId {
    /// The canonical text form: key hex without leading zero bytes, then the cookie.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_hex = format!("{:016x}", self.key);
        let significant = key_hex.trim_start_matches("00");
        let significant = if significant.is_empty() {
            "00"
        } else {
            significant
        };
        write!(f, "{},{}{:08x}", self.volume_id, significant, self.cookie)
    }
}

/// A request path resolved to a file id, plus what the path says about the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FidPath {
    pub fid: FileId,
    /// Extension with its dot (`.jpg`), "" when none: used for the Content-Type fallback.
    pub ext: String,
    /// The `/vid/fid/<name>` form's name, percent-decoded.
    pub filename: Option<String>,
}

/// Why a path is not a file id (answered 400, or 404 for paths that are not fids at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FidError {
    /// No fid in the path (`/`, `/3`, `/a/b/c/d`).
    NotAFid {
        path: String,
    },
    BadVolumeId {
        text: String,
    },
    KeyCookieTooShort {
        text: String,
    },
    KeyCookieTooLong {
        text: String,
    },
    BadHex {
        text: String,
    },
    BadDelta {
        text: String,
    },
}

impl fmt::Display for FidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FidError::NotAFid { path } => write!(f, "path {path:?} is not a file id"),
            FidError::BadVolumeId { text } => write!(f, "invalid volume id {text:?}"),
            FidError::KeyCookieTooShort { text } => {
                write!(
                    f,
                    "file key and cookie {text:?} is too short (needs > 8 hex digits)"
                )
            }
            FidError::KeyCookieTooLong { text } => {
                write!(
                    f,
                    "file key and cookie {text:?} is too long (max 24 hex digits)"
                )
            }
            FidError::BadHex { text } => write!(f, "file key and cookie {text:?} is not hex"),
            FidError::BadDelta { text } => write!(f, "invalid key delta {text:?} in file id"),
        }
    }
}

impl std::error::Error for FidError {}

/// Cookie width in hex digits.
const COOKIE_HEX_LEN: usize = 8;
/// Key (8 bytes) + cookie (4 bytes) in hex digits.
const KEY_COOKIE_HEX_LEN_MAX: usize = 24;

/// Parse a request path (raw, not percent-decoded, no query) into a file id.
pub fn parse_path(path: &str) -> Result<FidPath, FidError> {
    let not_a_fid = || FidError::NotAFid {
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
    let volume_id = parse_volume_id(vid_text)?;
    let (key, cookie) = parse_key_cookie(fid_text)?;
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

/// Parse `"3,01637037d6"` (a fid as the master hands it out).
#[cfg(test)]
pub fn parse_fid(text: &str) -> Result<FileId, FidError> {
    let (vid_text, key_cookie) = text.split_once(',').ok_or_else(|| FidError::NotAFid {
        path: text.to_string(),
    })?;
    let volume_id = parse_volume_id(vid_text)?;
    let (key, cookie) = parse_key_cookie(key_cookie)?;
    Ok(FileId {
        volume_id,
        key,
        cookie,
    })
}

pub fn parse_volume_id(text: &str) -> Result<u32, FidError> {
    let valid = !text.is_empty() && text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit());
    let bad = || FidError::BadVolumeId {
        text: text.to_string(),
    };
    if !valid {
        return Err(bad());
    }
    text.parse::<u32>().map_err(|_| bad())
}

/// `<key hex><cookie 8 hex>[_<delta decimal>]`.
fn parse_key_cookie(text: &str) -> Result<(u64, u32), FidError> {
    let (hex, delta) = match text.rfind('_') {
        Some(underscore) if underscore > 0 => (&text[..underscore], Some(&text[underscore + 1..])),
        _ => (text, None),
    };
    if hex.len() <= COOKIE_HEX_LEN {
        return Err(FidError::KeyCookieTooShort {
            text: text.to_string(),
        });
    }
    if hex.len() > KEY_COOKIE_HEX_LEN_MAX {
        return Err(FidError::KeyCookieTooLong {
            text: text.to_string(),
        });
    }
    let bad_hex = || FidError::BadHex {
        text: text.to_string(),
    };
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_hex());
    }
    let split = hex.len() - COOKIE_HEX_LEN;
    let key = u64::from_str_radix(&hex[..split], 16).map_err(|_| bad_hex())?;
    let cookie = u32::from_str_radix(&hex[split..], 16).map_err(|_| bad_hex())?;
    let key = match delta {
        None => key,
        Some(delta_text) => {
            let bad_delta = || FidError::BadDelta {
                text: text.to_string(),
            };
            let valid = !delta_text.is_empty() && delta_text.bytes().all(|b| b.is_ascii_digit());
            if !valid {
                return Err(bad_delta());
            }
            let delta: u64 = delta_text.parse().map_err(|_| bad_delta())?;
            key.checked_add(delta).ok_or_else(bad_delta)?
        }
    };
    Ok((key, cookie))
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
            parse_fid("7,0a00000001_x"),
            Err(FidError::BadDelta { .. })
        ));
    }

    // Proves malformed fids give the typed error naming the problem.
    #[test]
    fn malformed_fids_are_rejected() {
        assert!(matches!(parse_path("/"), Err(FidError::NotAFid { .. })));
        assert!(matches!(parse_path("/3"), Err(FidError::NotAFid { .. })));
        assert!(matches!(
            parse_path("/a/b/c/d"),
            Err(FidError::NotAFid { .. })
        ));
        assert!(matches!(
            parse_path("/x,01637037d6"),
            Err(FidError::BadVolumeId { .. })
        ));
        assert!(matches!(
            parse_path("/3,637037d6"),
            Err(FidError::KeyCookieTooShort { .. })
        ));
        let long = format!("/3,{}", "1".repeat(25));
        assert!(matches!(
            parse_path(&long),
            Err(FidError::KeyCookieTooLong { .. })
        ));
        assert!(matches!(
            parse_path("/3,0g637037d6"),
            Err(FidError::BadHex { .. })
        ));
        assert!(matches!(
            parse_path("/99999999999,01637037d6"),
            Err(FidError::BadVolumeId { .. })
        ));
    }

    // Proves Display is the canonical text the master hands out, and parses back.
    #[test]
    fn display_round_trips() {
        assert_eq!(FID.to_string(), "3,01637037d6");
        let big = FileId {
            volume_id: 42,
            key: 0x1234_5678_9abc,
            cookie: 0xdead_beef,
        };
        assert_eq!(big.to_string(), "42,123456789abcdeadbeef");
        assert_eq!(parse_fid(&big.to_string()).unwrap(), big);
        let zero = FileId {
            volume_id: 1,
            key: 0,
            cookie: 5,
        };
        assert_eq!(parse_fid(&zero.to_string()).unwrap(), zero);
    }

    proptest::proptest! {
        // Proves no path text makes the parser panic.
        #[test]
        fn arbitrary_paths_never_panic(path in ".{0,64}") {
            let _ = parse_path(&path);
            let _ = percent_decode(&path);
        }

        // Proves any fid survives Display -> parse.
        #[test]
        fn fid_round_trip(volume_id: u32, key: u64, cookie: u32) {
            let fid = FileId { volume_id, key, cookie };
            proptest::prop_assert_eq!(parse_fid(&fid.to_string()).unwrap(), fid);
        }
    }
}
