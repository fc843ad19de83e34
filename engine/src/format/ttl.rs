//! Time to live: 2 bytes on disk (count, unit), text like `3m 4h 5d 6w 7M 8y`.

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ttl {
    pub count: u8,
    pub unit: TtlUnit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlError {
    /// The text is not `<count><unit>` with a count of 0..=255 and a unit in `mhdwMy`.
    BadText { text: String, reason: &'static str },
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

impl Ttl {
    pub const EMPTY: Ttl = Ttl {
        count: 0,
        unit: TtlUnit::Empty,
    };

    /// Parses `3m`, `4h`, `5d`, `6w`, `7M`, `8y`, or a bare number of minutes; "" is empty.
    /// Like SeaweedFS, the value is then expressed in the largest unit that holds it exactly
    /// (`60m` becomes `1h`), so the same duration always has the same bytes.
    pub fn parse(text: &str) -> Result<Ttl, TtlError> {
        let bad = |reason| TtlError::BadText {
            text: text.to_string(),
            reason,
        };
        let bytes = text.as_bytes();
        let Some(&last) = bytes.last() else {
            return Ok(Ttl::EMPTY);
        };
        let (digits, unit) = if last.is_ascii_digit() {
            (text, TtlUnit::Minute)
        } else {
            let unit = TtlUnit::from_letter(last).ok_or(bad("unit is not one of m h d w M y"))?;
            (&text[..text.len() - 1], unit)
        };
        if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("count is not a number of at most 3 digits"));
        }
        let count: u64 = digits.parse().map_err(|_| bad("count is not a number"))?;
        if count > 255 {
            return Err(bad("count is larger than 255"));
        }
        Ok(Ttl::fit_seconds(count * unit.seconds()))
    }

    /// The TTL in the largest unit that holds `seconds` exactly with a count below 256, else
    /// rounded down in the smallest unit whose count fits (SeaweedFS's `fitTtlCount`).
    pub fn fit_seconds(seconds: u64) -> Ttl {
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
        for unit in [Minute, Hour, Day, Week, Month, Year] {
            if seconds / unit.seconds() < 256 {
                return Ttl {
                    count: (seconds / unit.seconds()) as u8,
                    unit,
                };
            }
        }
        Ttl::EMPTY
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
    /// The text form; "" for an empty TTL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        write!(f, "{}{}", self.count, self.unit.letter())
    }
}
