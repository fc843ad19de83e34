//! A file's data: uploaded to volume servers in chunks of at most `--max-chunk-mb` (several
//! in flight at once), and streamed back chunk after chunk in order (a few fetched ahead),
//! never holding the whole file in memory.

use std::sync::Arc;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use md5::Digest;

use super::entry::{Chunk, Entry};
use super::error::{FilerError, FilerResult};
use super::limits::{CHUNK_READ_AHEAD_MAX, CHUNK_UPLOADS_IN_FLIGHT_MAX, CHUNKS_PER_FILE_MAX};
use super::namespace::{Namespace, now_ns};
use super::volumes::{FidTicket, Placement, Volumes};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// Attempts to upload one chunk (each on a new fid; a refusing volume's lease is dropped).
const CHUNK_UPLOAD_ATTEMPTS: u32 = 3;

/// Chunks uploaded for one file, not yet committed. Keep it until the entry is committed:
/// its tickets hold the fids' lease open, so a crash before the commit leaves them to the
/// sweep.
pub struct Uploaded {
    pub chunks: Vec<Chunk>,
    pub size: u64,
    pub md5_base64: String,
    pub tickets: Vec<FidTicket>,
}

impl Uploaded {
    pub fn fids(&self) -> Vec<String> {
        self.chunks.iter().map(|c| c.fid.clone()).collect()
    }
}

/// Where uploads go and how they are cut.
pub struct Writer {
    pub volumes: Arc<Volumes>,
    pub namespace: Arc<Namespace>,
    pub chunk_bytes: usize,
}

impl Writer {
    /// Upload one chunk: a fid from the lease, retried on a new fid when a volume refuses.
    async fn put_chunk(
        &self,
        placement: &Placement,
        offset: u64,
        data: Bytes,
    ) -> FilerResult<(Chunk, FidTicket)> {
        let etag = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&data));
        let mut failures = Vec::new();
        for _ in 0..CHUNK_UPLOAD_ATTEMPTS {
            let ticket = self.volumes.next_fid(placement).await?;
            match self.volumes.upload(&ticket, data.clone()).await {
                Ok(()) => {
                    let chunk = Chunk {
                        fid: ticket.fid.clone(),
                        offset,
                        size: data.len() as u64,
                        mtime_ns: now_ns(),
                        etag,
                    };
                    return Ok((chunk, ticket));
                }
                Err(error) => {
                    // The write may have landed before the failure was seen: delete it.
                    let _ = self.namespace.queue_deletes(vec![ticket.fid.clone()]).await;
                    self.volumes.drop_lease(placement).await;
                    failures.push(error.0);
                }
            }
        }
        Err(FilerError::new(
            502,
            format!("upload chunk: {}", failures.join("; ")),
        ))
    }

    /// Upload `data` (already in memory) as chunks starting at file offset `base`.
    pub async fn put_bytes(
        &self,
        placement: &Placement,
        data: Bytes,
        base: u64,
    ) -> FilerResult<Uploaded> {
        let md5 = md5::Md5::digest(&data);
        let mut uploaded = Uploaded {
            chunks: Vec::new(),
            size: data.len() as u64,
            md5_base64: base64::engine::general_purpose::STANDARD.encode(md5),
            tickets: Vec::new(),
        };
        let pieces: Vec<(u64, Bytes)> = (0..data.len())
            .step_by(self.chunk_bytes.max(1))
            .map(|start| {
                let end = (start + self.chunk_bytes).min(data.len());
                (base + start as u64, data.slice(start..end))
            })
            .collect();
        if pieces.len() > CHUNKS_PER_FILE_MAX {
            return Err(FilerError::new(
                413,
                format!(
                    "file of {} bytes has over {CHUNKS_PER_FILE_MAX} chunks",
                    data.len()
                ),
            ));
        }
        let results: Vec<FilerResult<(Chunk, FidTicket)>> = futures_util::stream::iter(pieces)
            .map(|(offset, piece)| self.put_chunk(placement, offset, piece))
            .buffered(CHUNK_UPLOADS_IN_FLIGHT_MAX)
            .collect()
            .await;
        self.collect_results(&mut uploaded, results).await?;
        Ok(uploaded)
    }

    /// Keep the chunks of successful uploads; on any failure, queue them all for deletion.
    async fn collect_results(
        &self,
        uploaded: &mut Uploaded,
        results: Vec<FilerResult<(Chunk, FidTicket)>>,
    ) -> FilerResult<()> {
        let mut first_error = None;
        for result in results {
            match result {
                Ok((chunk, ticket)) => {
                    uploaded.chunks.push(chunk);
                    uploaded.tickets.push(ticket);
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            self.namespace.queue_deletes(uploaded.fids()).await?;
            return Err(error);
        }
        Ok(())
    }

    /// Upload a request body of any size as it arrives: cut into chunks, up to
    /// `CHUNK_UPLOADS_IN_FLIGHT_MAX` uploading while the next is read.
    pub async fn put_stream(&self, placement: &Placement, body: Incoming) -> FilerResult<Uploaded> {
        let mut hasher = md5::Md5::new();
        let mut frames = body.into_data_stream();
        let mut pending = BytesMut::new();
        let mut in_flight = futures_util::stream::FuturesOrdered::new();
        let mut results = Vec::new();
        let mut offset = 0u64;
        let mut failure = None;
        loop {
            let frame = match frames.next().await {
                Some(Ok(frame)) => Some(frame),
                Some(Err(error)) => {
                    failure = Some(FilerError::bad_request(format!(
                        "read request body: {error}"
                    )));
                    None
                }
                None => None,
            };
            let done = frame.is_none();
            if let Some(frame) = frame {
                hasher.update(&frame);
                pending.extend_from_slice(&frame);
            }
            while pending.len() >= self.chunk_bytes || (done && !pending.is_empty()) {
                let take = pending.len().min(self.chunk_bytes);
                let piece = pending.split_to(take).freeze();
                let piece_offset = offset;
                offset += piece.len() as u64;
                if results.len() + in_flight.len() >= CHUNKS_PER_FILE_MAX {
                    failure.get_or_insert(FilerError::new(
                        413,
                        format!("file has over {CHUNKS_PER_FILE_MAX} chunks"),
                    ));
                    pending.clear();
                    break;
                }
                in_flight.push_back(self.put_chunk(placement, piece_offset, piece));
                while in_flight.len() >= CHUNK_UPLOADS_IN_FLIGHT_MAX {
                    results.push(in_flight.next().await.expect("in flight"));
                }
            }
            if done || failure.is_some() {
                break;
            }
        }
        while let Some(result) = in_flight.next().await {
            results.push(result);
        }
        if let Some(error) = failure {
            results.push(Err(error));
        }
        let mut uploaded = Uploaded {
            chunks: Vec::new(),
            size: offset,
            md5_base64: base64::engine::general_purpose::STANDARD.encode(hasher.finalize()),
            tickets: Vec::new(),
        };
        self.collect_results(&mut uploaded, results).await?;
        Ok(uploaded)
    }
}

/// One chunk's part of a read: bytes `first..=last` of its blob.
struct View {
    fid: String,
    first: u64,
    last: u64,
}

/// The chunk views covering bytes `start..start+len` of the file.
fn views(entry: &Entry, start: u64, len: u64) -> Vec<View> {
    let end = start + len;
    let mut chunks: Vec<&Chunk> = entry.chunks.iter().collect();
    chunks.sort_by_key(|c| c.offset);
    chunks
        .into_iter()
        .filter(|c| c.size > 0 && c.offset < end && c.offset + c.size > start)
        .map(|c| View {
            fid: c.fid.clone(),
            first: start.max(c.offset) - c.offset,
            last: end.min(c.offset + c.size) - c.offset - 1,
        })
        .collect()
}

/// The body of bytes `start..start+len` of the file: each chunk's volume answer passed
/// through as it arrives (no copy), up to `CHUNK_READ_AHEAD_MAX` chunks requested ahead.
pub async fn read_body(
    volumes: &Arc<Volumes>,
    entry: &Entry,
    start: u64,
    len: u64,
) -> FilerResult<Body> {
    let views = views(entry, start, len);
    if views.is_empty() {
        return Ok(http_body_util::Empty::new().map_err(|e| match e {}).boxed());
    }
    if views.len() == 1 {
        // The common small file: one request, answered before any byte is promised.
        let view = &views[0];
        let response = volumes
            .fetch(&view.fid, Some((view.first, view.last)))
            .await?;
        return Ok(response
            .into_body()
            .map_err(|e| Box::new(e) as BoxError)
            .boxed());
    }
    let volumes = volumes.clone();
    let stream = futures_util::stream::iter(views)
        .map(move |view| {
            let volumes = volumes.clone();
            async move {
                let response = volumes
                    .fetch(&view.fid, Some((view.first, view.last)))
                    .await
                    .map_err(|e| Box::new(std::io::Error::other(e.0)) as BoxError)?;
                Ok::<_, BoxError>(
                    response
                        .into_body()
                        .into_data_stream()
                        .map_err(|e| Box::new(e) as BoxError),
                )
            }
        })
        .buffered(CHUNK_READ_AHEAD_MAX)
        .try_flatten()
        .map_ok(Frame::data);
    Ok(BodyExt::boxed(StreamBody::new(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a read range maps onto the right bytes of the right chunks, including a
    // truncated last chunk.
    #[test]
    fn views_cover_the_range() {
        let mut entry = Entry::new_file(0);
        for (index, size) in [4u64, 4, 2].iter().enumerate() {
            entry.chunks.push(Chunk {
                fid: format!("1,{index}"),
                offset: index as u64 * 4,
                size: *size,
                mtime_ns: 0,
                etag: String::new(),
            });
        }
        let all = views(&entry, 0, 10);
        assert_eq!(all.len(), 3);
        assert_eq!((all[2].first, all[2].last), (0, 1));
        let middle = views(&entry, 3, 3);
        let spans: Vec<(String, u64, u64)> = middle
            .iter()
            .map(|v| (v.fid.clone(), v.first, v.last))
            .collect();
        assert_eq!(spans, [("1,0".into(), 3, 3), ("1,1".into(), 0, 1)]);
        assert!(views(&entry, 10, 5).is_empty());
    }
}
