//! `.idx` entries: key u64 | offset in 8-byte units (4 bytes, or 4 low + 1 high byte) | size
//! u32, big-endian. The file is an append-only log; the last entry for a key wins; size
//! `0xFFFF_FFFF` marks a delete.

use std::fmt;

/// `.idx` size of a deleted needle (SeaweedFS's `TombstoneFileSize`, -1 as i32).
pub const TOMBSTONE_SIZE: u32 = 0xFFFF_FFFF;

/// How many bytes an `.idx` offset takes: 4 (16-byte entries, 32 GiB volumes) or 5 (17-byte
/// entries, 8 TiB volumes, SeaweedFS's "large disk" build).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetWidth {
    Four = 4,
    Five = 5,
}

impl OffsetWidth {
    pub fn from_bytes_offset(bytes_offset: u32) -> Option<OffsetWidth> {
        match bytes_offset {
            4 => Some(OffsetWidth::Four),
            5 => Some(OffsetWidth::Five),
            _ => None,
        }
    }

    /// Bytes of one `.idx` entry.
    pub fn entry_bytes(self) -> usize {
        8 + self as usize + 4
    }

    /// Largest `.dat` these offsets can address.
    pub fn volume_bytes_max(self) -> u64 {
        match self {
            OffsetWidth::Four => crate::limits::VOLUME_BYTES_MAX_OFFSET4,
            OffsetWidth::Five => crate::limits::VOLUME_BYTES_MAX_OFFSET5,
        }
    }
}

/// One `.idx` entry. `offset_units * 8` is the byte offset of the needle in the `.dat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdxEntry {
    pub key: u64,
    pub offset_units: u64,
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdxError {
    /// The file length is not a multiple of the entry size (a torn last entry).
    TrailingBytes { len: usize, entry_bytes: usize },
    /// An offset does not fit the width (more than 32 or 40 bits of units).
    OffsetTooLarge {
        offset_units: u64,
        width: OffsetWidth,
    },
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdxError::TrailingBytes { len, entry_bytes } => write!(
                f,
                "index is {len} bytes, not a multiple of its {entry_bytes}-byte entries (torn last entry)"
            ),
            IdxError::OffsetTooLarge {
                offset_units,
                width,
            } => write!(
                f,
                "offset of {offset_units} units does not fit in {} bytes",
                *width as usize
            ),
        }
    }
}
impl std::error::Error for IdxError {}

impl IdxEntry {
    pub fn is_tombstone(&self) -> bool {
        self.size == TOMBSTONE_SIZE
    }

    pub fn offset_bytes(&self) -> u64 {
        self.offset_units * super::PADDING_BYTES
    }

    /// Writes the entry into `out[..width.entry_bytes()]`.
    pub fn encode(&self, width: OffsetWidth, out: &mut [u8]) -> Result<(), IdxError> {
        let limit_units = width.volume_bytes_max() / super::PADDING_BYTES;
        if self.offset_units >= limit_units {
            return Err(IdxError::OffsetTooLarge {
                offset_units: self.offset_units,
                width,
            });
        }
        assert!(out.len() >= width.entry_bytes());
        out[0..8].copy_from_slice(&self.key.to_be_bytes());
        out[8..12].copy_from_slice(&(self.offset_units as u32).to_be_bytes());
        let size_at = match width {
            OffsetWidth::Four => 12,
            OffsetWidth::Five => {
                out[12] = (self.offset_units >> 32) as u8;
                13
            }
        };
        out[size_at..size_at + 4].copy_from_slice(&self.size.to_be_bytes());
        Ok(())
    }

    /// Reads one entry from `bytes[..width.entry_bytes()]`; `None` when `bytes` is too short.
    pub fn decode(bytes: &[u8], width: OffsetWidth) -> Option<IdxEntry> {
        if bytes.len() < width.entry_bytes() {
            return None;
        }
        let key = u64::from_be_bytes(bytes[0..8].try_into().ok()?);
        let low = u64::from(u32::from_be_bytes(bytes[8..12].try_into().ok()?));
        let (high, size_at) = match width {
            OffsetWidth::Four => (0, 12),
            OffsetWidth::Five => (u64::from(bytes[12]), 13),
        };
        let size = u32::from_be_bytes(bytes[size_at..size_at + 4].try_into().ok()?);
        Some(IdxEntry {
            key,
            offset_units: low | (high << 32),
            size,
        })
    }
}

/// Every whole entry of an `.idx` image, in file order, and the error for a torn tail (the
/// whole entries before it are still returned by the iterator).
pub fn parse_entries(
    bytes: &[u8],
    width: OffsetWidth,
) -> (impl Iterator<Item = IdxEntry> + '_, Option<IdxError>) {
    let entry_bytes = width.entry_bytes();
    let tail = bytes.len() % entry_bytes;
    let error = (tail != 0).then_some(IdxError::TrailingBytes {
        len: bytes.len(),
        entry_bytes,
    });
    let whole = &bytes[..bytes.len() - tail];
    let entries = whole
        .chunks_exact(entry_bytes)
        .map(move |chunk| IdxEntry::decode(chunk, width).expect("chunk has entry_bytes"));
    (entries, error)
}
