//! Needles: one stored file. Layout (version 3; version 2 lacks the append time):
//!
//! ```text
//! cookie u32 | key u64 | size u32 | body (size bytes) | crc u32 | append_at_ns u64 | padding
//! body = data_size u32 | data | flags u8 | [name_len u8 | name] | [mime_len u8 | mime]
//!        | [last_modified 5 bytes] | [ttl 2 bytes] | [pairs_len u16 | pairs]
//! ```
//! The body is empty (size 0) when there is no data: deletes write such a needle.
//! Padding is 1..=8 bytes so that the next needle starts at a multiple of 8.

use super::ttl::Ttl;
use crate::limits;
use std::fmt;

pub const HEADER_BYTES: usize = 16;
pub const CHECKSUM_BYTES: usize = 4;
pub const TIMESTAMP_BYTES: usize = 8;
/// Bytes before the data of a needle with data: header, then the data size.
pub const DATA_PREFIX_BYTES: usize = HEADER_BYTES + 4;

pub const FLAG_GZIP: u8 = 0x01;
pub const FLAG_NAME: u8 = 0x02;
pub const FLAG_MIME: u8 = 0x04;
pub const FLAG_LAST_MODIFIED: u8 = 0x08;
pub const FLAG_TTL: u8 = 0x10;
pub const FLAG_PAIRS: u8 = 0x20;
pub const FLAG_CHUNK_MANIFEST: u8 = 0x80;
const FLAGS_PRESENCE: u8 = FLAG_NAME | FLAG_MIME | FLAG_LAST_MODIFIED | FLAG_TTL | FLAG_PAIRS;
const LAST_MODIFIED_BYTES: usize = 5;

/// Needle (and volume) format version. Kelp writes 3 and reads 2 and 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V2 = 2,
    V3 = 3,
}

impl Version {
    pub fn from_byte(byte: u8) -> Option<Version> {
        match byte {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }

    fn tail_bytes(self) -> u64 {
        match self {
            Version::V2 => CHECKSUM_BYTES as u64,
            Version::V3 => (CHECKSUM_BYTES + TIMESTAMP_BYTES) as u64,
        }
    }
}

/// Padding after a needle whose `size` field is `size`: 1..=8 bytes, never 0.
pub fn padding_bytes(size: u32, version: Version) -> u64 {
    let unpadded = HEADER_BYTES as u64 + u64::from(size) + version.tail_bytes();
    8 - unpadded % 8
}

/// Bytes a needle with this `size` field takes on disk, header and padding included.
pub fn record_bytes(size: u32, version: Version) -> u64 {
    HEADER_BYTES as u64 + u64::from(size) + version.tail_bytes() + padding_bytes(size, version)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeedleError {
    /// Fewer bytes than the header or than the record the header announces.
    Truncated {
        have: usize,
        need: u64,
    },
    /// The size field is past the largest needle (or is the `.idx` tombstone value).
    SizeTooLarge {
        size: u32,
    },
    /// A field inside the body runs past the body's end.
    FieldPastEnd {
        field: &'static str,
    },
    /// The stored checksum matches neither the CRC of the data nor SeaweedFS's legacy form.
    BadCrc {
        key: u64,
        stored: u32,
        computed: u32,
    },
    /// The key is not the one the index promised.
    WrongKey {
        want: u64,
        found: u64,
    },
    /// The size field is not the one the index promised.
    SizeMismatch {
        want: u32,
        found: u32,
    },
    /// A write with no data: on disk it could not be told from a delete marker.
    EmptyData {
        key: u64,
    },
    /// A header of zeros: space a crash left allocated but never written.
    ZeroFilled,
    NameTooLong {
        len: usize,
    },
    MimeTooLong {
        len: usize,
    },
    PairsTooLong {
        len: usize,
    },
    DataTooLong {
        len: usize,
    },
    BadTtl {
        unit: u8,
    },
}

impl fmt::Display for NeedleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use NeedleError::*;
        match self {
            Truncated { have, need } => write!(f, "needle truncated: {have} bytes, need {need}"),
            SizeTooLarge { size } => write!(f, "needle size {size} is past the largest needle"),
            FieldPastEnd { field } => write!(f, "needle field {field} runs past the needle body"),
            BadCrc {
                key,
                stored,
                computed,
            } => write!(
                f,
                "needle {key:x}: bad CRC (stored {stored:08x}, data has {computed:08x})"
            ),
            WrongKey { want, found } => {
                write!(f, "needle key {found:x} where {want:x} was expected")
            }
            SizeMismatch { want, found } => {
                write!(f, "needle size {found} where {want} was expected")
            }
            ZeroFilled => write!(f, "needle header is all zeros (allocated, never written)"),
            EmptyData { key } => write!(
                f,
                "needle {key:x} has no data (an empty needle would read as a delete marker)"
            ),
            NameTooLong { len } => write!(
                f,
                "name is {len} bytes, longer than {}",
                limits::NAME_BYTES_MAX
            ),
            MimeTooLong { len } => write!(
                f,
                "mime is {len} bytes, longer than {}",
                limits::MIME_BYTES_MAX
            ),
            PairsTooLong { len } => write!(
                f,
                "pairs are {len} bytes, longer than {}",
                limits::PAIRS_BYTES_MAX
            ),
            DataTooLong { len } => write!(
                f,
                "data is {len} bytes, longer than {}",
                limits::DATA_BYTES_MAX
            ),
            BadTtl { unit } => write!(f, "needle ttl unit byte {unit} is not 0..=6"),
        }
    }
}
impl std::error::Error for NeedleError {}

/// The first 16 bytes of every needle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeedleHeader {
    pub cookie: u32,
    pub key: u64,
    pub size: u32,
}

/// `Truncated` unless `bytes` holds at least `need` bytes.
fn require_bytes(bytes: &[u8], need: u64) -> Result<(), NeedleError> {
    if (bytes.len() as u64) < need {
        return Err(NeedleError::Truncated {
            have: bytes.len(),
            need,
        });
    }
    Ok(())
}

impl NeedleHeader {
    pub fn decode(bytes: &[u8]) -> Result<NeedleHeader, NeedleError> {
        require_bytes(bytes, HEADER_BYTES as u64)?;
        let header = NeedleHeader {
            cookie: u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes")),
            key: u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes")),
            size: u32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes")),
        };
        if header.size > limits::NEEDLE_SIZE_MAX {
            return Err(NeedleError::SizeTooLarge { size: header.size });
        }
        Ok(header)
    }

    /// A needle with this header's cookie and key and nothing else, to parse the rest into.
    fn empty_needle<'a>(&self) -> Needle<'a> {
        Needle {
            cookie: self.cookie,
            key: self.key,
            ..Needle::default()
        }
    }

    /// Bytes of the whole record this header starts.
    pub fn record_bytes(&self, version: Version) -> u64 {
        record_bytes(self.size, version)
    }
}

/// A needle, borrowing its variable fields. Used both to encode (the checksum field is then
/// ignored and recomputed) and as the result of decoding.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Needle<'a> {
    pub cookie: u32,
    pub key: u64,
    pub data: &'a [u8],
    /// Flag bits other than the presence bits: `FLAG_GZIP`, `FLAG_CHUNK_MANIFEST`, and any
    /// unknown bit read from disk (kept as found).
    pub flags: u8,
    pub name: Option<&'a [u8]>,
    pub mime: Option<&'a [u8]>,
    /// Unix seconds, low 40 bits stored.
    pub last_modified_s: Option<u64>,
    pub ttl: Option<Ttl>,
    /// JSON object text (`{"Name":"value"}`) of the `Seaweed-` headers given at upload.
    pub pairs: Option<&'a [u8]>,
    /// CRC32-C of `data` as stored (raw, or SeaweedFS's legacy form in old volumes).
    pub checksum: u32,
    /// Nanoseconds since the Unix epoch when appended (0 in version 2).
    pub append_at_ns: u64,
}

impl<'a> Needle<'a> {
    /// A delete marker: no data, so no body (size 0).
    pub fn tombstone(key: u64, cookie: u32, append_at_ns: u64) -> Needle<'static> {
        Needle {
            cookie,
            key,
            append_at_ns,
            ..Needle::default()
        }
    }

    pub fn is_gzipped(&self) -> bool {
        self.flags & FLAG_GZIP != 0
    }

    pub fn is_chunk_manifest(&self) -> bool {
        self.flags & FLAG_CHUNK_MANIFEST != 0
    }

    /// The flags byte as stored: the kept bits plus one presence bit per optional field.
    pub fn flags_byte(&self) -> u8 {
        let mut flags = self.flags & !FLAGS_PRESENCE;
        flags |= if self.name.is_some() { FLAG_NAME } else { 0 };
        flags |= if self.mime.is_some() { FLAG_MIME } else { 0 };
        flags |= if self.last_modified_s.is_some() {
            FLAG_LAST_MODIFIED
        } else {
            0
        };
        flags |= if self.ttl.is_some() { FLAG_TTL } else { 0 };
        flags |= if self.pairs.is_some() { FLAG_PAIRS } else { 0 };
        flags
    }

    /// The `size` field: body bytes, 0 when there is no data (then nothing else is stored).
    pub fn body_size(&self) -> Result<u32, NeedleError> {
        self.check_lengths()?;
        if self.data.is_empty() {
            return Ok(0);
        }
        let mut size = 4 + self.data.len() + 1;
        size += self.name.map_or(0, |name| 1 + name.len());
        size += self.mime.map_or(0, |mime| 1 + mime.len());
        size += self.last_modified_s.map_or(0, |_| LAST_MODIFIED_BYTES);
        size += self.ttl.map_or(0, |_| 2);
        size += self.pairs.map_or(0, |pairs| 2 + pairs.len());
        assert!(size <= limits::NEEDLE_SIZE_MAX as usize);
        Ok(size as u32)
    }

    fn check_lengths(&self) -> Result<(), NeedleError> {
        let len_of = |field: Option<&[u8]>| field.map_or(0, <[u8]>::len);
        if self.data.len() > limits::DATA_BYTES_MAX {
            return Err(NeedleError::DataTooLong {
                len: self.data.len(),
            });
        }
        if len_of(self.name) > limits::NAME_BYTES_MAX {
            return Err(NeedleError::NameTooLong {
                len: len_of(self.name),
            });
        }
        if len_of(self.mime) > limits::MIME_BYTES_MAX {
            return Err(NeedleError::MimeTooLong {
                len: len_of(self.mime),
            });
        }
        if len_of(self.pairs) > limits::PAIRS_BYTES_MAX {
            return Err(NeedleError::PairsTooLong {
                len: len_of(self.pairs),
            });
        }
        Ok(())
    }

    /// Bytes this needle takes on disk.
    pub fn record_bytes(&self, version: Version) -> Result<u64, NeedleError> {
        Ok(record_bytes(self.body_size()?, version))
    }

    /// Appends the whole record (header to padding, zero padding) to `out` and returns the
    /// `size` field. The checksum written is the CRC32-C of the data, as SeaweedFS 3.09+ does.
    pub fn encode(&self, version: Version, out: &mut Vec<u8>) -> Result<u32, NeedleError> {
        let size = self.body_size()?;
        let start = out.len();
        out.extend_from_slice(&self.cookie.to_be_bytes());
        out.extend_from_slice(&self.key.to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
        if size > 0 {
            self.encode_body(out);
        }
        out.extend_from_slice(&super::crc32c(self.data).to_be_bytes());
        if version == Version::V3 {
            out.extend_from_slice(&self.append_at_ns.to_be_bytes());
        }
        let padding = padding_bytes(size, version) as usize;
        out.resize(out.len() + padding, 0);
        assert_eq!((out.len() - start) as u64, record_bytes(size, version));
        assert_eq!((out.len() - start) % 8, 0);
        Ok(size)
    }

    /// The checksum field of a record `encode` wrote, whose `size` field is `size`: it follows
    /// the header and the body (the CRC32-C of the data), so callers need not hash the data
    /// a second time.
    pub fn encoded_checksum(record: &[u8], size: u32) -> u32 {
        let at = HEADER_BYTES + size as usize;
        u32::from_be_bytes(record[at..at + 4].try_into().expect("4 bytes"))
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.data.len() as u32).to_be_bytes());
        out.extend_from_slice(self.data);
        out.push(self.flags_byte());
        for field in [self.name, self.mime].into_iter().flatten() {
            out.push(field.len() as u8);
            out.extend_from_slice(field);
        }
        if let Some(seconds) = self.last_modified_s {
            out.extend_from_slice(&seconds.to_be_bytes()[8 - LAST_MODIFIED_BYTES..]);
        }
        if let Some(ttl) = self.ttl {
            out.extend_from_slice(&ttl.to_bytes());
        }
        if let Some(pairs) = self.pairs {
            out.extend_from_slice(&(pairs.len() as u16).to_be_bytes());
            out.extend_from_slice(pairs);
        }
    }

    /// Decodes a whole record (from its header up to at least the end of its tail; padding
    /// may be absent or garbage: SeaweedFS fills it with leftover bytes) and checks the CRC.
    pub fn decode(record: &'a [u8], version: Version) -> Result<Needle<'a>, NeedleError> {
        let needle = Needle::decode_skip_crc(record, version)?;
        needle.verify_crc()?;
        Ok(needle)
    }

    /// Like `decode` without the CRC check (for callers that check it themselves, or that
    /// read only the metadata).
    pub fn decode_skip_crc(record: &'a [u8], version: Version) -> Result<Needle<'a>, NeedleError> {
        let header = NeedleHeader::decode(record)?;
        let body_end = HEADER_BYTES as u64 + u64::from(header.size);
        let need = body_end + version.tail_bytes();
        require_bytes(record, need)?;
        let body = &record[HEADER_BYTES..body_end as usize];
        let tail = &record[body_end as usize..need as usize];
        let mut needle = header.empty_needle();
        if !body.is_empty() {
            let data_len = read_u32(body, 0, "data size")? as usize;
            needle.data = body
                .get(4..4 + data_len)
                .ok_or(NeedleError::FieldPastEnd { field: "data" })?;
            needle.parse_after_data(&body[4 + data_len..])?;
        }
        needle.parse_tail(tail, version);
        Ok(needle)
    }

    /// Decodes everything but the data from the first `DATA_PREFIX_BYTES` of a record
    /// (`head`) and the bytes from `rest_offset(head)` to the end of the tail (`rest`);
    /// returns the needle (with empty `data`) and the data length. Lets a server send the
    /// data of a large needle straight from the file. The CRC is not checked.
    pub fn decode_without_data(
        head: &[u8],
        rest: &'a [u8],
        version: Version,
    ) -> Result<(Needle<'a>, u32), NeedleError> {
        let header = NeedleHeader::decode(head)?;
        if header.size == 0 {
            let need = version.tail_bytes();
            require_bytes(rest, need)?;
            let mut needle = header.empty_needle();
            needle.parse_tail(rest, version);
            return Ok((needle, 0));
        }
        let data_len = read_u32(head, HEADER_BYTES, "data size")?;
        let meta_len = u64::from(header.size)
            .checked_sub(4 + u64::from(data_len))
            .ok_or(NeedleError::FieldPastEnd { field: "data" })?;
        let need = meta_len + version.tail_bytes();
        require_bytes(rest, need)?;
        let mut needle = header.empty_needle();
        needle.parse_after_data(&rest[..meta_len as usize])?;
        needle.parse_tail(&rest[meta_len as usize..need as usize], version);
        Ok((needle, data_len))
    }

    /// Where `rest` starts for `decode_without_data`: after the data, or after the header
    /// of a record without a body.
    pub fn rest_offset(head: &[u8]) -> Result<u64, NeedleError> {
        let header = NeedleHeader::decode(head)?;
        if header.size == 0 {
            return Ok(HEADER_BYTES as u64);
        }
        Ok(DATA_PREFIX_BYTES as u64 + u64::from(read_u32(head, HEADER_BYTES, "data size")?))
    }

    /// Parses flags and the optional fields. Like SeaweedFS, a field whose flag is set but
    /// which starts past the end of the body is taken as absent.
    fn parse_after_data(&mut self, bytes: &'a [u8]) -> Result<(), NeedleError> {
        let Some((&flags, mut rest)) = bytes.split_first() else {
            return Ok(());
        };
        self.flags = flags & !FLAGS_PRESENCE;
        if flags & FLAG_NAME != 0 && !rest.is_empty() {
            self.name = Some(take_u8_prefixed(&mut rest, "name")?);
        }
        if flags & FLAG_MIME != 0 && !rest.is_empty() {
            self.mime = Some(take_u8_prefixed(&mut rest, "mime")?);
        }
        if flags & FLAG_LAST_MODIFIED != 0 && !rest.is_empty() {
            let field = take(&mut rest, LAST_MODIFIED_BYTES, "last modified")?;
            let mut bytes = [0u8; 8];
            bytes[8 - LAST_MODIFIED_BYTES..].copy_from_slice(field);
            self.last_modified_s = Some(u64::from_be_bytes(bytes));
        }
        if flags & FLAG_TTL != 0 && !rest.is_empty() {
            let field = take(&mut rest, 2, "ttl")?;
            let ttl = Ttl::from_bytes([field[0], field[1]])
                .map_err(|_| NeedleError::BadTtl { unit: field[1] })?;
            self.ttl = Some(ttl);
        }
        if flags & FLAG_PAIRS != 0 && !rest.is_empty() {
            let len_bytes = take(&mut rest, 2, "pairs size")?;
            let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
            self.pairs = Some(take(&mut rest, len, "pairs")?);
        }
        Ok(())
    }

    fn parse_tail(&mut self, tail: &[u8], version: Version) {
        self.checksum = u32::from_be_bytes(tail[0..4].try_into().expect("tail has a checksum"));
        if version == Version::V3 {
            self.append_at_ns = u64::from_be_bytes(tail[4..12].try_into().expect("v3 tail"));
        }
    }

    /// Checks the stored checksum against the data (either SeaweedFS encoding is accepted).
    pub fn verify_crc(&self) -> Result<(), NeedleError> {
        if self.data.is_empty() {
            return Ok(());
        }
        let computed = super::crc32c(self.data);
        if self.checksum == computed || self.checksum == super::crc32c_legacy(computed) {
            return Ok(());
        }
        Err(NeedleError::BadCrc {
            key: self.key,
            stored: self.checksum,
            computed,
        })
    }

    /// True when the needle's TTL has passed at `now_ns`. SeaweedFS 4.48's rule, kept as is:
    /// only a needle with a TTL *and* a last-modified time expires, and it expires once
    /// `append_at + ttl <= now` (the append time, not the last-modified time, is the start;
    /// a version-2 needle, with no append time, starts at its last-modified time).
    pub fn is_expired(&self, now_ns: u64) -> bool {
        let (Some(ttl), Some(modified_s)) = (self.ttl, self.last_modified_s) else {
            return false;
        };
        if ttl.is_empty() {
            return false;
        }
        let start_ns = if self.append_at_ns != 0 {
            self.append_at_ns
        } else {
            modified_s.saturating_mul(1_000_000_000)
        };
        start_ns.saturating_add(ttl.seconds().saturating_mul(1_000_000_000)) <= now_ns
    }
}

fn read_u32(bytes: &[u8], at: usize, field: &'static str) -> Result<u32, NeedleError> {
    let slice = bytes
        .get(at..at + 4)
        .ok_or(NeedleError::FieldPastEnd { field })?;
    Ok(u32::from_be_bytes(slice.try_into().expect("4 bytes")))
}

fn take<'a>(rest: &mut &'a [u8], len: usize, field: &'static str) -> Result<&'a [u8], NeedleError> {
    if rest.len() < len {
        return Err(NeedleError::FieldPastEnd { field });
    }
    let (taken, remaining) = rest.split_at(len);
    *rest = remaining;
    Ok(taken)
}

fn take_u8_prefixed<'a>(rest: &mut &'a [u8], field: &'static str) -> Result<&'a [u8], NeedleError> {
    let len = take(rest, 1, field)?[0];
    take(rest, usize::from(len), field)
}
