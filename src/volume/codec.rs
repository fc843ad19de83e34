//! Small body codecs: Content-Type from an extension, gzip inflate, Content-MD5.

use base64::Engine as _;
use md5::Digest as _;
use std::io::Read as _;

/// The Content-Type for a file extension (with or without its dot); octet-stream when unknown.
pub fn mime_for_extension(ext: &str) -> String {
    let ext = ext.trim_start_matches('.');
    if ext.is_empty() {
        return "application/octet-stream".to_string();
    }
    mime_guess::from_ext(ext)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_string()
}

#[derive(Debug)]
pub enum InflateError {
    Corrupt(std::io::Error),
    TooLarge { bytes_max: u64 },
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InflateError::Corrupt(error) => write!(f, "stored gzip data is corrupt: {error}"),
            InflateError::TooLarge { bytes_max } => {
                write!(f, "gzip data inflates past {bytes_max} bytes")
            }
        }
    }
}

impl std::error::Error for InflateError {}

/// Inflate gzip data, refusing to grow past `bytes_max` (a gzip bomb stays bounded).
pub fn gunzip(data: &[u8], bytes_max: u64) -> Result<Vec<u8>, InflateError> {
    let mut inflated = Vec::with_capacity(data.len().saturating_mul(3));
    let decoder = flate2::read::MultiGzDecoder::new(data);
    decoder
        .take(bytes_max + 1)
        .read_to_end(&mut inflated)
        .map_err(InflateError::Corrupt)?;
    if inflated.len() as u64 > bytes_max {
        return Err(InflateError::TooLarge { bytes_max });
    }
    Ok(inflated)
}

/// Checks that `data` is whole, intact gzip (every member's header, deflate stream, and
/// trailer CRC-32 and length) inflating to at most `bytes_max`, without keeping the output.
pub fn check_gzip(data: &[u8], bytes_max: u64) -> Result<(), InflateError> {
    let decoder = flate2::read::MultiGzDecoder::new(data);
    let inflated = std::io::copy(&mut decoder.take(bytes_max + 1), &mut std::io::sink())
        .map_err(InflateError::Corrupt)?;
    if inflated > bytes_max {
        return Err(InflateError::TooLarge { bytes_max });
    }
    Ok(())
}

/// Does an Accept-Encoding value accept gzip (and not with q=0)?
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(value) = accept_encoding else {
        return false;
    };
    value.split(',').any(|item| {
        let mut params = item.split(';');
        let coding = params.next().unwrap_or("").trim();
        let refused = params.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// Base64 MD5 of `data`, the Content-MD5 form (RFC 1864).
pub fn content_md5(data: &[u8]) -> String {
    let digest = md5::Md5::digest(data);
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Does the request's Content-MD5 match the data?
pub fn content_md5_matches(header_value: &str, data: &[u8]) -> bool {
    header_value.trim() == content_md5(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    // Proves types come from extensions, with octet-stream for unknown ones.
    #[test]
    fn mime_types() {
        assert_eq!(mime_for_extension(".jpg"), "image/jpeg");
        assert_eq!(mime_for_extension("txt"), "text/plain");
        assert_eq!(mime_for_extension(""), "application/octet-stream");
        assert_eq!(
            mime_for_extension(".zzzunknown"),
            "application/octet-stream"
        );
    }

    // Proves gzip data inflates back, corrupt data is an error, and bombs are bounded.
    #[test]
    fn gzip_round_trip_and_bounds() {
        let original = vec![b'a'; 10_000];
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&original).unwrap();
        let compressed = encoder.finish().unwrap();
        assert_eq!(gunzip(&compressed, 1 << 20).unwrap(), original);
        assert!(matches!(
            gunzip(&compressed, 100),
            Err(InflateError::TooLarge { .. })
        ));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(InflateError::Corrupt(_))
        ));
    }

    // Proves the upload check takes whole gzip streams (one member or several) and refuses
    // empty, truncated, corrupt-CRC, trailing-garbage and over-limit ones.
    #[test]
    fn gzip_check() {
        let gzip = |data: &[u8]| {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        let whole = gzip(&[b'z'; 5000]);
        assert!(check_gzip(&whole, 5000).is_ok());
        assert!(check_gzip(&[whole.clone(), gzip(b"more")].concat(), 6000).is_ok());
        assert!(matches!(
            check_gzip(&whole, 4999),
            Err(InflateError::TooLarge { bytes_max: 4999 })
        ));
        let mut wrong_crc = whole.clone();
        let crc_at = wrong_crc.len() - 8;
        wrong_crc[crc_at] ^= 1;
        let cut = &whole[..whole.len() - 1];
        let garbage = [whole.as_slice(), b"junk"].concat();
        for bad in [&b""[..], b"not gzip", cut, &wrong_crc, &garbage] {
            assert!(
                matches!(check_gzip(bad, 1 << 20), Err(InflateError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }

    // Proves Accept-Encoding parsing honours q=0 and wildcards.
    #[test]
    fn accept_encoding() {
        assert!(accepts_gzip(Some("gzip, deflate")));
        assert!(accepts_gzip(Some("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    // Proves Content-MD5 is the RFC 1864 base64 digest.
    #[test]
    fn md5_digest() {
        // md5("hello") = 5d41402abc4b2a76b9719d911017c592
        assert_eq!(content_md5(b"hello"), "XUFAKrxLKna5cZ2REBfFkg==");
        assert!(content_md5_matches(" XUFAKrxLKna5cZ2REBfFkg== ", b"hello"));
        assert!(!content_md5_matches("XUFAKrxLKna5cZ2REBfFkg==", b"hellO"));
    }
}
