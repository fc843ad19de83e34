//! `.vif`: a small JSON object (SeaweedFS's `VolumeInfo`) next to a volume. Kelp reads
//! `version`, `bytesOffset`, `replication` and `readOnly`, keeps nothing else, and writes the
//! same shape SeaweedFS 4.48 writes so that `weed` opens Kelp's volumes.

use super::idx::OffsetWidth;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    pub version: u32,
    /// 0 when absent (then the `.idx` uses 4-byte offsets).
    pub bytes_offset: u32,
    pub replication: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VifError {
    NotJson {
        reason: String,
    },
    NotAnObject,
    BadField {
        field: &'static str,
        reason: &'static str,
    },
    UnsupportedBytesOffset {
        bytes_offset: u64,
    },
}

impl fmt::Display for VifError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VifError::NotJson { reason } => write!(f, "volume info is not JSON: {reason}"),
            VifError::NotAnObject => write!(f, "volume info is not a JSON object"),
            VifError::BadField { field, reason } => {
                write!(f, "volume info field {field:?}: {reason}")
            }
            VifError::UnsupportedBytesOffset { bytes_offset } => {
                write!(f, "volume info bytesOffset {bytes_offset} is not 4 or 5")
            }
        }
    }
}
impl std::error::Error for VifError {}

impl VolumeInfo {
    /// What Kelp writes for a new volume: version 3 with 5-byte offsets (see FORMAT.md).
    pub fn new(width: OffsetWidth, replication: String) -> VolumeInfo {
        VolumeInfo {
            version: 3,
            bytes_offset: width as u32,
            replication,
            read_only: false,
        }
    }

    /// The `.idx` offset width this volume uses (absent or 0 means 4, as before `.vif`).
    pub fn offset_width(&self) -> Result<OffsetWidth, VifError> {
        match self.bytes_offset {
            0 => Ok(OffsetWidth::Four),
            n => OffsetWidth::from_bytes_offset(n).ok_or(VifError::UnsupportedBytesOffset {
                bytes_offset: u64::from(n),
            }),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<VolumeInfo, VifError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| VifError::NotJson {
                reason: e.to_string(),
            })?;
        let object = value.as_object().ok_or(VifError::NotAnObject)?;
        let number = |field: &'static str| -> Result<u64, VifError> {
            match object.get(field) {
                None | Some(serde_json::Value::Null) => Ok(0),
                Some(serde_json::Value::Number(n)) => n.as_u64().ok_or(VifError::BadField {
                    field,
                    reason: "not a whole number",
                }),
                // protobuf JSON writes 64-bit numbers as strings.
                Some(serde_json::Value::String(s)) => s.parse().map_err(|_| VifError::BadField {
                    field,
                    reason: "not a whole number",
                }),
                Some(_) => Err(VifError::BadField {
                    field,
                    reason: "not a number",
                }),
            }
        };
        let version = u32::try_from(number("version")?).map_err(|_| VifError::BadField {
            field: "version",
            reason: "too large",
        })?;
        let bytes_offset = number("bytesOffset")?;
        if !matches!(bytes_offset, 0 | 4 | 5) {
            return Err(VifError::UnsupportedBytesOffset { bytes_offset });
        }
        let replication = match object.get("replication") {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(VifError::BadField {
                    field: "replication",
                    reason: "not a string",
                });
            }
        };
        let read_only = match object.get("readOnly") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => {
                return Err(VifError::BadField {
                    field: "readOnly",
                    reason: "not a boolean",
                });
            }
        };
        Ok(VolumeInfo {
            version,
            bytes_offset: bytes_offset as u32,
            replication,
            read_only,
        })
    }

    /// The JSON text, in the field order and spelling SeaweedFS 4.48 uses.
    pub fn encode(&self) -> String {
        let replication = serde_json::Value::String(self.replication.clone());
        format!(
            "{{\n  \"files\": [],\n  \"version\": {},\n  \"replication\": {},\n  \"bytesOffset\": {},\n  \"datFileSize\": \"0\",\n  \"expireAtSec\": \"0\",\n  \"readOnly\": {},\n  \"ecShardConfig\": null,\n  \"readOnlyCanDelete\": false\n}}",
            self.version, replication, self.bytes_offset, self.read_only
        )
    }
}
