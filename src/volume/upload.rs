//! An upload request (`POST|PUT /<fid>`) turned into what the engine stores: data, name,
//! mime, gzip flag, pairs, time, TTL (`Upload::needle`, what the store appends). Pure: the
//! handler gathers the inputs from the request.

use super::limits::{MIME_BYTES_MAX, NAME_BYTES_MAX, PAIRS_BYTES_MAX};
use super::{codec, multipart, query};
use bytes::Bytes;
use kelp_engine::format::needle::FLAG_GZIP;
use kelp_engine::format::{FileId, Needle, Ttl, TtlError};
use std::fmt;

/// What the handler read off the request.
pub struct UploadInput<'a> {
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub content_disposition: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_md5: Option<&'a str>,
    /// `Seaweed-<Name>: value` headers, name without the prefix.
    pub pairs: Vec<(String, String)>,
    pub body: Bytes,
    pub now_unix_s: u64,
}

/// What to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub data: Bytes,
    pub name: Option<String>,
    pub mime: Option<String>,
    pub gzipped: bool,
    /// JSON object text of the pairs, None when there are none.
    pub pairs_json: Option<String>,
    pub last_modified_unix_s: u64,
    /// The `ttl` query (`3d`); None: the volume's TTL applies.
    pub ttl: Option<Ttl>,
    pub fsync: bool,
    /// `type=replicate`: a copy from the replica that took the upload; not fanned out again.
    pub is_replica_copy: bool,
}

#[derive(Debug)]
pub enum UploadError {
    Multipart(multipart::MultipartError),
    Md5Mismatch {
        expected: String,
        actual: String,
    },
    BadTimestamp {
        text: String,
    },
    PairsTooLarge {
        bytes: usize,
    },
    /// Labelled `Content-Encoding: gzip` but not gzip a reader could inflate.
    BadGzip(codec::InflateError),
    BadTtl(TtlError),
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::Multipart(error) => write!(f, "{error}"),
            UploadError::Md5Mismatch { expected, actual } => {
                write!(
                    f,
                    "Content-MD5 {expected} does not match the data's MD5 {actual}"
                )
            }
            UploadError::BadTimestamp { text } => write!(f, "invalid ts {text:?} (unix seconds)"),
            UploadError::BadTtl(error) => write!(f, "{error}"),
            UploadError::PairsTooLarge { bytes } => {
                write!(
                    f,
                    "Seaweed-* pairs take {bytes} bytes, over {PAIRS_BYTES_MAX}"
                )
            }
            UploadError::BadGzip(codec::InflateError::Corrupt(error)) => {
                write!(
                    f,
                    "Content-Encoding is gzip but the body is not intact gzip: {error}"
                )
            }
            UploadError::BadGzip(codec::InflateError::TooLarge { bytes_max }) => {
                write!(
                    f,
                    "Content-Encoding is gzip and the body inflates past {bytes_max} bytes"
                )
            }
        }
    }
}

impl std::error::Error for UploadError {}

pub fn parse(input: UploadInput<'_>) -> Result<Upload, UploadError> {
    let boundary = input.content_type.and_then(multipart::boundary_of);
    let (data, name, part_type, part_encoding) = match boundary {
        Some(boundary) => {
            let boundary = boundary.map_err(UploadError::Multipart)?;
            let part = multipart::parse_file_part(&input.body, &boundary)
                .map_err(UploadError::Multipart)?;
            (
                part.data,
                part.filename,
                part.content_type,
                part.content_encoding,
            )
        }
        None => {
            let name = input
                .content_disposition
                .and_then(multipart::disposition_filename);
            let content_type = input.content_type.map(str::to_string);
            (input.body, name, content_type, None)
        }
    };
    if let Some(expected) = input.content_md5
        && !codec::content_md5_matches(expected, &data)
    {
        let actual = codec::content_md5(&data);
        let expected = expected.trim().to_string();
        return Err(UploadError::Md5Mismatch { expected, actual });
    }
    let encoding = part_encoding.as_deref().or(input.content_encoding);
    let gzipped = encoding.is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    if gzipped {
        // Stored as sent and served as gzip: a body readers could not inflate is refused now.
        codec::check_gzip(&data, super::limits::INFLATED_BYTES_MAX)
            .map_err(UploadError::BadGzip)?;
    }
    let name = name
        .map(|n| truncate_utf8(&n, NAME_BYTES_MAX))
        .filter(|n| !n.is_empty());
    let mime = stored_mime(part_type.as_deref(), name.as_deref());
    Ok(Upload {
        data,
        name,
        mime,
        gzipped,
        pairs_json: pairs_json(&input.pairs)?,
        last_modified_unix_s: timestamp(input.query, input.now_unix_s)?,
        ttl: ttl(input.query)?,
        fsync: query::flag(input.query, "fsync"),
        is_replica_copy: query::param(input.query, "type").as_deref() == Some("replicate"),
    })
}

impl Upload {
    /// The needle to store as `fid` (its TTL None when the volume's applies).
    pub fn needle(&self, fid: FileId) -> Needle<'_> {
        Needle {
            cookie: fid.cookie,
            key: fid.key,
            data: &self.data,
            flags: if self.gzipped { FLAG_GZIP } else { 0 },
            name: self.name.as_deref().map(str::as_bytes),
            mime: self.mime.as_deref().map(str::as_bytes),
            last_modified_s: Some(self.last_modified_unix_s),
            ttl: self.ttl,
            pairs: self.pairs_json.as_deref().map(str::as_bytes),
            ..Needle::default()
        }
    }
}

/// A mime is stored only when it says more than the name's extension would (as SeaweedFS).
fn stored_mime(content_type: Option<&str>, name: Option<&str>) -> Option<String> {
    let content_type = content_type?.trim();
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.is_empty() || media == "application/octet-stream" {
        return None;
    }
    if media.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    let from_name = name.map(|n| codec::mime_for_extension(super::fid::extension_of(n)));
    if from_name.as_deref() == Some(content_type) {
        return None;
    }
    Some(truncate_utf8(content_type, MIME_BYTES_MAX))
}

fn ttl(query_text: &str) -> Result<Option<Ttl>, UploadError> {
    match query::param(query_text, "ttl") {
        Some(text) if !text.is_empty() => Ttl::parse(&text).map(Some).map_err(UploadError::BadTtl),
        _ => Ok(None),
    }
}

fn timestamp(query_text: &str, now_unix_s: u64) -> Result<u64, UploadError> {
    match query::param(query_text, "ts") {
        None => Ok(now_unix_s),
        Some(text) if text.is_empty() => Ok(now_unix_s),
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| UploadError::BadTimestamp { text }),
    }
}

fn pairs_json(pairs: &[(String, String)]) -> Result<Option<String>, UploadError> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let object: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
        .collect();
    let text = serde_json::Value::Object(object).to_string();
    if text.len() > PAIRS_BYTES_MAX {
        return Err(UploadError::PairsTooLarge { bytes: text.len() });
    }
    Ok(Some(text))
}

fn truncate_utf8(text: &str, bytes_max: usize) -> String {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(body: &'static [u8]) -> UploadInput<'static> {
        UploadInput {
            query: "",
            content_type: None,
            content_disposition: None,
            content_encoding: None,
            content_md5: None,
            pairs: Vec::new(),
            body: Bytes::from_static(body),
            now_unix_s: 1_700_000_000,
        }
    }

    // Proves a raw body keeps its bytes, takes its name from Content-Disposition, and its
    // mime only when the extension would not give it.
    #[test]
    fn raw_upload() {
        let mut raw = input(b"hello");
        raw.content_type = Some("text/x-custom");
        raw.content_disposition = Some("attachment; filename=\"notes.txt\"");
        let upload = parse(raw).unwrap();
        assert_eq!(&upload.data[..], b"hello");
        assert_eq!(upload.name.as_deref(), Some("notes.txt"));
        assert_eq!(upload.mime.as_deref(), Some("text/x-custom"));
        assert_eq!(upload.last_modified_unix_s, 1_700_000_000);
        let mut plain = input(b"x");
        plain.content_type = Some("text/plain");
        plain.content_disposition = Some("inline; filename=\"a.txt\"");
        assert_eq!(parse(plain).unwrap().mime, None);
    }

    // Proves a multipart body yields the file part's data and name.
    #[test]
    fn multipart_upload() {
        let mut form = input(
            b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.png\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--B--\r\n",
        );
        form.content_type = Some("multipart/form-data; boundary=B");
        let upload = parse(form).unwrap();
        assert_eq!(
            (&upload.data[..], upload.name.as_deref()),
            (&b"PNG"[..], Some("c.png"))
        );
        assert_eq!(upload.mime, None);
    }

    // Proves Content-MD5, gzip, pairs, ts, ttl, fsync and type=replicate are honoured.
    #[test]
    fn options() {
        let mut bad_md5 = input(b"hello");
        bad_md5.content_md5 = Some("AAAAAAAAAAAAAAAAAAAAAA==");
        assert!(matches!(
            parse(bad_md5),
            Err(UploadError::Md5Mismatch { .. })
        ));
        let mut not_gzip = input(b"hello");
        not_gzip.content_encoding = Some("gzip");
        assert!(matches!(parse(not_gzip), Err(UploadError::BadGzip(_))));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        std::io::Write::write_all(&mut encoder, b"hello").unwrap();
        let gzipped = encoder.finish().unwrap();
        let md5 = codec::content_md5(&gzipped);
        let mut full = input(b"");
        full.body = Bytes::from(gzipped);
        full.content_md5 = Some(&md5);
        full.content_encoding = Some("gzip");
        full.pairs = vec![("Owner".to_string(), "me".to_string())];
        full.query = "ts=1234&ttl=3d&fsync=true&type=replicate";
        let upload = parse(full).unwrap();
        assert!(upload.gzipped && upload.fsync && upload.is_replica_copy);
        assert_eq!(upload.last_modified_unix_s, 1234);
        assert_eq!(upload.ttl, Some(Ttl::parse("3d").unwrap()));
        assert_eq!(upload.pairs_json.as_deref(), Some(r#"{"Owner":"me"}"#));
        let mut bad_ts = input(b"x");
        bad_ts.query = "ts=yesterday";
        assert!(matches!(
            parse(bad_ts),
            Err(UploadError::BadTimestamp { .. })
        ));
    }

    proptest::proptest! {
        // Proves no request (any body, type, disposition, query) makes upload parsing panic.
        #[test]
        fn arbitrary_requests_never_panic(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            content_type in "(multipart/form-data; boundary=[a-z]{0,3}|text/plain|.{0,20})",
            disposition in ".{0,30}",
            query in ".{0,30}",
        ) {
            let mut request = input(b"");
            request.body = Bytes::from(body);
            request.content_type = Some(&content_type);
            request.content_disposition = Some(&disposition);
            request.query = &query;
            let _ = parse(request);
        }
    }

    // Proves over-long names are cut at 255 bytes on a character boundary.
    #[test]
    fn long_names_are_truncated() {
        let name = "é".repeat(200);
        let cut = truncate_utf8(&name, NAME_BYTES_MAX);
        assert!(cut.len() <= NAME_BYTES_MAX && name.starts_with(&cut) && cut.len() == 254);
    }
}
