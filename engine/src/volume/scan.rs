//! Sequential scan of a `.dat`, needle by needle, through a bounded read buffer. Used by
//! recovery (the tail after the last indexed needle), `kelp fix` and `kelp export`.

use super::storage::StorageFile;
use crate::format::needle::{self, Needle, NeedleError, NeedleHeader, Version};
use crate::limits;
use std::fs::File;
use std::io;

/// Where a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// The last needle ended exactly at the end of the file.
    Clean,
    /// The bytes at `offset` are not a whole, valid needle (torn write or corruption).
    Torn { offset: u64, error: NeedleError },
}

/// Reads needles from `start` (a needle boundary) to `file_len`.
pub struct DatScanner<'f, F: StorageFile = File> {
    file: &'f F,
    file_len: u64,
    version: Version,
    offset: u64,
    buffer: Vec<u8>,
    buffer_start: u64,
}

impl<'f, F: StorageFile> DatScanner<'f, F> {
    pub fn new(file: &'f F, file_len: u64, version: Version, start: u64) -> DatScanner<'f, F> {
        assert!(start <= file_len || file_len == 0);
        DatScanner {
            file,
            file_len,
            version,
            offset: start,
            buffer: Vec::new(),
            buffer_start: 0,
        }
    }

    /// The offset of the next needle (after a `Clean` end: the end of the file).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next needle and its offset, or where and why the scan ended. CRCs are checked.
    pub fn next_needle(&mut self) -> io::Result<Result<(u64, Needle<'_>), ScanEnd>> {
        let offset = self.offset;
        let available = self.file_len.saturating_sub(offset);
        if available == 0 {
            return Ok(Err(ScanEnd::Clean));
        }
        let torn = |error| Ok(Err(ScanEnd::Torn { offset, error }));
        if available < needle::HEADER_BYTES as u64 {
            return torn(NeedleError::Truncated {
                have: available as usize,
                need: 16,
            });
        }
        let header = match NeedleHeader::decode(self.bytes_at(offset, needle::HEADER_BYTES as u64)?)
        {
            Ok(header) => header,
            Err(error) => return torn(error),
        };
        // A file system can keep a file's new length but not its data after a crash: the
        // tail reads as zeros. Zeros parse as a bodiless needle of key 0; stop there.
        if header.cookie == 0 && header.key == 0 && header.size == 0 {
            return torn(NeedleError::ZeroFilled);
        }
        let record_len = header.record_bytes(self.version);
        if record_len > available {
            return torn(NeedleError::Truncated {
                have: available as usize,
                need: record_len,
            });
        }
        self.offset = offset + record_len;
        let version = self.version;
        let record = self.bytes_at(offset, record_len)?;
        // On a bad needle the scan is over (callers stop at the first `Err`), so the
        // advanced `self.offset` is never used; `ScanEnd::Torn` carries where valid data ends.
        match Needle::decode(record, version) {
            Ok(needle) => Ok(Ok((offset, needle))),
            Err(error) => Ok(Err(ScanEnd::Torn { offset, error })),
        }
    }

    fn bytes_at(&mut self, offset: u64, len: u64) -> io::Result<&[u8]> {
        let buffer_end = self.buffer_start + self.buffer.len() as u64;
        if offset < self.buffer_start || offset + len > buffer_end {
            let want = len.max(limits::SCAN_CHUNK_BYTES_MAX as u64);
            let read_len = want.min(self.file_len - offset);
            assert!(read_len >= len);
            self.buffer.resize(read_len as usize, 0);
            self.file.read_exact_at(&mut self.buffer, offset)?;
            self.buffer_start = offset;
        }
        let start = (offset - self.buffer_start) as usize;
        Ok(&self.buffer[start..start + len as usize])
    }
}
