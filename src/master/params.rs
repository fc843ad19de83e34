//! Parsing of request parameters (query strings and the assignment options built from
//! them) with an error text for every bad value. The domain words (TTL, placement,
//! collection, fid) are `kelp_engine::format`'s. No I/O.

use kelp_engine::format::{
    FileId, ReplicaPlacement, Ttl, check_collection, parse_volume_id_prefix,
};

use super::topology::VolumeReport;

/// Volumes are grouped by (collection, replication, ttl), each a parsed value: two
/// spellings of one TTL (`60m`, `1h`) or of one placement (`1`, `001`) are one layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayoutKey {
    pub collection: String,
    pub placement: ReplicaPlacement,
    pub ttl: Ttl,
}

impl LayoutKey {
    pub fn new(collection: &str, placement: ReplicaPlacement, ttl: Ttl) -> LayoutKey {
        LayoutKey {
            collection: collection.to_string(),
            placement,
            ttl,
        }
    }

    /// The layout a reported volume belongs to (its fields were parsed on receipt).
    pub fn of_volume(volume: &VolumeReport) -> LayoutKey {
        LayoutKey::new(&volume.collection, volume.replica_placement, volume.ttl)
    }
}

/// How many volumes one automatic grow creates for `placement` (SeaweedFS's numbers).
pub fn grow_batch(placement: ReplicaPlacement) -> u32 {
    let copies = placement.copy_count();
    assert!(copies >= 1, "a placement has at least one copy");
    match copies {
        1 => 7,
        2 => 6,
        3 => 3,
        _ => 1,
    }
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
    pub fn parse(
        query: &Query,
        default_placement: ReplicaPlacement,
    ) -> Result<AssignOptions, String> {
        let fields = AssignFields {
            collection: query.text("collection"),
            replication: query.text("replication"),
            ttl: query.text("ttl"),
            data_center: query.text("dataCenter"),
            rack: query.text("rack"),
        };
        fields.check(default_placement)
    }
}

/// The assignment options as text, however they arrived (a query string, a gRPC request).
pub struct AssignFields<'a> {
    pub collection: &'a str,
    pub replication: &'a str,
    pub ttl: &'a str,
    pub data_center: &'a str,
    pub rack: &'a str,
}

impl AssignFields<'_> {
    /// The parsed options, or the first bad field's message; an empty replication is
    /// `default_placement`.
    pub fn check(&self, default_placement: ReplicaPlacement) -> Result<AssignOptions, String> {
        check_collection(self.collection).map_err(|e| e.to_string())?;
        let placement = match self.replication {
            "" => default_placement,
            text => ReplicaPlacement::parse(text).map_err(|e| e.to_string())?,
        };
        let ttl = Ttl::parse(self.ttl).map_err(|e| e.to_string())?;
        Ok(AssignOptions {
            key: LayoutKey::new(self.collection, placement, ttl),
            data_center: self.data_center.to_string(),
            rack: self.rack.to_string(),
        })
    }
}

/// The volume id a lookup asks for: a volume id, or a file id (whose key, cookie and any
/// extension, as in `3,01637037d6.jpg`, are checked and then set aside).
pub fn lookup_volume_id(asked: &str) -> Result<u32, String> {
    let checked = match asked.contains(',') {
        true => FileId::parse(asked.split_once('.').map_or(asked, |(fid, _)| fid)),
        false => parse_volume_id_prefix(asked).map(|volume_id| FileId {
            volume_id,
            key: 0,
            cookie: 0,
        }),
    };
    checked.map(|fid| fid.volume_id).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn options(query: &str) -> Result<AssignOptions, String> {
        AssignOptions::parse(&Query::parse(query), ReplicaPlacement::default())
    }

    // Proves assignment options are parsed values: spellings of one TTL or placement give
    // one layout key, and the default placement applies only when none is named.
    #[test]
    fn spellings_give_one_layout_key() {
        let key = |query: &str| options(query).unwrap().key;
        assert_eq!(key("ttl=60m&replication=1"), key("ttl=1h&replication=001"));
        assert_eq!(key("ttl=7d"), key("ttl=1w"));
        assert_eq!(key("ttl=24h").ttl.to_string(), "1d");
        assert_eq!(key("ttl=0m"), key(""));
        let default = ReplicaPlacement::parse("010").unwrap();
        let parsed = AssignOptions::parse(&Query::parse("collection=a_b"), default).unwrap();
        assert_eq!(
            (parsed.key.placement, parsed.key.collection.as_str()),
            (default, "a_b")
        );
    }

    // Proves every bad replication, ttl and collection is refused with a message naming it,
    // instead of becoming a default (a bad TTL used to mean "no TTL").
    #[test]
    fn bad_parameters_are_refused() {
        for query in [
            "ttl=3x",
            "ttl=1H",
            "ttl=-1h",
            "ttl=256m",
            "replication=0001",
            "replication=9x9",
        ] {
            let value = query.split_once('=').unwrap().1;
            let error = options(query).unwrap_err();
            assert!(error.contains(value), "{query}: {error}");
        }
        assert!(options("collection=..%2Fetc").is_err());
        assert!(options("collection=a%20b").is_err());
        assert_eq!(grow_batch(ReplicaPlacement::parse("110").unwrap()), 3);
        let query = Query::parse("count=0&ttl=1d&collection=a%20b");
        assert!(query.count("count", 1, 10).is_err());
        assert_eq!(query.text("collection"), "a b");
        assert!(Query::parse("count=x").count("count", 1, 10).is_err());
        assert_eq!(Query::parse("").count("count", 1, 10), Ok(1));
    }

    proptest! {
        // Proves the query parser never panics on arbitrary input.
        #[test]
        fn query_parser_never_panics(text in ".{0,64}") {
            let query = Query::parse(&text);
            let _ = query.count("count", 1, 10);
        }
    }
}
