//! Parsing of request parameters (query strings, replication, ttl, collection, fid) with an
//! error text for every bad value. No I/O.

use super::limits::COLLECTION_NAME_BYTES_MAX;
use super::topology::VolumeReport;

/// Replica placement `xyz`: other data centers, other racks, other servers in the same rack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Placement {
    pub other_data_centers: u8,
    pub other_racks: u8,
    pub same_rack: u8,
}

impl Placement {
    pub fn parse(text: &str) -> Result<Placement, String> {
        let digits = text.as_bytes();
        let valid = digits.len() == 3 && digits.iter().all(u8::is_ascii_digit);
        if !valid {
            return Err(format!(
                "replication {text:?} is not three digits xyz (like 000, 001, 010, 100)"
            ));
        }
        Ok(Placement {
            other_data_centers: digits[0] - b'0',
            other_racks: digits[1] - b'0',
            same_rack: digits[2] - b'0',
        })
    }

    /// Replicas of a volume: `x + y + z + 1`.
    pub fn copies(self) -> usize {
        usize::from(self.other_data_centers)
            + usize::from(self.other_racks)
            + usize::from(self.same_rack)
            + 1
    }

    /// How many volumes one automatic grow creates (SeaweedFS's numbers).
    pub fn grow_batch(self) -> u32 {
        match self.copies() {
            1 => 7,
            2 => 6,
            3 => 3,
            _ => 1,
        }
    }
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.other_data_centers, self.other_racks, self.same_rack
        )
    }
}

/// Volumes are grouped by (collection, replication, ttl).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayoutKey {
    pub collection: String,
    pub placement: Placement,
    /// Normalized ttl text ("" for none).
    pub ttl: String,
}

impl LayoutKey {
    pub fn new(collection: &str, placement: Placement, ttl: &str) -> LayoutKey {
        LayoutKey {
            collection: collection.to_string(),
            placement,
            ttl: ttl.to_string(),
        }
    }

    /// The layout a reported volume belongs to; unparsable fields count as the defaults.
    pub fn of_volume(volume: &VolumeReport) -> LayoutKey {
        let placement = Placement::parse(&volume.replica_placement).unwrap_or(Placement {
            other_data_centers: 0,
            other_racks: 0,
            same_rack: 0,
        });
        let ttl = parse_ttl(&volume.ttl).unwrap_or_default();
        LayoutKey::new(&volume.collection, placement, &ttl)
    }
}

/// Normalize a ttl: `""` (none), or count + unit `m h d w M y`; a bare number means minutes.
/// A zero count means no ttl.
pub fn parse_ttl(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    let (digits, unit) = match text.as_bytes()[text.len() - 1] {
        b'0'..=b'9' => (text, 'm'),
        b'm' | b'h' | b'd' | b'w' | b'M' | b'y' => (
            &text[..text.len() - 1],
            char::from(text.as_bytes()[text.len() - 1]),
        ),
        _ => return Err(format!("ttl {text:?}: unit must be one of m h d w M y")),
    };
    let count: u8 = digits
        .parse()
        .map_err(|_| format!("ttl {text:?}: count must be a number 0..=255"))?;
    if count == 0 {
        return Ok(String::new());
    }
    Ok(format!("{count}{unit}"))
}

/// Collection names become file name prefixes on the volume servers.
pub fn check_collection(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    if name.len() > COLLECTION_NAME_BYTES_MAX {
        return Err(format!(
            "collection name is longer than {COLLECTION_NAME_BYTES_MAX} bytes"
        ));
    }
    if !name.chars().all(allowed) || name.starts_with('.') {
        return Err(format!(
            "collection {name:?} may hold only letters, digits, '_', '-' and '.'"
        ));
    }
    Ok(())
}

/// The decoded pairs of a query string (`+` is a space; bad escapes are kept as written).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let hex = |b: u8| char::from(b).to_digit(16);
        if byte == b'%'
            && index + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[index + 1]), hex(bytes[index + 2]))
        {
            out.push((high * 16 + low) as u8);
            index += 3;
            continue;
        }
        out.push(if byte == b'+' { b' ' } else { byte });
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters by name (the first value wins).
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(query: &str) -> Query {
        Query {
            pairs: query_pairs(query),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// An optional positive integer at most `max`; `default` when absent or empty.
    pub fn count(&self, name: &str, default: u64, max: u64) -> Result<u64, String> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(text) => match text.parse::<u64>() {
                Ok(value) if (1..=max).contains(&value) => Ok(value),
                _ => Err(format!(
                    "{name} {text:?} must be a whole number from 1 to {max}"
                )),
            },
        }
    }

    pub fn is_pretty(&self) -> bool {
        matches!(self.get("pretty"), Some(v) if !v.is_empty() && v != "n" && v != "false")
    }
}

/// The assignment options shared by `/dir/assign`, `/submit` and `/vol/grow`.
#[derive(Debug, Clone)]
pub struct AssignOptions {
    pub key: LayoutKey,
    pub data_center: String,
    pub rack: String,
}

impl AssignOptions {
    pub fn parse(query: &Query, default_placement: Placement) -> Result<AssignOptions, String> {
        let collection = query.text("collection");
        check_collection(collection)?;
        let placement = match query.text("replication") {
            "" => default_placement,
            text => Placement::parse(text)?,
        };
        let ttl = parse_ttl(query.text("ttl"))?;
        Ok(AssignOptions {
            key: LayoutKey::new(collection, placement, &ttl),
            data_center: query.text("dataCenter").to_string(),
            rack: query.text("rack").to_string(),
        })
    }
}

/// fid text: `<vid>,<key hex without leading zero bytes><cookie 8 hex>`.
/// (A private copy until `kelp_engine::format` publishes the fid code.)
pub fn format_fid(volume_id: u32, key: u64, cookie: u32) -> String {
    let key_bytes = key.to_be_bytes();
    let first = key_bytes.iter().position(|b| *b != 0).unwrap_or(7);
    let mut text = format!("{volume_id},");
    for byte in &key_bytes[first..] {
        text.push_str(&format!("{byte:02x}"));
    }
    text.push_str(&format!("{cookie:08x}"));
    text
}

/// The volume id of a fid-like path or parameter: `3`, `3,01abcd...`, `3/01abcd...`.
pub fn volume_id_of(text: &str) -> Result<u32, String> {
    let head = text.split([',', '/']).next().unwrap_or("");
    head.parse::<u32>()
        .map_err(|_| format!("{text:?} does not start with a volume id"))
}

/// Split a fid text into (volume id, key, cookie).
pub fn parse_fid(text: &str) -> Result<(u32, u64, u32), String> {
    let (volume, rest) = text
        .split_once(',')
        .ok_or_else(|| format!("fid {text:?} has no comma"))?;
    let volume_id = volume_id_of(volume)?;
    let rest = rest.split('.').next().unwrap_or("");
    let rest = rest.split('_').next().unwrap_or("");
    if rest.len() <= 8 || rest.len() > 24 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("fid {text:?}: expected <key hex><cookie 8 hex>"));
    }
    let (key_hex, cookie_hex) = rest.split_at(rest.len() - 8);
    let key = u64::from_str_radix(key_hex, 16).map_err(|e| format!("fid {text:?}: {e}"))?;
    let cookie = u32::from_str_radix(cookie_hex, 16).map_err(|e| format!("fid {text:?}: {e}"))?;
    Ok((volume_id, key, cookie))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Proves the fid text matches SeaweedFS's (`3,01637037d6`) and parses back.
    #[test]
    fn fid_text_matches_seaweedfs() {
        assert_eq!(format_fid(3, 1, 0x637037d6), "3,01637037d6");
        assert_eq!(format_fid(7, 0x1234, 0xab), "7,1234000000ab");
        assert_eq!(format_fid(1, 0, 1), "1,0000000001");
        assert_eq!(parse_fid("3,01637037d6").unwrap(), (3, 1, 0x637037d6));
        assert!(parse_fid("3,zz637037d6").is_err());
        assert!(parse_fid("x,01637037d6").is_err());
        assert!(parse_fid("3").is_err());
    }

    // Proves every bad replication, ttl and collection is refused with a message.
    #[test]
    fn bad_parameters_are_refused() {
        assert!(Placement::parse("01").is_err());
        assert!(Placement::parse("0a1").is_err());
        assert_eq!(Placement::parse("110").unwrap().copies(), 3);
        assert_eq!(parse_ttl("3").unwrap(), "3m");
        assert_eq!(parse_ttl("4d").unwrap(), "4d");
        assert_eq!(parse_ttl("0d").unwrap(), "");
        assert!(parse_ttl("3x").is_err());
        assert!(parse_ttl("999d").is_err());
        assert!(check_collection("pictures_2024").is_ok());
        assert!(check_collection("../etc").is_err());
        assert!(check_collection("a b").is_err());
        let query = Query::parse("count=0&ttl=1d&collection=a%20b");
        assert!(query.count("count", 1, 10).is_err());
        assert_eq!(query.text("collection"), "a b");
        assert!(Query::parse("count=x").count("count", 1, 10).is_err());
        assert_eq!(Query::parse("").count("count", 1, 10), Ok(1));
    }

    proptest! {
        // Proves fid formatting and parsing are inverse for every volume, key and cookie.
        #[test]
        fn fid_round_trips(volume in 1u32.., key in any::<u64>(), cookie in any::<u32>()) {
            let text = format_fid(volume, key, cookie);
            prop_assert_eq!(parse_fid(&text).unwrap(), (volume, key, cookie));
        }

        // Proves the query parser never panics on arbitrary input.
        #[test]
        fn query_parser_never_panics(text in ".{0,64}") {
            let query = Query::parse(&text);
            let _ = query.count("count", 1, 10);
        }
    }
}
