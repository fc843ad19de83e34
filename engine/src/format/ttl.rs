//! Time to live: 2 bytes on disk (count, unit), text like `3m 4h 5d 6w 7M 8y`, canonical
//! (largest exact unit) from the moment it is parsed.

use std::fmt;

/// The unit byte of a TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TtlUnit {
    Empty = 0,
    Minute = 1,
    Hour = 2,
    Day = 3,
    Week = 4,
    Month = 5,
    Year = 6,
}

impl TtlUnit {
    fn from_byte(byte: u8) -> Option<TtlUnit> {
        Some(match byte {
            0 => TtlUnit::Empty,
            1 => TtlUnit::Minute,
            2 => TtlUnit::Hour,
            3 => TtlUnit::Day,
            4 => TtlUnit::Week,
            5 => TtlUnit::Month,
            6 => TtlUnit::Year,
            _ => return None,
        })
    }

    fn from_letter(letter: u8) -> Option<TtlUnit> {
        Some(match letter {
            b'm' => TtlUnit::Minute,
            b'h' => TtlUnit::Hour,
            b'd' => TtlUnit::Day,
            b'w' => TtlUnit::Week,
            b'M' => TtlUnit::Month,
            b'y' => TtlUnit::Year,
            _ => return None,
        })
    }

    /// Seconds in one unit (a month is 30 days, a year 365, as in SeaweedFS).
    pub fn seconds(self) -> u64 {
        match self {
            TtlUnit::Empty => 0,
            TtlUnit::Minute => 60,
            TtlUnit::Hour => 3_600,
            TtlUnit::Day => 86_400,
            TtlUnit::Week => 7 * 86_400,
            TtlUnit::Month => 30 * 86_400,
            TtlUnit::Year => 365 * 86_400,
        }
    }

    fn letter(self) -> &'static str {
        match self {
            TtlUnit::Empty => "",
            TtlUnit::Minute => "m",
            TtlUnit::Hour => "h",
            TtlUnit::Day => "d",
            TtlUnit::Week => "w",
            TtlUnit::Month => "M",
            TtlUnit::Year => "y",
        }
    }
}

/// A time to live. `Ttl::EMPTY` (count 0) means "never expires".
///
/// Two TTLs are equal when they last as long (`60m` == `1h`, `7d` == `1w`): equality, hashing
/// and order go by [`Ttl::seconds`], so a TTL read from an old volume in a non-canonical form
/// still lands in the layout of its duration. Text is parsed to the canonical form at once
/// ([`Ttl::parse`]), so the text a TTL prints is the same for every spelling of it.
#[derive(Clone, Copy, Debug)]
pub struct Ttl {
    pub count: u8,
    pub unit: TtlUnit,
}

impl PartialEq for Ttl {
    fn eq(&self, other: &Ttl) -> bool {
        self.seconds() == other.seconds()
    }
}
impl Eq for Ttl {}

impl std::hash::Hash for Ttl {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.seconds().hash(state);
    }
}

impl PartialOrd for Ttl {
    fn partial_cmp(&self, other: &Ttl) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ttl {
    fn cmp(&self, other: &Ttl) -> std::cmp::Ordering {
        self.seconds().cmp(&other.seconds())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlError {
    /// The text is not `<count><unit>` with a decimal count and a unit in `mhdwMy`, or its
    /// duration has no exact 2-byte form.
    BadText { text: String, reason: String },
    /// The unit byte on disk is not 0..=6.
    BadUnitByte { byte: u8 },
}

impl fmt::Display for TtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TtlError::BadText { text, reason } => write!(f, "bad ttl {text:?}: {reason}"),
            TtlError::BadUnitByte { byte } => write!(f, "bad ttl unit byte {byte} (want 0..=6)"),
        }
    }
}
impl std::error::Error for TtlError {}

/// Digits of a TTL count in text (`1440m` is a day); more is refused before any arithmetic.
const COUNT_DIGITS_MAX: usize = 9;

impl Ttl {
    pub const EMPTY: Ttl = Ttl {
        count: 0,
        unit: TtlUnit::Empty,
    };

    /// The longest TTL the two bytes hold: 255 years.
    pub const MAX: Ttl = Ttl {
        count: 255,
        unit: TtlUnit::Year,
    };

    /// Parses every SeaweedFS spelling: `<count><unit>` with a unit in `m h d w M y`, a bare
    /// count of minutes, "" or a zero count for none. The value is then put in its canonical
    /// form, the largest unit that holds it exactly (`60m` is `1h`, `7d` is `1w`, `24h` is
    /// `1d`, `1440m` is `1d`), as SeaweedFS does, so every spelling of one duration gives the
    /// same two bytes and the same layout.
    ///
    /// Refused, where SeaweedFS would quietly store something else: an unknown unit (it stores
    /// no TTL), a count that is not decimal digits, and a duration with no exact 2-byte form
    /// (`256m`; SeaweedFS rounds it down to `4h`).
    pub fn parse(text: &str) -> Result<Ttl, TtlError> {
        let bad = |reason: String| TtlError::BadText {
            text: text.to_string(),
            reason,
        };
        let Some(&last) = text.as_bytes().last() else {
            return Ok(Ttl::EMPTY);
        };
        let (digits, unit) = if last.is_ascii_digit() {
            (text, TtlUnit::Minute)
        } else {
            let unit = TtlUnit::from_letter(last)
                .ok_or_else(|| bad("unit is not one of m h d w M y".into()))?;
            (&text[..text.len() - 1], unit)
        };
        let digits_ok = !digits.is_empty()
            && digits.len() <= COUNT_DIGITS_MAX
            && digits.bytes().all(|b| b.is_ascii_digit());
        if !digits_ok {
            return Err(bad(format!(
                "count is not a number of 1 to {COUNT_DIGITS_MAX} digits"
            )));
        }
        let count: u64 = digits
            .parse()
            .map_err(|_| bad("count is not a number".into()))?;
        let seconds = count * unit.seconds();
        if seconds > Ttl::MAX.seconds() {
            return Err(bad(format!("longer than {}, the longest ttl", Ttl::MAX)));
        }
        let ttl = Ttl::fit_seconds(seconds);
        if ttl.seconds() != seconds {
            return Err(bad(format!(
                "has no exact 2-byte form (count up to 255 of one unit); the nearest shorter is {ttl}"
            )));
        }
        Ok(ttl)
    }

    /// The same duration in canonical form (what [`Ttl::parse`] gives for any spelling of it).
    pub fn canonical(self) -> Ttl {
        let canonical = Ttl::fit_seconds(self.seconds());
        assert_eq!(
            canonical.seconds(),
            self.seconds(),
            "{self:?} has an exact form"
        );
        canonical
    }

    /// The TTL in the largest unit that holds `seconds` exactly with a count below 256, else
    /// rounded down in the smallest unit whose count fits (SeaweedFS's `fitTtlCount`).
    fn fit_seconds(seconds: u64) -> Ttl {
        assert!(
            seconds <= Ttl::MAX.seconds(),
            "{seconds} s is past the longest ttl"
        );
        if seconds == 0 {
            return Ttl::EMPTY;
        }
        use TtlUnit::*;
        for unit in [Year, Month, Week, Day, Hour] {
            if seconds.is_multiple_of(unit.seconds()) && seconds / unit.seconds() < 256 {
                return Ttl {
                    count: (seconds / unit.seconds()) as u8,
                    unit,
                };
            }
        }
        let unit = [Minute, Hour, Day, Week, Month, Year]
            .into_iter()
            .find(|unit| seconds / unit.seconds() < 256)
            .expect("at most 255 years fit in years");
        Ttl {
            count: (seconds / unit.seconds()) as u8,
            unit,
        }
    }

    pub fn from_bytes(bytes: [u8; 2]) -> Result<Ttl, TtlError> {
        let unit = TtlUnit::from_byte(bytes[1]).ok_or(TtlError::BadUnitByte { byte: bytes[1] })?;
        Ok(Ttl {
            count: bytes[0],
            unit,
        })
    }

    pub fn to_bytes(self) -> [u8; 2] {
        [self.count, self.unit as u8]
    }

    pub fn is_empty(self) -> bool {
        self.count == 0 || self.unit == TtlUnit::Empty
    }

    pub fn seconds(self) -> u64 {
        u64::from(self.count) * self.unit.seconds()
    }
}

impl fmt::Display for Ttl {
    /// The canonical text form (`1h` for a TTL stored as `60m`); "" for an empty TTL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        let canonical = self.canonical();
        write!(f, "{}{}", canonical.count, canonical.unit.letter())
    }
}

/// On the wire (heartbeats, status JSON) a TTL is its canonical text, parsed on receipt.
impl serde::Serialize for Ttl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ttl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Ttl, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ttl::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Default for Ttl {
    fn default() -> Ttl {
        Ttl::EMPTY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl(count: u8, unit: TtlUnit) -> Ttl {
        Ttl { count, unit }
    }

    // Proves every SeaweedFS spelling of one duration parses to one canonical TTL (the same
    // bytes, the same text), as SeaweedFS 4.48 groups them (`60m` and `1h` grow one layout).
    #[test]
    fn spellings_of_one_duration_are_one_ttl() {
        let groups: [(&[&str], Ttl); 6] = [
            (&["60m", "1h", "60", "01h"], ttl(1, TtlUnit::Hour)),
            (&["7d", "1w", "168h", "10080m"], ttl(1, TtlUnit::Week)),
            (&["24h", "1d", "1440m"], ttl(1, TtlUnit::Day)),
            (&["3M", "90d"], ttl(3, TtlUnit::Month)),
            (&["1y", "365d"], ttl(1, TtlUnit::Year)),
            (&["", "0", "0m", "0y"], Ttl::EMPTY),
        ];
        for (spellings, expected) in groups {
            for text in spellings {
                let parsed = Ttl::parse(text).unwrap();
                assert_eq!(parsed.to_bytes(), expected.to_bytes(), "{text}");
                assert_eq!(parsed.to_string(), expected.to_string(), "{text}");
            }
        }
        assert_eq!(
            Ttl::parse("12M").unwrap().to_string(),
            "12M",
            "360 days, not a year"
        );
        assert_eq!(Ttl::parse("5").unwrap().to_string(), "5m");
    }

    // Proves equality, hashing and text go by duration: a TTL stored as `60m` (an older
    // SeaweedFS wrote such bytes) equals `1h` and prints as `1h`.
    #[test]
    fn equality_goes_by_duration() {
        use std::collections::HashSet;
        let stored = Ttl::from_bytes([60, TtlUnit::Minute as u8]).unwrap();
        assert_eq!(stored, Ttl::parse("1h").unwrap());
        assert_eq!(stored.to_string(), "1h");
        let set: HashSet<Ttl> = [stored, ttl(1, TtlUnit::Hour)].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_ne!(ttl(1, TtlUnit::Hour), ttl(1, TtlUnit::Day));
        assert!(ttl(2, TtlUnit::Hour) < ttl(1, TtlUnit::Day));
        assert_eq!(ttl(0, TtlUnit::Day), Ttl::EMPTY);
    }

    // Proves text SeaweedFS would store as something else is refused with a reason: an
    // unknown unit (SeaweedFS: no TTL), a sign, a fraction, no count, a duration with no
    // exact 2-byte form (SeaweedFS rounds `256m` down to `4h`), and more than 255 years.
    #[test]
    fn bad_text_is_refused_with_a_reason() {
        for text in [
            "3x",
            "1H",
            "-1h",
            "+1h",
            " 1h",
            "1.5h",
            "h",
            "1h ",
            "9999999999m",
        ] {
            assert!(Ttl::parse(text).is_err(), "{text:?}");
        }
        let inexact = Ttl::parse("256m").unwrap_err().to_string();
        assert!(inexact.contains("nearest shorter is 4h"), "{inexact}");
        let long = Ttl::parse("256y").unwrap_err().to_string();
        assert!(long.contains("longer than 255y"), "{long}");
        assert_eq!(Ttl::parse("255y").unwrap(), Ttl::MAX);
    }

    // Proves the JSON form is the canonical text and a bad text fails the decoding.
    #[test]
    fn json_is_canonical_text() {
        let ttl: Ttl = serde_json::from_str("\"60m\"").unwrap();
        assert_eq!(serde_json::to_string(&ttl).unwrap(), "\"1h\"");
        assert_eq!(serde_json::to_string(&Ttl::EMPTY).unwrap(), "\"\"");
        let bad = serde_json::from_str::<Ttl>("\"3x\"")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("bad ttl \"3x\""), "{bad}");
    }
}
