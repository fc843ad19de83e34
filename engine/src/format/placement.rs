//! Replica placement `xyz`: x copies in other data centers, y in other racks of the same data
//! center, z on other servers of the same rack. Stored as one byte `x*100 + y*10 + z`.
//!
//! The one rule for placement text, used by the master (`/dir/assign`, `/vol/grow`,
//! `--default-replication`), the volume server (`/admin/volume/create`) and the benchmark:
//! one to three decimal digits, left-padded with zeros (`1` is `001`, "" is `000`), at most
//! 255 as a number. SeaweedFS 4.48 pads the same way and refuses past 255 ("unexpected
//! replication type"), but it reads only the first three characters of a longer text
//! (`0001` becomes `000`, dropping the copy asked for) and takes any character at or above
//! `'0'` as a digit (`00a` asks for 49 copies): Kelp refuses both.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ReplicaPlacement {
    pub other_data_centers: u8,
    pub other_racks: u8,
    pub same_rack: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementError {
    pub text: String,
    pub reason: &'static str,
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad replica placement {:?}: {}", self.text, self.reason)
    }
}
impl std::error::Error for PlacementError {}

impl ReplicaPlacement {
    /// Parses `xyz` (shorter text is left-padded with zeros, "" is `000`, as in SeaweedFS;
    /// see the module comment for what SeaweedFS takes and Kelp refuses).
    pub fn parse(text: &str) -> Result<ReplicaPlacement, PlacementError> {
        let bad = |reason| PlacementError {
            text: text.to_string(),
            reason,
        };
        if text.len() > 3 {
            return Err(bad("longer than 3 digits xyz (like 000, 001, 010, 100)"));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not decimal digits xyz (like 000, 001, 010, 100)"));
        }
        let padded = format!("{text:0>3}");
        let digit = |i: usize| padded.as_bytes()[i] - b'0';
        let placement = ReplicaPlacement {
            other_data_centers: digit(0),
            other_racks: digit(1),
            same_rack: digit(2),
        };
        if placement.value() > 255 {
            return Err(bad("does not fit in one byte (at most 255)"));
        }
        Ok(placement)
    }

    fn value(self) -> u32 {
        u32::from(self.other_data_centers) * 100
            + u32::from(self.other_racks) * 10
            + u32::from(self.same_rack)
    }

    pub fn from_byte(byte: u8) -> ReplicaPlacement {
        ReplicaPlacement {
            other_data_centers: byte / 100,
            other_racks: byte / 10 % 10,
            same_rack: byte % 10,
        }
    }

    pub fn to_byte(self) -> u8 {
        let value = self.value();
        assert!(value <= 255);
        value as u8
    }

    /// Number of copies of each needle, the original included.
    pub fn copy_count(self) -> usize {
        usize::from(self.other_data_centers)
            + usize::from(self.other_racks)
            + usize::from(self.same_rack)
            + 1
    }
}

impl fmt::Display for ReplicaPlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.other_data_centers, self.other_racks, self.same_rack
        )
    }
}

/// On the wire (heartbeats, status JSON) a placement is its three-digit text.
impl serde::Serialize for ReplicaPlacement {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ReplicaPlacement {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<ReplicaPlacement, D::Error> {
        let text = String::deserialize(deserializer)?;
        ReplicaPlacement::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves short text is padded as SeaweedFS pads it and the result prints as three digits.
    #[test]
    fn short_text_is_padded() {
        for (text, expected) in [("", "000"), ("1", "001"), ("01", "001"), ("10", "010")] {
            assert_eq!(ReplicaPlacement::parse(text).unwrap().to_string(), expected);
        }
        let most = ReplicaPlacement::parse("255").unwrap();
        assert_eq!((most.to_byte(), most.copy_count()), (255, 13));
    }

    // Proves the texts SeaweedFS misreads or refuses are refused, each with its reason.
    #[test]
    fn bad_text_is_refused_with_a_reason() {
        let reason = |text: &str| ReplicaPlacement::parse(text).unwrap_err().to_string();
        assert!(reason("0001").contains("longer than 3 digits"));
        assert!(reason("9x9").contains("not decimal digits"));
        assert!(reason("00a").contains("not decimal digits"));
        assert!(reason("-1").contains("not decimal digits"));
        assert!(reason("256").contains("at most 255"));
        assert!(reason("300").contains("\"300\""));
    }

    // Proves the JSON form is the three-digit text and a bad text fails the decoding.
    #[test]
    fn json_is_three_digits() {
        let placement: ReplicaPlacement = serde_json::from_str("\"1\"").unwrap();
        assert_eq!(serde_json::to_string(&placement).unwrap(), "\"001\"");
        assert!(serde_json::from_str::<ReplicaPlacement>("\"9x9\"").is_err());
    }
}
