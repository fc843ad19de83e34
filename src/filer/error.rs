//! A failed filer operation: the HTTP status it answers with and a message naming what and
//! where.

use super::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilerError {
    pub status: u16,
    pub message: String,
}

impl FilerError {
    pub fn new(status: u16, message: impl Into<String>) -> FilerError {
        FilerError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> FilerError {
        FilerError::new(400, message)
    }

    pub fn not_found(path: &str) -> FilerError {
        FilerError::new(404, format!("{path}: not found"))
    }

    pub fn conflict(message: impl Into<String>) -> FilerError {
        FilerError::new(409, message)
    }

    pub fn internal(message: impl Into<String>) -> FilerError {
        FilerError::new(500, message)
    }
}

impl std::fmt::Display for FilerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl From<StoreError> for FilerError {
    fn from(error: StoreError) -> FilerError {
        match error {
            StoreError::Conflict { .. } => FilerError::conflict(error.to_string()),
            StoreError::Backend { .. } => FilerError::new(503, error.to_string()),
        }
    }
}

impl From<super::volumes::VolumeError> for FilerError {
    fn from(error: super::volumes::VolumeError) -> FilerError {
        FilerError::new(502, error.0)
    }
}

pub type FilerResult<T> = Result<T, FilerError>;
