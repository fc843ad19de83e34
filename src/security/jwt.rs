//! SeaweedFS's file tokens: HS256 JSON Web Tokens with the claims `fid` (`vid,keycookie`) and
//! `exp` (unix seconds, absent when the key's `expires_after_seconds` is 0), signed by the
//! master with a key of `security.toml` and checked by the volume server.
//!
//! A token is `base64url(header) . base64url(claims) . base64url(HMAC-SHA256(key, first two))`,
//! without padding. Checking follows golang-jwt v5 as SeaweedFS uses it: the signature must
//! match, `exp` (when present) must be in the future and `nbf` (when present) not.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::limits::TOKEN_BYTES_MAX;

/// `{"alg":"HS256","typ":"JWT"}`, base64url: every token Kelp signs starts with it.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// A signing key of `security.toml`, keyed once (cloning a keyed HMAC copies its state).
#[derive(Clone)]
pub struct SigningKey {
    mac: Hmac<Sha256>,
    /// Lifetime of the tokens it signs; 0: they carry no `exp` (as in SeaweedFS).
    pub expires_after_seconds: u64,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("SigningKey")
            .field("expires_after_seconds", &self.expires_after_seconds)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused; the text goes into the 401 answer.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenError {
    Missing,
    Malformed(&'static str),
    Algorithm(String),
    Signature,
    Expired { exp: f64, now: u64 },
    NotYetValid { nbf: f64, now: u64 },
    OtherFile { claim: String, asked: String },
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Missing => {
                f.write_str("no token: give it as ?jwt=, Authorization: Bearer or cookie AT")
            }
            TokenError::Malformed(what) => write!(f, "malformed token: {what}"),
            TokenError::Algorithm(alg) => write!(f, "token algorithm {alg:?}: only HS256"),
            TokenError::Signature => f.write_str("token not signed with this server's key"),
            TokenError::Expired { exp, now } => {
                write!(f, "token expired at {exp} (now {now}, unix seconds)")
            }
            TokenError::NotYetValid { nbf, now } => {
                write!(f, "token not valid before {nbf} (now {now}, unix seconds)")
            }
            TokenError::OtherFile { claim, asked } => {
                write!(f, "token is for {claim:?}, not {asked:?}")
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// The claims Kelp reads; others are ignored (as by SeaweedFS).
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub fid: String,
    /// Unix seconds; golang-jwt writes whole seconds but reads fractions too.
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
}

impl SigningKey {
    /// A key from its text (any length; an empty key means no key and is refused here).
    pub fn new(key: &[u8], expires_after_seconds: u64) -> SigningKey {
        assert!(!key.is_empty(), "an empty key signs nothing");
        let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        SigningKey {
            mac,
            expires_after_seconds,
        }
    }

    /// A token for `fid` (the claim's text as given), expiring after the key's lifetime.
    pub fn sign(&self, fid: &str, now_unix_s: u64) -> String {
        let mut claims = serde_json::Map::new();
        claims.insert("fid".into(), fid.into());
        if self.expires_after_seconds > 0 {
            let exp = now_unix_s + self.expires_after_seconds;
            claims.insert("exp".into(), exp.into());
        }
        let claims = serde_json::Value::Object(claims).to_string();
        let mut token = String::with_capacity(HEADER_B64.len() + claims.len() * 2 + 48);
        token.push_str(HEADER_B64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut token);
        let signature = self.signature(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        token
    }

    fn signature(&self, signed: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.finalize().into_bytes().into()
    }

    /// The token's claims when it is signed with this key and valid at `now_unix_s`.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<Claims, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenError::Malformed("longer than a file token can be"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        };
        let header = decode_json::<Header>(header, "header")?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let signed = &token[..token.rfind('.').expect("three parts")];
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::Signature)?;
        let claims = decode_json::<Claims>(claims, "claims")?;
        check_times(&claims, now_unix_s)?;
        Ok(claims)
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        TokenError::Malformed(match what {
            "header" => "header is not base64url",
            _ => "claims are not base64url",
        })
    })?;
    serde_json::from_slice(&bytes).map_err(|_| {
        TokenError::Malformed(match what {
            "header" => "header is not the JSON of a token",
            _ => "claims are not the JSON of a file token",
        })
    })
}

/// `exp` must be after now, `nbf` not after now (golang-jwt v5, no leeway).
fn check_times(claims: &Claims, now: u64) -> Result<(), TokenError> {
    if let Some(exp) = claims.exp
        && now as f64 >= exp
    {
        return Err(TokenError::Expired { exp, now });
    }
    if let Some(nbf) = claims.nbf
        && (now as f64) < nbf
    {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    Ok(())
}

/// The `exp` of a token, read without checking its signature: for a holder of a token that
/// wants to know how long it may use it (the filer's fid leases).
pub fn unverified_exp(token: &str) -> Option<u64> {
    let claims = token.split('.').nth(1)?;
    let exp = decode_json::<Claims>(claims, "claims").ok()?.exp?;
    (exp.is_finite() && exp >= 0.0).then_some(exp as u64)
}

/// The token of a request, where SeaweedFS's volume server looks: the query's `jwt`, then
/// `Authorization: Bearer <token>` (scheme in any case), then the cookie `AT`. Each source is
/// given as found in the request (the query raw); "" when none.
pub fn token_of<'a>(
    query_jwt: Option<&'a str>,
    authorization: Option<&'a str>,
    cookie: Option<&'a str>,
) -> &'a str {
    if let Some(token) = query_jwt.filter(|t| !t.is_empty()) {
        return token;
    }
    if let Some(bearer) = authorization
        && bearer.len() > 7
        && bearer.is_char_boundary(6)
        && bearer[..6].eq_ignore_ascii_case("bearer")
    {
        return &bearer[7..];
    }
    cookie.and_then(cookie_at).unwrap_or("")
}

/// The value of the cookie `AT` in a `Cookie` header.
fn cookie_at(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "AT")
        .map(|(_, value)| value.trim_matches('"'))
}

/// The `vid,keycookie` text a request path names, as SeaweedFS compares it with the `fid`
/// claim: the extension and the batch suffix `_N` dropped (a token of a `count=N` assign
/// covers `fid`, `fid_1`, ... `fid_N-1`). `None` when the path names no file.
pub fn path_fid(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.strip_prefix('/')?;
    let mut parts = trimmed.split('/');
    let (vid, key_cookie) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(single), None, None, None) => {
            let (vid, rest) = single.split_once(',')?;
            (vid, rest.rsplit_once('.').map_or(rest, |(kc, _)| kc))
        }
        (Some(vid), Some(rest), None, None) => {
            (vid, rest.rsplit_once('.').map_or(rest, |(kc, _)| kc))
        }
        (Some(vid), Some(key_cookie), Some(_name), None) => (vid, key_cookie),
        _ => return None,
    };
    let key_cookie = match key_cookie.rfind('_') {
        Some(at) if at > 0 => &key_cookie[..at],
        _ => key_cookie,
    };
    Some((vid, key_cookie))
}

/// Does the `fid` claim name this path's file?
pub fn claim_matches(claim: &str, path: &str) -> Result<(), TokenError> {
    let asked = path_fid(path);
    let matches =
        asked.is_some_and(|(vid, key_cookie)| claim.split_once(',') == Some((vid, key_cookie)));
    if matches {
        return Ok(());
    }
    Err(TokenError::OtherFile {
        claim: claim.to_string(),
        asked: asked.map_or_else(|| path.to_string(), |(v, k)| format!("{v},{k}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    // Proves a signed token verifies with its key, carries fid and exp, and starts with the
    // header golang-jwt writes; and that another key, a changed claim, a late check or a
    // token of another algorithm are refused, each with its own reason.
    #[test]
    fn sign_and_verify() {
        let key = SigningKey::new(b"secret", 10);
        let token = key.sign("3,01637037d6", NOW);
        assert!(token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
        let claims = key.verify(&token, NOW).unwrap();
        assert_eq!(claims.fid, "3,01637037d6");
        assert_eq!(claims.exp, Some((NOW + 10) as f64));
        assert_eq!(unverified_exp(&token), Some(NOW + 10));
        let other = SigningKey::new(b"other", 10);
        assert_eq!(other.verify(&token, NOW), Err(TokenError::Signature));
        assert_eq!(
            key.verify(&token, NOW + 10),
            Err(TokenError::Expired {
                exp: (NOW + 10) as f64,
                now: NOW + 10
            })
        );
        let (head, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"fid":"3,02637037d6"}"#);
        let forged = format!("{head}.{forged_claims}.{signature}");
        assert_eq!(key.verify(&forged, NOW), Err(TokenError::Signature));
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let unsigned = format!("{none_header}.{forged_claims}.");
        assert!(matches!(
            key.verify(&unsigned, NOW),
            Err(TokenError::Algorithm(_))
        ));
        assert_eq!(key.verify("", NOW), Err(TokenError::Missing));
        assert!(matches!(
            key.verify("a.b", NOW),
            Err(TokenError::Malformed(_))
        ));
    }

    // Proves a key with expires_after_seconds = 0 signs tokens without exp that never expire,
    // as SeaweedFS does, and that nbf in the future is refused.
    #[test]
    fn no_expiry_and_not_before() {
        let key = SigningKey::new(b"k", 0);
        let token = key.sign("1,0100000001", NOW);
        assert_eq!(key.verify(&token, u64::MAX / 2).unwrap().exp, None);
        let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"fid":"x","nbf":{}}}"#, NOW + 5));
        let signed = format!("{HEADER_B64}.{claims}");
        let signature = URL_SAFE_NO_PAD.encode(key.signature(signed.as_bytes()));
        let token = format!("{signed}.{signature}");
        assert!(matches!(
            key.verify(&token, NOW),
            Err(TokenError::NotYetValid { .. })
        ));
        assert!(key.verify(&token, NOW + 5).is_ok());
    }

    // Proves the token is taken from ?jwt= first, then Authorization: Bearer (any case), then
    // the cookie AT, as SeaweedFS's GetJwt does.
    #[test]
    fn token_sources_in_order() {
        assert_eq!(token_of(Some("q"), Some("Bearer h"), Some("AT=c")), "q");
        assert_eq!(token_of(Some(""), Some("BEARER h"), Some("AT=c")), "h");
        assert_eq!(token_of(None, Some("Basic abc"), Some("x=1; AT=c")), "c");
        assert_eq!(token_of(None, Some("Bearer"), None), "");
        assert_eq!(token_of(None, None, Some("ATX=1")), "");
    }

    // Proves the path's fid is compared without extension, file name and batch suffix, in
    // every path form, and that another file is refused naming both.
    #[test]
    fn claims_match_paths() {
        let claim = "3,01637037d6";
        for path in [
            "/3,01637037d6",
            "/3,01637037d6.jpg",
            "/3,01637037d6_2",
            "/3/01637037d6",
            "/3/01637037d6.png",
            "/3/01637037d6/cat.gif",
            "/3/01637037d6_7/cat.gif",
        ] {
            assert_eq!(claim_matches(claim, path), Ok(()), "{path}");
        }
        let refused = claim_matches(claim, "/3,02637037d6").unwrap_err();
        assert_eq!(
            refused.to_string(),
            r#"token is for "3,01637037d6", not "3,02637037d6""#
        );
        assert!(claim_matches(claim, "/4,01637037d6").is_err());
        assert!(claim_matches(claim, "/").is_err());
        assert!(claim_matches("", "/3,01637037d6").is_err());
    }
}
