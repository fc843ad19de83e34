//! Positional file I/O through the core's ring (io_uring READ/WRITE/FSYNC, or the poll driver's
//! thread pool). For the volume server: it keeps its files as `Arc<std::fs::File>` and calls
//! these from its core's tasks. (compio's own `compio::fs::File` works too; these exist so a
//! file shared with `Body::File` responses needs no second handle.)

use std::io;
use std::os::fd::AsFd;

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf, SetLen};
use compio::driver::op::{ReadAt, Sync, WriteAt};

/// Appends exactly `len` bytes read from `file` at `offset` to `buffer`.
/// A file shorter than `offset + len` is an `UnexpectedEof` error naming the offsets.
pub async fn append_exact_at<S>(
    file: S,
    offset: u64,
    len: usize,
    mut buffer: Vec<u8>,
) -> BufResult<(), Vec<u8>>
where
    S: AsFd + Clone + 'static,
{
    let start_len = buffer.len();
    let end_len = start_len + len;
    buffer.reserve(len);
    while buffer.len() < end_len {
        let done = buffer.len() - start_len;
        let want = end_len - buffer.len();
        let filled = buffer.len();
        let window = buffer.slice(filled..filled + want);
        let op = ReadAt::new(file.clone(), offset + done as u64, window);
        let BufResult(result, op) = compio::runtime::submit(op).await;
        let mut window = op.into_inner();
        let read = match result {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => 0,
            Err(error) => return BufResult(Err(error), window.into_inner()),
        };
        // SAFETY: the kernel initialised `read` bytes at the start of the window.
        unsafe { window.set_len(read) };
        buffer = window.into_inner();
        if read == 0 && buffer.len() < end_len {
            let error = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "file ends before byte {} (read {} of {len} bytes at offset {offset})",
                    offset + len as u64,
                    done
                ),
            );
            return BufResult(Err(error), buffer);
        }
    }
    assert_eq!(buffer.len(), end_len);
    BufResult(Ok(()), buffer)
}

/// Writes all of `buffer` to `file` at `offset`.
pub async fn write_all_at<S, T>(file: S, offset: u64, buffer: T) -> BufResult<(), T>
where
    S: AsFd + Clone + 'static,
    T: IoBuf,
{
    let total = buffer.buf_len();
    let mut written = 0usize;
    let mut buffer = buffer;
    while written < total {
        let op = WriteAt::new(
            file.clone(),
            offset + written as u64,
            buffer.slice(written..),
        );
        let BufResult(result, op) = compio::runtime::submit(op).await;
        buffer = op.into_inner().into_inner();
        match result {
            Ok(0) => {
                let error = io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!(
                        "write at offset {} made no progress",
                        offset + written as u64
                    ),
                );
                return BufResult(Err(error), buffer);
            }
            Ok(count) => written += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return BufResult(Err(error), buffer),
        }
    }
    BufResult(Ok(()), buffer)
}

/// fdatasync(2) through the ring.
pub async fn sync_data<S: AsFd + 'static>(file: S) -> io::Result<()> {
    let BufResult(result, _) = compio::runtime::submit(Sync::new(file, true)).await;
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    // Proves write_all_at/append_exact_at round-trip bytes at an offset, sync_data succeeds,
    // and a read past the end is a clear UnexpectedEof instead of short data.
    #[test]
    fn positional_round_trip_and_eof() {
        let runtime = compio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let file = tempfile::tempfile().unwrap();
            let file = Arc::new(file);
            let BufResult(written, _) =
                write_all_at(file.clone(), 100, b"hello world".to_vec()).await;
            written.unwrap();
            sync_data(file.clone()).await.unwrap();
            let BufResult(read, buffer) =
                append_exact_at(file.clone(), 106, 5, b">".to_vec()).await;
            read.unwrap();
            assert_eq!(buffer, b">world");
            let BufResult(read, _) = append_exact_at(file.clone(), 106, 6, Vec::new()).await;
            let error = read.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            assert!(error.to_string().contains("offset 106"), "{error}");
        });
    }
}
