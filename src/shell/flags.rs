//! A shell command's flags, spelled as Go's `flag` package (and so `weed shell`) takes them:
//! `-name value`, `-name=value`, `--name value`, and `-name` alone for a switch (or
//! `-name=true|false`). An unknown flag, a missing value or a stray word is an error naming
//! the command and the flag.

use std::collections::BTreeMap;

/// One flag a command takes.
pub struct Flag {
    pub name: &'static str,
    /// A value follows (else a switch).
    pub takes_value: bool,
    pub help: &'static str,
}

/// The flags given to one command.
#[derive(Debug, Default)]
pub struct Flags {
    command: &'static str,
    values: BTreeMap<&'static str, String>,
}

impl Flags {
    pub fn parse(command: &'static str, words: &[String], known: &[Flag]) -> Result<Flags, String> {
        let mut flags = Flags {
            command,
            values: BTreeMap::new(),
        };
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let Some(spelled) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) else {
                return Err(format!(
                    "{command}: unexpected argument {word:?} (flags are -name value)"
                ));
            };
            let (name, inline) = match spelled.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (spelled, None),
            };
            let flag = known.iter().find(|f| f.name == name).ok_or_else(|| {
                format!("{command}: unknown flag -{name}; `help {command}` lists its flags")
            })?;
            let value = match (flag.takes_value, inline) {
                (_, Some(value)) => value,
                (true, None) => words
                    .next()
                    .ok_or_else(|| format!("{command}: flag -{name} needs a value"))?
                    .clone(),
                (false, None) => "true".to_string(),
            };
            if flags.values.insert(flag.name, value).is_some() {
                return Err(format!("{command}: flag -{name} is given twice"));
            }
        }
        Ok(flags)
    }

    /// The text of flag `name`, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The text of flag `name`, which the command needs.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.text(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{}: give -{name}", self.command))
    }

    /// A switch: true when given alone or `=true`.
    pub fn switch(&self, name: &str) -> Result<bool, String> {
        match self.text(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(format!(
                "{}: -{name}={other:?}: true or false",
                self.command
            )),
        }
    }

    /// A volume id (`-volumeId`): Some when given, checked as a number above 0.
    pub fn volume_id(&self) -> Result<Option<u32>, String> {
        let Some(text) = self.text("volumeId") else {
            return Ok(None);
        };
        match text.parse::<u32>() {
            Ok(id) if id > 0 => Ok(Some(id)),
            _ => Err(format!(
                "{}: -volumeId {text:?} is not a volume id (a number from 1)",
                self.command
            )),
        }
    }

    /// A volume id the command needs.
    pub fn required_volume_id(&self) -> Result<u32, String> {
        self.volume_id()?
            .ok_or_else(|| format!("{}: give -volumeId", self.command))
    }

    /// A volume server's address (`-source`, `-target`, `-node`), `host:port`.
    pub fn server(&self, name: &str) -> Result<String, String> {
        let text = self.required(name)?;
        let address = text.trim_start_matches("http://");
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!(
                "{}: -{name} {text:?} is not a volume server's host:port",
                self.command
            ));
        }
        Ok(address.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Flag] = &[
        Flag {
            name: "volumeId",
            takes_value: true,
            help: "",
        },
        Flag {
            name: "source",
            takes_value: true,
            help: "",
        },
        Flag {
            name: "apply",
            takes_value: false,
            help: "",
        },
    ];

    fn parse(words: &[&str]) -> Result<Flags, String> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Flags::parse("volume.x", &words, KNOWN)
    }

    // Proves Go's spellings are taken and bad ones refused with the flag named.
    #[test]
    fn go_flag_spellings() {
        let flags = parse(&["-volumeId", "7", "--source=a:1", "-apply"]).unwrap();
        assert_eq!(flags.required_volume_id().unwrap(), 7);
        assert_eq!(flags.server("source").unwrap(), "a:1");
        assert!(flags.switch("apply").unwrap());
        assert!(!parse(&[]).unwrap().switch("apply").unwrap());
        let refused = [
            (vec!["-nope"], "unknown flag -nope"),
            (vec!["-volumeId"], "needs a value"),
            (vec!["stray"], "unexpected argument"),
            (vec!["-volumeId", "1", "-volumeId", "2"], "given twice"),
        ];
        for (words, expected) in refused {
            let error = parse(&words).unwrap_err();
            assert!(error.contains(expected), "{words:?}: {error}");
        }
        let zero = parse(&["-volumeId", "0"]).unwrap();
        assert!(zero.volume_id().unwrap_err().contains("not a volume id"));
        let bad = parse(&["-source", "nohost"]).unwrap();
        assert!(bad.server("source").unwrap_err().contains("host:port"));
        assert!(parse(&[]).unwrap().required_volume_id().is_err());
    }
}
