//! Sending large in-memory bodies with io_uring's SEND_ZC: the kernel hands the body's pages
//! to the network device instead of copying them into socket buffers. Each send returns at
//! once with the bytes it took; the pages stay the kernel's until a second completion (the
//! notification) says the device is done with them, so the body (`Bytes`, reference-counted)
//! is held until then. Over loopback the kernel copies anyway; on a real NIC or a veth pair
//! the copy is saved, at the price of that second completion (BENCHMARKS.md, "SEND_ZC").

use std::io;
use std::time::Duration;

use bytes::Bytes;
use compio::BufResult;
use compio::io::AsyncWriteZerocopy;
use compio::net::TcpStream;

use super::send_file::timed;

/// Sends all of `body`, waiting at most `timeout` for the client on each send and for each
/// notification.
pub(crate) async fn send_zero_copy(
    stream: &mut TcpStream,
    body: Bytes,
    timeout: Duration,
) -> io::Result<()> {
    let mut sent = 0;
    while sent < body.len() {
        let part = body.slice(sent..);
        let BufResult(result, ready) = timed(timeout, stream.write_zerocopy(part)).await?;
        // The kernel may still hold the pages even when the send failed or was partial: the
        // part is released only once it says so.
        let _part = timed(timeout, ready).await?;
        let taken = result?;
        if taken == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the client took no bytes of a zero-copy send",
            ));
        }
        sent += taken;
        assert!(sent <= body.len());
    }
    Ok(())
}
