//! Response framing for the client, pure code: the response head (status, headers and what
//! they say of the body's framing and of keep-alive) and chunk-size lines.

use super::RESPONSE_HEADERS_COUNT_MAX;

pub(super) struct ResponseHead {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) content_length: Option<u64>,
    pub(super) chunked: bool,
    pub(super) keep_alive: bool,
}

/// Parse a response head from the front of `unread`: `Ok(None)` when more bytes are needed.
pub(super) fn parse_head(unread: &[u8]) -> Result<Option<(ResponseHead, usize)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_COUNT_MAX];
    let mut response = httparse::Response::new(&mut fields);
    let head_len = match response.parse(unread) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!(
                "more than {RESPONSE_HEADERS_COUNT_MAX} header fields"
            ));
        }
        Err(error) => return Err(format!("response head: {error}")),
    };
    let status = response.code.expect("complete head has a status");
    if status < 100 {
        return Err(format!("status code {status:03} is below 100"));
    }
    let http_1_1 = response.version == Some(1);
    let mut head = ResponseHead {
        status,
        headers: Vec::with_capacity(response.headers.len()),
        content_length: None,
        chunked: false,
        keep_alive: http_1_1,
    };
    for field in response.headers.iter() {
        let value = String::from_utf8_lossy(field.value).into_owned();
        apply_framing_field(&mut head, field.name, value.trim())?;
        head.headers.push((field.name.to_string(), value));
    }
    if head.chunked {
        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length.
        head.content_length = None;
    }
    assert!(head_len <= unread.len());
    Ok(Some((head, head_len)))
}

fn apply_framing_field(head: &mut ResponseHead, name: &str, value: &str) -> Result<(), String> {
    if name.eq_ignore_ascii_case("content-length") {
        let length: u64 = value
            .parse()
            .map_err(|_| format!("Content-Length {value:?} is not a number"))?;
        if head
            .content_length
            .is_some_and(|previous| previous != length)
        {
            return Err("conflicting Content-Length fields".to_string());
        }
        head.content_length = Some(length);
    } else if name.eq_ignore_ascii_case("transfer-encoding") {
        let last_coding = value.rsplit(',').next().unwrap_or("").trim();
        if !last_coding.eq_ignore_ascii_case("chunked") {
            return Err(format!("unsupported Transfer-Encoding {value:?}"));
        }
        head.chunked = true;
    } else if name.eq_ignore_ascii_case("connection") {
        for option in value.split(',').map(str::trim) {
            if option.eq_ignore_ascii_case("close") {
                head.keep_alive = false;
            } else if option.eq_ignore_ascii_case("keep-alive") {
                head.keep_alive = true;
            }
        }
    }
    Ok(())
}

/// The size in a chunk-size line (`1a;ext=v`), hex, at most 15 digits (under 2^60).
pub(super) fn parse_chunk_size(line: &[u8]) -> Result<u64, String> {
    let digits_end = line
        .iter()
        .position(|b| *b == b';' || *b == b' ' || *b == b'\t')
        .unwrap_or(line.len());
    let digits = &line[..digits_end];
    if digits.is_empty() || digits.len() > 15 {
        return Err(format!(
            "chunk size {:?} is not 1 to 15 hex digits",
            String::from_utf8_lossy(digits)
        ));
    }
    let mut size: u64 = 0;
    for digit in digits {
        let value = (*digit as char).to_digit(16).ok_or_else(|| {
            format!(
                "chunk size {:?} is not hex",
                String::from_utf8_lossy(digits)
            )
        })?;
        size = size * 16 + u64::from(value);
    }
    Ok(size)
}
