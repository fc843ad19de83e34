//! Sending `Body::File` regions. Below the zero-copy threshold (or on the poll driver) the
//! region is read through the ring into the send buffer right after the queued heads, so a
//! small file leaves in one send. At or above it (io_uring only) the head is sent with
//! MSG_MORE and the region is spliced file -> pipe -> socket: the bytes never enter user space.

use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::driver::ToSharedFd;
use compio::driver::op::{Send, SendFlags, Splice, SpliceFlags};
use compio::io::AsyncWriteExt;
use compio::net::TcpStream;

use super::FileRegion;
use crate::limits::{FILE_COPY_CHUNK_BYTES_MAX, SPLICE_CHUNK_BYTES_MAX};

/// A connection's pipe for splicing; kept while the connection lives. It is empty between
/// regions (every byte spliced in is spliced out before the next chunk); after an error the
/// connection closes, so a pipe with leftovers is never reused.
pub(crate) struct SplicePipe {
    read_end: Rc<OwnedFd>,
    write_end: Rc<OwnedFd>,
    capacity_bytes: usize,
}

impl SplicePipe {
    fn new() -> io::Result<SplicePipe> {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two fresh descriptors into `fds`.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned only here.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A larger pipe moves more per splice; the kernel may refuse (pipe-max-size), which
        // only costs more round trips.
        // SAFETY: fcntl on a pipe we own.
        unsafe {
            libc::fcntl(
                fds[1],
                libc::F_SETPIPE_SZ,
                SPLICE_CHUNK_BYTES_MAX as libc::c_int,
            )
        };
        // SAFETY: as above.
        let capacity = unsafe { libc::fcntl(fds[1], libc::F_GETPIPE_SZ) };
        let capacity_bytes = if capacity > 0 {
            capacity as usize
        } else {
            64 * 1024
        };
        Ok(SplicePipe {
            read_end: Rc::new(read_end),
            write_end: Rc::new(write_end),
            capacity_bytes: capacity_bytes.min(SPLICE_CHUNK_BYTES_MAX),
        })
    }
}

/// Runs one send under `timeout`: a client that stops reading costs its connection, not more.
pub(crate) async fn timed<F: Future>(timeout: Duration, send: F) -> io::Result<F::Output> {
    compio::time::timeout(timeout, send).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "client took no response bytes for {} ms",
                timeout.as_millis()
            ),
        )
    })
}

/// Sends `outgoing` (queued heads) followed by the file region; `outgoing` comes back empty.
/// Each send may wait at most `timeout` for the client.
pub(crate) async fn send_region(
    stream: &mut TcpStream,
    outgoing: &mut Vec<u8>,
    region: FileRegion,
    pipe: Option<&mut Option<SplicePipe>>,
    timeout: Duration,
) -> io::Result<()> {
    region_end(&region)?;
    if region.len == 0 {
        return Ok(()); // The queued head goes out with the next flush.
    }
    match pipe {
        Some(pipe) => splice_region(stream, outgoing, region, pipe, timeout).await,
        None => copy_region(stream, outgoing, region, timeout).await,
    }
}

fn region_end(region: &FileRegion) -> io::Result<u64> {
    region
        .offset
        .checked_add(region.len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file region end overflows u64"))
}

/// Reads the region through the ring in chunks appended after the queued heads.
async fn copy_region(
    stream: &mut TcpStream,
    outgoing: &mut Vec<u8>,
    region: FileRegion,
    timeout: Duration,
) -> io::Result<()> {
    let end = region_end(&region)?;
    let mut offset = region.offset;
    let mut buffer = std::mem::take(outgoing);
    while offset < end {
        let chunk = (end - offset).min(FILE_COPY_CHUNK_BYTES_MAX as u64) as usize;
        let BufResult(read, filled) =
            crate::fs::append_exact_at(region.file.clone(), offset, chunk, buffer).await;
        buffer = filled;
        if let Err(error) = read {
            *outgoing = buffer;
            return Err(error);
        }
        offset += chunk as u64;
        let BufResult(written, mut sent) = timed(timeout, stream.write_all(buffer)).await?;
        sent.clear();
        buffer = sent;
        if let Err(error) = written {
            *outgoing = buffer;
            return Err(error);
        }
    }
    *outgoing = buffer;
    Ok(())
}

/// Sends the queued heads with MSG_MORE (so they share a segment with the first spliced
/// bytes), then splices the region through the connection's pipe.
async fn splice_region(
    stream: &mut TcpStream,
    outgoing: &mut Vec<u8>,
    region: FileRegion,
    pipe: &mut Option<SplicePipe>,
    timeout: Duration,
) -> io::Result<()> {
    let socket = stream.to_shared_fd();
    let mut head = std::mem::take(outgoing);
    let mut head_sent = 0;
    while head_sent < head.len() {
        let flags = SendFlags::MORE | SendFlags::NOSIGNAL;
        let op = Send::new(socket.clone(), head.slice(head_sent..), flags);
        let BufResult(result, op) = timed(timeout, compio::runtime::submit(op)).await?;
        head = op.into_inner().into_inner();
        let sent = result?;
        if sent == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "socket took no bytes",
            ));
        }
        head_sent += sent;
    }
    head.clear();
    *outgoing = head;
    if pipe.is_none() {
        *pipe = Some(SplicePipe::new()?);
    }
    let pipe = pipe.as_ref().expect("created above");
    let end = region_end(&region)?;
    let mut offset = region.offset;
    while offset < end {
        let chunk = (end - offset).min(pipe.capacity_bytes as u64) as usize;
        let into_pipe = Splice::new(
            region.file.clone(),
            offset as i64,
            pipe.write_end.clone(),
            -1,
            chunk,
            SpliceFlags::MOVE,
        );
        let moved = compio::runtime::submit(into_pipe).await.0?;
        if moved == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file ends at offset {offset}, before the region end {end}"),
            ));
        }
        let more_follows = offset + (moved as u64) < end;
        timed(timeout, drain_pipe(pipe, &socket, moved, more_follows)).await??;
        offset += moved as u64;
    }
    Ok(())
}

/// Splices `pending` bytes from the pipe to the socket.
async fn drain_pipe<S: std::os::fd::AsFd + Clone + 'static>(
    pipe: &SplicePipe,
    socket: &S,
    mut pending: usize,
    more_follows: bool,
) -> io::Result<()> {
    while pending > 0 {
        let flags = if more_follows {
            SpliceFlags::MOVE | SpliceFlags::MORE
        } else {
            SpliceFlags::MOVE
        };
        let out_of_pipe = Splice::new(
            pipe.read_end.clone(),
            -1,
            socket.clone(),
            -1,
            pending,
            flags,
        );
        let sent = compio::runtime::submit(out_of_pipe).await.0?;
        if sent == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "socket took no bytes",
            ));
        }
        assert!(sent <= pending);
        pending -= sent;
    }
    Ok(())
}
