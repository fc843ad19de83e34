//! Replica placement `xyz`: x copies in other data centers, y in other racks of the same data
//! center, z on other servers of the same rack. Stored as one byte `x*100 + y*10 + z`.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
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
    /// Parses `xyz` (shorter text is left-padded with zeros, "" is `000`, as in SeaweedFS).
    pub fn parse(text: &str) -> Result<ReplicaPlacement, PlacementError> {
        let bad = |reason| PlacementError {
            text: text.to_string(),
            reason,
        };
        if text.len() > 3 {
            return Err(bad("longer than 3 digits"));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not all digits"));
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
