//! File id text: `<volume id decimal>,<key hex without leading zero bytes><cookie 8 hex>`,
//! optionally followed by `_<n>` which adds `n` to the key (a batch assigned with `count=N`).

use std::fmt;

/// A parsed file id: which volume, which needle, and the cookie that guards it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub volume_id: u32,
    pub key: u64,
    pub cookie: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FidError {
    NoComma { text: String },
    BadVolumeId { text: String },
    KeyCookieTooShort { text: String },
    KeyCookieTooLong { text: String },
    BadHex { text: String },
    BadDelta { text: String },
    DeltaOverflow { text: String },
}

impl fmt::Display for FidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FidError::NoComma { text } => {
                write!(f, "bad fid {text:?}: no comma between volume id and key")
            }
            FidError::BadVolumeId { text } => write!(
                f,
                "bad fid {text:?}: volume id is not a decimal number below 2^32"
            ),
            FidError::KeyCookieTooShort { text } => write!(
                f,
                "bad fid {text:?}: key and cookie shorter than 9 hex digits"
            ),
            FidError::KeyCookieTooLong { text } => write!(
                f,
                "bad fid {text:?}: key and cookie longer than 24 hex digits"
            ),
            FidError::BadHex { text } => {
                write!(f, "bad fid {text:?}: key or cookie is not hexadecimal")
            }
            FidError::BadDelta { text } => write!(
                f,
                "bad fid {text:?}: suffix after '_' is not a decimal number"
            ),
            FidError::DeltaOverflow { text } => {
                write!(f, "bad fid {text:?}: key plus suffix overflows 64 bits")
            }
        }
    }
}
impl std::error::Error for FidError {}

impl FileId {
    /// Parses `3,01637037d6` or `3,01637037d6_2`.
    pub fn parse(text: &str) -> Result<FileId, FidError> {
        let (volume_text, key_cookie_text) =
            text.split_once(',').ok_or_else(|| FidError::NoComma {
                text: text.to_string(),
            })?;
        let volume_id = parse_volume_id(volume_text).map_err(|e| e.with_text(text))?;
        let (key, cookie) = parse_key_cookie(key_cookie_text).map_err(|e| e.with_text(text))?;
        Ok(FileId {
            volume_id,
            key,
            cookie,
        })
    }

    /// The key and cookie part without the volume id, as SeaweedFS prints it.
    pub fn key_cookie_text(&self) -> String {
        format_key_cookie(self.key, self.cookie)
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{}",
            self.volume_id,
            format_key_cookie(self.key, self.cookie)
        )
    }
}

/// Parses a decimal volume id (no sign, no spaces, below 2^32).
pub fn parse_volume_id(text: &str) -> Result<u32, FidError> {
    let bad = || FidError::BadVolumeId {
        text: text.to_string(),
    };
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u32>().map_err(|_| bad())
}

/// The volume id that starts a volume or file id as clients send them: `3`, `3,01637037d6`,
/// `3/01637037d6` (what follows the id is not looked at).
pub fn parse_volume_id_prefix(text: &str) -> Result<u32, FidError> {
    let head = text.split([',', '/']).next().unwrap_or(text);
    parse_volume_id(head).map_err(|e| e.with_text(text))
}

/// Parses `<key hex><cookie 8 hex>[_<delta>]` into (key + delta, cookie).
pub fn parse_key_cookie(text: &str) -> Result<(u64, u32), FidError> {
    let own = || text.to_string();
    let (hex, delta) = match text.rfind('_') {
        Some(at) if at > 0 => (&text[..at], Some(&text[at + 1..])),
        _ => (text, None),
    };
    if hex.len() <= 8 {
        return Err(FidError::KeyCookieTooShort { text: own() });
    }
    if hex.len() > 24 {
        return Err(FidError::KeyCookieTooLong { text: own() });
    }
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FidError::BadHex { text: own() });
    }
    let split = hex.len() - 8;
    let key =
        u64::from_str_radix(&hex[..split], 16).map_err(|_| FidError::BadHex { text: own() })?;
    let cookie =
        u32::from_str_radix(&hex[split..], 16).map_err(|_| FidError::BadHex { text: own() })?;
    let Some(delta) = delta else {
        return Ok((key, cookie));
    };
    if delta.is_empty() || delta.len() > 20 || !delta.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FidError::BadDelta { text: own() });
    }
    let delta: u64 = delta
        .parse()
        .map_err(|_| FidError::BadDelta { text: own() })?;
    let key = key
        .checked_add(delta)
        .ok_or(FidError::DeltaOverflow { text: own() })?;
    Ok((key, cookie))
}

/// `key` as big-endian bytes without leading zero bytes, then the cookie, in lower-case hex.
/// Key 0 keeps one zero byte (`00` + cookie) so that its text parses back; SeaweedFS prints
/// the cookie alone, which neither it nor Kelp can parse (no server hands out key 0).
pub fn format_key_cookie(key: u64, cookie: u32) -> String {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&key.to_be_bytes());
    bytes[8..].copy_from_slice(&cookie.to_be_bytes());
    let first = bytes[..8].iter().position(|&b| b != 0).unwrap_or(7);
    let mut text = String::with_capacity(24);
    for byte in &bytes[first..] {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

impl FidError {
    fn with_text(self, text: &str) -> FidError {
        let text = text.to_string();
        match self {
            FidError::NoComma { .. } => FidError::NoComma { text },
            FidError::BadVolumeId { .. } => FidError::BadVolumeId { text },
            FidError::KeyCookieTooShort { .. } => FidError::KeyCookieTooShort { text },
            FidError::KeyCookieTooLong { .. } => FidError::KeyCookieTooLong { text },
            FidError::BadHex { .. } => FidError::BadHex { text },
            FidError::BadDelta { .. } => FidError::BadDelta { text },
            FidError::DeltaOverflow { .. } => FidError::DeltaOverflow { text },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the example from SeaweedFS's docs parses to volume 3, key 1, cookie 0x637037d6
    // and prints back to the same text.
    #[test]
    fn documented_example_round_trips() {
        let fid = FileId::parse("3,01637037d6").unwrap();
        assert_eq!(
            fid,
            FileId {
                volume_id: 3,
                key: 1,
                cookie: 0x637037d6
            }
        );
        assert_eq!(fid.to_string(), "3,01637037d6");
    }

    // Proves key 0 prints with one zero byte and parses back.
    #[test]
    fn key_zero_round_trips() {
        let fid = FileId {
            volume_id: 1,
            key: 0,
            cookie: 5,
        };
        assert_eq!(fid.to_string(), "1,0000000005");
        assert_eq!(FileId::parse(&fid.to_string()), Ok(fid));
    }

    // Proves the `_N` suffix adds N to the key and that malformed ids give the right error.
    #[test]
    fn suffix_and_errors() {
        assert_eq!(FileId::parse("3,01637037d6_2").unwrap().key, 3);
        assert!(matches!(
            FileId::parse("301637037d6"),
            Err(FidError::NoComma { .. })
        ));
        assert!(matches!(
            FileId::parse("x,01637037d6"),
            Err(FidError::BadVolumeId { .. })
        ));
        assert!(matches!(
            FileId::parse("3,637037d6"),
            Err(FidError::KeyCookieTooShort { .. })
        ));
        assert!(matches!(
            FileId::parse("3,01z37037d6"),
            Err(FidError::BadHex { .. })
        ));
        assert!(matches!(
            FileId::parse("3,01637037d6_x"),
            Err(FidError::BadDelta { .. })
        ));
        assert!(matches!(
            parse_volume_id_prefix("+3,01637037d6"),
            Err(FidError::BadVolumeId { .. })
        ));
        assert_eq!(parse_volume_id_prefix("3/01637037d6"), Ok(3));
        assert_eq!(parse_volume_id_prefix("3"), Ok(3));
        let max = format!("3,{}", format_key_cookie(u64::MAX, 1));
        assert!(matches!(
            FileId::parse(&format!("{max}_1")),
            Err(FidError::DeltaOverflow { .. })
        ));
    }
}
