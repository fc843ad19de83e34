//! Filer paths: the request target's path turned into a clean absolute path, and the split
//! into parent directory and name that the stores key entries by.
//!
//! A clean path starts with `/`, has no empty, `.` or `..` component, no NUL byte (the
//! stores' key separator) and no trailing `/` (except the root, `/`).

use std::fmt;

use super::limits::{NAME_BYTES_MAX, PATH_BYTES_MAX, PATH_DEPTH_MAX};

/// A request path, cleaned; `directory_hint` is true when the request spelled it with a
/// trailing `/` (a directory for uploads: the file is named from the multipart part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    pub path: String,
    pub directory_hint: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute { path: String },
    TooLong { bytes: usize },
    NameTooLong { name: String },
    TooDeep { depth: usize },
    DotComponent { path: String },
    NulByte,
    NotUtf8,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::NotAbsolute { path } => write!(f, "path {path:?} does not start with /"),
            PathError::TooLong { bytes } => {
                write!(f, "path of {bytes} bytes is over {PATH_BYTES_MAX}")
            }
            PathError::NameTooLong { name } => write!(
                f,
                "name {:?}... is over {NAME_BYTES_MAX} bytes",
                name.chars().take(32).collect::<String>()
            ),
            PathError::TooDeep { depth } => {
                write!(f, "path of {depth} components is over {PATH_DEPTH_MAX}")
            }
            PathError::DotComponent { path } => {
                write!(f, "path {path:?} has a '.' or '..' component")
            }
            PathError::NulByte => write!(f, "path has a NUL byte"),
            PathError::NotUtf8 => write!(f, "path is not UTF-8 after percent-decoding"),
        }
    }
}

impl std::error::Error for PathError {}

/// Clean the raw (still percent-encoded) path of a request target.
pub fn parse_request_path(raw: &str) -> Result<RequestPath, PathError> {
    let decoded = percent_decode(raw)?;
    clean(&decoded)
}

/// Clean an already decoded path (as given in `mv.from=` or `cp.from=`).
pub fn clean(path: &str) -> Result<RequestPath, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute {
            path: path.chars().take(64).collect(),
        });
    }
    if path.len() > PATH_BYTES_MAX {
        return Err(PathError::TooLong { bytes: path.len() });
    }
    if path.contains('\0') {
        return Err(PathError::NulByte);
    }
    let mut cleaned = String::with_capacity(path.len());
    let mut depth = 0;
    for component in path.split('/').filter(|c| !c.is_empty()) {
        if component == "." || component == ".." {
            return Err(PathError::DotComponent {
                path: path.to_string(),
            });
        }
        if component.len() > NAME_BYTES_MAX {
            return Err(PathError::NameTooLong {
                name: component.to_string(),
            });
        }
        depth += 1;
        if depth > PATH_DEPTH_MAX {
            return Err(PathError::TooDeep { depth });
        }
        cleaned.push('/');
        cleaned.push_str(component);
    }
    if cleaned.is_empty() {
        cleaned.push('/');
    }
    Ok(RequestPath {
        directory_hint: path.ends_with('/'),
        path: cleaned,
    })
}

/// Percent-decode (no `+` to space: that is for query strings only).
fn percent_decode(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .filter(|_| bytes[index] == b'%');
        let value = hex
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match value {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)
}

/// `("/a", "b")` for `/a/b`, `("/", "a")` for `/a`; None for the root.
pub fn split(path: &str) -> Option<(&str, &str)> {
    debug_assert!(path.starts_with('/'));
    if path == "/" {
        return None;
    }
    let slash = path.rfind('/').expect("a clean path has a slash");
    let parent = if slash == 0 { "/" } else { &path[..slash] };
    Some((parent, &path[slash + 1..]))
}

/// `dir` + `/` + `name`, without a double slash at the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Every ancestor directory of `path` below the root, outermost first: `/a`, `/a/b` for
/// `/a/b/c`.
pub fn ancestors(path: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for (index, byte) in path.bytes().enumerate().skip(1) {
        if byte == b'/' {
            found.push(&path[..index]);
        }
    }
    found
}

/// Is `path` inside directory `dir` (or `dir` itself)?
pub fn is_within(path: &str, dir: &str) -> bool {
    if dir == "/" {
        return true;
    }
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// The name the last component has (the whole path for the root).
pub fn name_of(path: &str) -> &str {
    split(path).map(|(_, name)| name).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves paths are decoded and cleaned, bad ones refused with the reason, and split,
    // join and ancestors agree with each other.
    #[test]
    fn clean_split_join() {
        let parsed = parse_request_path("/a//b%20c/").unwrap();
        assert_eq!(parsed.path, "/a/b c");
        assert!(parsed.directory_hint);
        assert_eq!(parse_request_path("/").unwrap().path, "/");
        assert_eq!(parse_request_path("//").unwrap().path, "/");
        assert!(matches!(
            parse_request_path("/a/../b"),
            Err(PathError::DotComponent { .. })
        ));
        assert!(matches!(
            parse_request_path("/a%00b"),
            Err(PathError::NulByte)
        ));
        assert!(matches!(
            parse_request_path("/%ff"),
            Err(PathError::NotUtf8)
        ));
        assert!(matches!(clean("a/b"), Err(PathError::NotAbsolute { .. })));
        let long = format!("/{}", "x".repeat(NAME_BYTES_MAX + 1));
        assert!(matches!(clean(&long), Err(PathError::NameTooLong { .. })));
        assert_eq!(split("/a/b"), Some(("/a", "b")));
        assert_eq!(split("/a"), Some(("/", "a")));
        assert_eq!(split("/"), None);
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(ancestors("/a/b/c"), vec!["/a", "/a/b"]);
        assert!(ancestors("/a").is_empty());
        assert!(is_within("/a/b", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/x", "/"));
    }
}
