//! The 8-byte superblock at the start of every `.dat`:
//! version | replica placement | ttl (2) | compaction revision (u16) | extra size (u16),
//! followed by `extra size` bytes of SeaweedFS protobuf extra (kept, not interpreted).

use super::needle::Version;
use super::placement::ReplicaPlacement;
use super::ttl::{Ttl, TtlError};
use std::fmt;

pub const SUPERBLOCK_BYTES: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuperBlock {
    pub version: Version,
    pub placement: ReplicaPlacement,
    pub ttl: Ttl,
    pub compaction_revision: u16,
    /// Bytes of extra data after the 8 fixed bytes; the first needle follows them.
    pub extra_bytes: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuperBlockError {
    TooShort { len: usize },
    UnknownVersion { version: u8 },
    BadTtl(TtlError),
}

impl fmt::Display for SuperBlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuperBlockError::TooShort { len } => {
                write!(
                    f,
                    "superblock is {len} bytes, want at least {SUPERBLOCK_BYTES}"
                )
            }
            SuperBlockError::UnknownVersion { version } => {
                write!(f, "unknown volume version {version} (Kelp reads 2 and 3)")
            }
            SuperBlockError::BadTtl(e) => write!(f, "superblock ttl: {e}"),
        }
    }
}
impl std::error::Error for SuperBlockError {}

impl SuperBlock {
    /// A fresh version-3 superblock.
    pub fn new(placement: ReplicaPlacement, ttl: Ttl) -> SuperBlock {
        SuperBlock {
            version: Version::V3,
            placement,
            ttl,
            compaction_revision: 0,
            extra_bytes: 0,
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<SuperBlock, SuperBlockError> {
        if bytes.len() < SUPERBLOCK_BYTES {
            return Err(SuperBlockError::TooShort { len: bytes.len() });
        }
        let version = Version::from_byte(bytes[0])
            .ok_or(SuperBlockError::UnknownVersion { version: bytes[0] })?;
        let ttl = Ttl::from_bytes([bytes[2], bytes[3]]).map_err(SuperBlockError::BadTtl)?;
        Ok(SuperBlock {
            version,
            placement: ReplicaPlacement::from_byte(bytes[1]),
            ttl,
            compaction_revision: u16::from_be_bytes([bytes[4], bytes[5]]),
            extra_bytes: u16::from_be_bytes([bytes[6], bytes[7]]),
        })
    }

    /// The 8 fixed bytes. Kelp never writes an extra, so `extra_bytes` must be 0 here.
    pub fn encode(&self) -> [u8; SUPERBLOCK_BYTES] {
        assert_eq!(self.extra_bytes, 0, "Kelp writes no superblock extra");
        let mut bytes = [0u8; SUPERBLOCK_BYTES];
        bytes[0] = self.version as u8;
        bytes[1] = self.placement.to_byte();
        bytes[2..4].copy_from_slice(&self.ttl.to_bytes());
        bytes[4..6].copy_from_slice(&self.compaction_revision.to_be_bytes());
        bytes
    }

    /// Where the first needle starts: after the fixed bytes and the extra.
    pub fn block_bytes(&self) -> u64 {
        SUPERBLOCK_BYTES as u64 + u64::from(self.extra_bytes)
    }
}
