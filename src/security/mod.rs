//! Security shared by the master, the volume server and the filer: SeaweedFS's
//! `security.toml` (`--security FILE`), its file tokens ([`jwt`]) and allow-lists
//! ([`allow_list`]).
//!
//! Kelp reads the sections of SeaweedFS's file that it implements: `[jwt.signing]` (`key`,
//! `expires_after_seconds`: tokens for writes and deletes), `[jwt.signing.read]` (tokens for
//! reads), `[guard] white_list` and `[access] ui`. The other sections SeaweedFS defines (gRPC
//! and HTTPS certificates, the filer's own keys, CORS, S3, admin users) are accepted and
//! ignored, with a warning when they set something Kelp does not do; any other key is an
//! error naming it and the file.

pub mod allow_list;
pub mod jwt;
pub mod limits;

use std::path::{Path, PathBuf};

pub use allow_list::AllowList;
pub use jwt::{SigningKey, TokenError};

/// What a `security.toml` configures.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    /// `[jwt.signing]`: tokens for writes and deletes (and the master's admin calls).
    pub write_key: Option<SigningKey>,
    /// `[jwt.signing.read]`: tokens for reads.
    pub read_key: Option<SigningKey>,
    /// `[guard] white_list`, joined with the `--white-list` flag.
    pub white_list: AllowList,
    /// `[access] ui`: the volume server's status page stays open with a write key set.
    pub ui_access: bool,
}

/// What `kelp scaffold --config security` prints: the sections Kelp reads, in SeaweedFS's
/// format.
pub const SCAFFOLD: &str = r#"# security.toml, in SeaweedFS's format (a SeaweedFS security.toml is read as it is; the
# sections Kelp does not implement are ignored, with a warning when they set something).
# Give the same file to every master, volume server and filer: --security FILE.
# It holds keys: keep it readable by the kelp user only (install -m 0640 -o root -g kelp).
# A key: any text; `openssl rand -base64 32` makes a good one.

# Tokens for writes and deletes. The master signs one for each fid it assigns (HS256,
# claims fid and exp) and answers it in `Authorization: Bearer`; volume servers then refuse
# writes and deletes without a valid one (401). Empty key: no tokens.
# expires_after_seconds: 0 means tokens that never expire.
[jwt.signing]
key = ""
expires_after_seconds = 10

# Tokens for reads. With a key, reads need a token from /dir/lookup?fileId=FID&read=yes
# (the filer signs its own when its file has this key). Empty key: reads are open.
[jwt.signing.read]
key = ""
expires_after_seconds = 10

# Addresses and CIDR networks ("10.0.0.0/8,192.168.1.7") allowed to write and delete on
# the volume servers and to make the master's destructive calls (/col/delete, /vol/grow,
# /vol/vacuum, /submit, membership changes); joined with --white-list. List the filers and
# the volume servers too (they replicate writes). Empty: anyone.
[guard]
white_list = ""

# With a [jwt.signing] key, the volume server's status page (/) is served only when this is
# true (its JSON /status stays on).
[access]
ui = false
"#;

/// Top-level sections of SeaweedFS's `security.toml` that Kelp does not implement.
const IGNORED_SECTIONS: [&str; 7] = ["cors", "filer", "grpc", "https", "admin", "s3", "access"];

impl Security {
    /// Read and check `path`; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Security, String> {
        let text = read_bounded(path)?;
        Security::parse(&text, path)
    }

    /// Parse the text of a `security.toml` read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Security, String> {
        let shown = path.display();
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("{shown}: not TOML: {e}"))?;
        let mut security = Security {
            path: path.to_path_buf(),
            ..Security::default()
        };
        for (name, value) in &table {
            let section = as_table(value, name, path)?;
            match name.as_str() {
                "jwt" => security.read_jwt(section)?,
                "guard" => {
                    let list = section_keys(section, "guard", &["white_list"], path)?;
                    if let Some(text) = string_at(list, "white_list", "guard", path)? {
                        security
                            .white_list
                            .extend(&text)
                            .map_err(|e| format!("{shown}: [guard] white_list: {e}"))?;
                    }
                }
                "access" => {
                    security.ui_access =
                        matches!(section.get("ui"), Some(toml::Value::Boolean(true)));
                    warn_unused(section, "access", path);
                }
                name if IGNORED_SECTIONS.contains(&name) => warn_unused(section, name, path),
                other => return Err(unknown_key(other, path)),
            }
        }
        Ok(security)
    }

    fn read_jwt(&mut self, jwt: &toml::Table) -> Result<(), String> {
        let path = self.path.clone();
        for (name, value) in jwt {
            let section = as_table(value, &format!("jwt.{name}"), &path)?;
            match name.as_str() {
                "signing" => {
                    self.write_key = signing_key(section, "jwt.signing", &path)?;
                    if let Some(read) = section.get("read") {
                        let read = as_table(read, "jwt.signing.read", &path)?;
                        self.read_key = signing_key(read, "jwt.signing.read", &path)?;
                    }
                }
                "filer_signing" => warn_unused(section, "jwt.filer_signing", &path),
                other => return Err(unknown_key(&format!("jwt.{other}"), &path)),
            }
        }
        Ok(())
    }

    /// Does any key guard the data? (Without one, tokens are neither made nor checked.)
    pub fn has_keys(&self) -> bool {
        self.write_key.is_some() || self.read_key.is_some()
    }
}

/// Load `--security FILE` when given, with the `--white-list` flag's entries joined to the
/// file's `[guard] white_list`. `None` when neither is given: nothing is checked.
pub fn load_optional(
    file: Option<&Path>,
    white_list_flag: &str,
) -> Result<Option<std::sync::Arc<Security>>, String> {
    let mut security = match file {
        Some(path) => Security::load(path)?,
        None if white_list_flag.trim().is_empty() => return Ok(None),
        None => Security::default(),
    };
    security
        .white_list
        .extend(white_list_flag)
        .map_err(|e| format!("--white-list: {e}"))?;
    tracing::info!(
        "security: {}: write tokens {}, read tokens {}, allow-list [{}]",
        security.path.display(),
        on_off(security.write_key.is_some()),
        on_off(security.read_key.is_some()),
        security.white_list.entries().join(", ")
    );
    if !security.has_keys() && security.white_list.is_empty() {
        tracing::warn!(
            "security: {}: no key and no allow-list: nothing is checked",
            security.path.display()
        );
    }
    if let Some(key) = &security.write_key
        && key.expires_after_seconds == 0
    {
        tracing::warn!(
            "{}: [jwt.signing] expires_after_seconds is 0: write tokens never expire",
            security.path.display()
        );
    }
    Ok(Some(std::sync::Arc::new(security)))
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if metadata.len() > limits::SECURITY_FILE_BYTES_MAX {
        return Err(format!(
            "{shown}: {} bytes, more than a security file holds ({} at most)",
            metadata.len(),
            limits::SECURITY_FILE_BYTES_MAX
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))
}

fn as_table<'a>(
    value: &'a toml::Value,
    name: &str,
    path: &Path,
) -> Result<&'a toml::Table, String> {
    value
        .as_table()
        .ok_or_else(|| format!("{}: {name} must be a [section]", path.display()))
}

fn unknown_key(key: &str, path: &Path) -> String {
    format!(
        "{}: unknown key {key:?} (Kelp reads [jwt.signing], [jwt.signing.read], [guard] and \
         [access], and ignores SeaweedFS's other sections)",
        path.display()
    )
}

/// `section` after checking it holds only `known` keys (and sub-sections named in `known`).
fn section_keys<'a>(
    section: &'a toml::Table,
    name: &str,
    known: &[&str],
    path: &Path,
) -> Result<&'a toml::Table, String> {
    match section.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(unknown_key(&format!("{name}.{key}"), path)),
        None => Ok(section),
    }
}

fn string_at(
    section: &toml::Table,
    key: &str,
    name: &str,
    path: &Path,
) -> Result<Option<String>, String> {
    match section.get(key) {
        None => Ok(None),
        Some(toml::Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("{}: {name}.{key} must be a string", path.display())),
    }
}

/// `key` and `expires_after_seconds` of a `[jwt.signing]`-shaped section; `None` when the
/// key is empty or absent (as in SeaweedFS: no key, no check).
fn signing_key(
    section: &toml::Table,
    name: &str,
    path: &Path,
) -> Result<Option<SigningKey>, String> {
    let known: &[&str] = match name {
        "jwt.signing" => &["key", "expires_after_seconds", "read"],
        _ => &["key", "expires_after_seconds"],
    };
    section_keys(section, name, known, path)?;
    let key = string_at(section, "key", name, path)?.unwrap_or_default();
    let expires = match section.get("expires_after_seconds") {
        None => 0,
        Some(toml::Value::Integer(seconds)) if *seconds >= 0 => *seconds as u64,
        Some(_) => {
            return Err(format!(
                "{}: {name}.expires_after_seconds must be a whole number of seconds, 0 or more",
                path.display()
            ));
        }
    };
    Ok((!key.is_empty()).then(|| SigningKey::new(key.as_bytes(), expires)))
}

/// Warn about a section SeaweedFS defines that Kelp does not implement, when it sets a value
/// (a certificate, a key): the operator may expect a protection Kelp does not give.
fn warn_unused(section: &toml::Table, name: &str, path: &Path) {
    for (key, value) in section {
        let full = format!("{name}.{key}");
        match value {
            toml::Value::Table(inner) => warn_unused(inner, &full, path),
            toml::Value::String(text)
                if !text.is_empty() && full != "cors.allowed_origins.values" =>
            {
                tracing::warn!(
                    "{}: {full} is set, but Kelp does not implement [{name}]: ignored",
                    path.display()
                );
            }
            toml::Value::Boolean(true)
                if full != "access.ui" && full != "filer.expose_directory_metadata.enabled" =>
            {
                tracing::warn!(
                    "{}: {full} is true, but Kelp does not implement [{name}]: ignored",
                    path.display()
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves SeaweedFS's scaffolded security.toml (every section, keys filled in) is read as
    // it is: both keys with their lifetimes, the allow-list, and the sections Kelp ignores.
    #[test]
    fn reads_seaweedfs_security_toml() {
        let text = include_str!("testdata/seaweedfs_security.toml");
        let security = Security::parse(text, Path::new("security.toml")).unwrap();
        let write = security.write_key.as_ref().unwrap();
        assert_eq!(write.expires_after_seconds, 10);
        assert_eq!(
            security.read_key.as_ref().unwrap().expires_after_seconds,
            60
        );
        assert!(security.white_list.allows("10.1.2.3".parse().unwrap()));
        assert!(!security.white_list.allows("11.1.2.3".parse().unwrap()));
        // The key is the text's bytes: a token made with them verifies.
        let token = SigningKey::new(b"write-secret", 10).sign("3,01637037d6", 100);
        assert!(write.verify(&token, 100).is_ok());
    }

    // Proves the scaffold is a file Kelp reads: no keys, no allow-list.
    #[test]
    fn scaffold_reads_back() {
        let security = Security::parse(SCAFFOLD, Path::new("scaffold.toml")).unwrap();
        assert!(!security.has_keys() && security.white_list.is_empty() && !security.ui_access);
    }

    // Proves empty keys mean no key, and that an unknown key or a wrong type is an error
    // naming the key and the file.
    #[test]
    fn empty_keys_and_errors() {
        let path = Path::new("/etc/kelp/security.toml");
        let empty = "[jwt.signing]\nkey = \"\"\nexpires_after_seconds = 10\n";
        let security = Security::parse(empty, path).unwrap();
        assert!(!security.has_keys());
        for (text, named) in [
            ("[jwt.signing]\nkee = \"x\"\n", "jwt.signing.kee"),
            ("[jwt.sigining]\nkey = \"x\"\n", "jwt.sigining"),
            ("[gaurd]\nwhite_list = \"\"\n", "gaurd"),
            (
                "[jwt.signing.read]\nkey = \"x\"\nexpire = 3\n",
                "jwt.signing.read.expire",
            ),
        ] {
            let error = Security::parse(text, path).unwrap_err();
            assert!(
                error.contains(named) && error.contains("/etc/kelp/security.toml"),
                "{error}"
            );
        }
        let error = Security::parse("[jwt.signing]\nkey = 5\n", path).unwrap_err();
        assert!(
            error.contains("jwt.signing.key must be a string"),
            "{error}"
        );
        let error =
            Security::parse("[jwt.signing]\nexpires_after_seconds = -1\n", path).unwrap_err();
        assert!(error.contains("expires_after_seconds"), "{error}");
        let error = Security::parse("[guard]\nwhite_list = \"10.0.0.0/40\"\n", path).unwrap_err();
        assert!(error.contains("white_list"), "{error}");
    }

    // Proves the --white-list flag alone turns the allow-list on, is joined with the file's
    // list, and that without either nothing is configured.
    #[test]
    fn flag_and_file_lists_join() {
        assert!(load_optional(None, "").unwrap().is_none());
        let only_flag = load_optional(None, "127.0.0.1").unwrap().unwrap();
        assert!(!only_flag.has_keys());
        assert!(only_flag.white_list.allows("127.0.0.1".parse().unwrap()));
        assert!(!only_flag.white_list.allows("127.0.0.2".parse().unwrap()));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("security.toml");
        std::fs::write(&file, "[guard]\nwhite_list = \"10.0.0.1\"\n").unwrap();
        let joined = load_optional(Some(&file), "10.0.0.2").unwrap().unwrap();
        assert_eq!(joined.white_list.entries(), ["10.0.0.1", "10.0.0.2"]);
        let error = load_optional(Some(&dir.path().join("missing.toml")), "").unwrap_err();
        assert!(error.contains("missing.toml"), "{error}");
    }
}
