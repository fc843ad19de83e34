//! `--config FILE` for `kelp master`, `volume`, `server` and `filer`: every flag of the
//! command can be a key of a TOML file (the flag's long name, `-` written `_`:
//! `volume_size_limit_mb = 1024`), and flags on the command line override the file.
//!
//! One mechanism for every command, built on its clap definition: the file's keys become
//! flags placed before the command line's own (clap keeps the last value of a flag), so the
//! file's values go through the same parsers, checks and defaults as typed flags. A key that
//! is not a flag of the command, or a value its flag refuses, is an error naming the key and
//! the file. `kelp scaffold --config COMMAND` prints a commented file of every flag with its
//! default, from the same definition.

use std::ffi::OsString;
use std::path::Path;

use clap::builder::ValueParser;
use clap::{Arg, ArgAction, Command};

/// Commands that take `--config FILE`.
pub const CONFIGURABLE: [&str; 4] = ["master", "volume", "server", "filer"];

/// Largest configuration file read.
const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// `command` with `--config FILE` on each configurable subcommand, whose later flags
/// override earlier ones.
pub fn with_config_flag(command: Command) -> Command {
    let present: Vec<&str> = CONFIGURABLE
        .into_iter()
        .filter(|name| command.find_subcommand(name).is_some())
        .collect();
    present.into_iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| {
            let help = format!(
                "TOML file of this command's flags (`kelp scaffold --config {name}` prints one); \
                 flags given here override it"
            );
            sub.args_override_self(true).arg(
                Arg::new("config")
                    .long("config")
                    .value_name("FILE")
                    .help(help),
            )
        })
    })
}

/// `argv` with the flags of the `--config FILE` it names (if any) put right after the
/// subcommand's name, before the flags typed after it. `top_options_with_values` are the
/// options before the subcommand that take a value (to find where the subcommand is).
pub fn expand(
    command: &Command,
    argv: Vec<OsString>,
    top_options_with_values: &[&str],
) -> Result<Vec<OsString>, String> {
    let Some(position) = subcommand_position(&argv, top_options_with_values) else {
        return Ok(argv);
    };
    let name = argv[position].to_string_lossy().into_owned();
    let Some(sub) = command
        .find_subcommand(&name)
        .filter(|_| CONFIGURABLE.contains(&name.as_str()))
    else {
        return Ok(argv);
    };
    let Some(path) = config_path(&argv[position + 1..]) else {
        return Ok(argv);
    };
    let file_args = load(sub, Path::new(&path))?;
    let mut expanded = argv[..=position].to_vec();
    expanded.extend(file_args.into_iter().map(OsString::from));
    expanded.extend_from_slice(&argv[position + 1..]);
    Ok(expanded)
}

/// Index of the subcommand's name in `argv`: the first word after the program's name that
/// is not an option (nor the value of one of `options_with_values`).
fn subcommand_position(argv: &[OsString], options_with_values: &[&str]) -> Option<usize> {
    let mut index = 1;
    while index < argv.len() {
        let word = argv[index].to_string_lossy();
        if !word.starts_with('-') {
            return Some(index);
        }
        let takes_value = options_with_values.contains(&word.as_ref());
        index += if takes_value { 2 } else { 1 };
    }
    None
}

/// The value of `--config FILE` or `--config=FILE` among a subcommand's arguments (the last
/// one given wins, as for any flag).
fn config_path(args: &[OsString]) -> Option<OsString> {
    let mut found = None;
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let text = word.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--config" {
            found = words.next().cloned();
        } else if let Some(value) = text.strip_prefix("--config=") {
            found = Some(OsString::from(value));
        }
    }
    found
}

/// The flags a configuration file stands for, each checked by its flag's own parser.
pub fn load(sub: &Command, path: &Path) -> Result<Vec<String>, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("--config {shown}: {e}"))?;
    if metadata.len() > CONFIG_FILE_BYTES_MAX {
        return Err(format!(
            "--config {shown}: {} bytes, over the {CONFIG_FILE_BYTES_MAX} a configuration holds",
            metadata.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config {shown}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("--config {shown}: not TOML: {e}"))?;
    let mut args = Vec::new();
    for (key, value) in &table {
        let arg = flag_of(sub, key).ok_or_else(|| unknown_key(sub, key, path))?;
        let flag = format!("--{}", arg.get_long().expect("configurable flags are long"));
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(on)) => {
                if *on {
                    args.push(flag);
                }
                continue;
            }
            (ArgAction::SetTrue, _) => {
                return Err(format!("{shown}: {key} is a switch: true or false"));
            }
            _ => {}
        }
        let text = value_text(value).map_err(|why| format!("{shown}: {key}: {why}"))?;
        check_value(sub, &flag, &text).map_err(|why| format!("{shown}: {key} = {value}: {why}"))?;
        args.push(format!("{flag}={text}"));
    }
    Ok(args)
}

/// The flag a key names: its long name with `_` for `-` (`config` itself excluded).
fn flag_of<'a>(sub: &'a Command, key: &str) -> Option<&'a Arg> {
    if key.contains('-') || key == "config" {
        return None;
    }
    let long = key.replace('_', "-");
    sub.get_arguments()
        .find(|arg| arg.get_long() == Some(long.as_str()) && !is_builtin(arg))
}

fn is_builtin(arg: &Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version" | "config")
}

fn unknown_key(sub: &Command, key: &str, path: &Path) -> String {
    let hint = match key.contains('-') {
        true => format!(" (write it {:?})", key.replace('-', "_")),
        false => String::new(),
    };
    let known: Vec<String> = configurable_args(sub).map(key_of).collect();
    format!(
        "{}: unknown key {key:?}{hint}: `kelp {}` takes {}",
        path.display(),
        sub.get_name(),
        known.join(", ")
    )
}

fn configurable_args(sub: &Command) -> impl Iterator<Item = &Arg> {
    sub.get_arguments()
        .filter(|arg| arg.get_long().is_some() && !is_builtin(arg))
}

fn key_of(arg: &Arg) -> String {
    arg.get_long().expect("long").replace('-', "_")
}

/// The text a TOML value gives its flag: strings as they are, numbers in decimal, a list
/// joined with commas (`peers = ["a:1", "b:2"]`).
fn value_text(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Ok(number.to_string()),
        toml::Value::Boolean(on) => Ok(on.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(_) | toml::Value::Integer(_) => value_text(item),
                _ => Err("a list holds strings or numbers".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join(",")),
        toml::Value::Table(_) => Err("a value, not a [section]".into()),
        toml::Value::Datetime(_) => Err("a date is no flag's value".into()),
    }
}

/// Parse `flag=text` alone with `sub`'s definition (nothing required), for its error.
fn check_value(sub: &Command, flag: &str, text: &str) -> Result<(), String> {
    let alone = sub
        .clone()
        .mut_args(|arg| arg.required(false))
        .no_binary_name(true);
    alone
        .try_get_matches_from([format!("{flag}={text}")])
        .map(|_| ())
        .map_err(|error| {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or("").trim();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        })
}

/// A commented TOML file of every flag of `sub`, each with its help and default.
pub fn scaffold(sub: &Command) -> String {
    let name = sub.get_name();
    let mut text = format!(
        "# kelp {name}: `kelp {name} --config {name}.toml`.\n\
         # Every key is a flag of `kelp {name}` (its long name, - written _); a flag given on\n\
         # the command line overrides the file. Unknown keys are refused. Keys left commented\n\
         # out have no default.\n"
    );
    for arg in configurable_args(sub).filter(|arg| !arg.is_hide_set()) {
        text.push('\n');
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        for line in wrap(&help, 88) {
            text.push_str(&format!("# {line}\n"));
        }
        text.push_str(&scaffold_line(arg));
    }
    text
}

fn scaffold_line(arg: &Arg) -> String {
    let key = key_of(arg);
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return format!("{key} = false\n");
    }
    let Some(default) = arg.get_default_values().first() else {
        let required = if arg.is_required_set() {
            " (required)"
        } else {
            ""
        };
        return format!("# {key} = {}{required}\n", placeholder(arg));
    };
    let default = default.to_string_lossy();
    match is_number(arg.get_value_parser()) {
        true => format!("{key} = {default}\n"),
        false => format!("{key} = {}\n", toml::Value::String(default.into_owned())),
    }
}

fn placeholder(arg: &Arg) -> String {
    match is_number(arg.get_value_parser()) {
        true => "0".into(),
        false => "\"\"".into(),
    }
}

/// Does this parser take a number (written bare in TOML), or text (quoted)?
fn is_number(parser: &ValueParser) -> bool {
    use std::any::TypeId;
    let id = parser.type_id();
    [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i64>(),
        TypeId::of::<f64>(),
    ]
    .iter()
    .any(|number| id == *number)
}

/// `text` cut into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> Command {
        Command::new("kelp").subcommand(
            Command::new("master")
                .arg(
                    Arg::new("port")
                        .long("port")
                        .value_parser(clap::value_parser!(u16))
                        .default_value("9333")
                        .help("HTTP port."),
                )
                .arg(
                    Arg::new("mdir")
                        .long("mdir")
                        .required(true)
                        .help("Directory."),
                )
                .arg(Arg::new("peers").long("peers").default_value(""))
                .arg(Arg::new("fast").long("fast").action(ArgAction::SetTrue)),
        )
    }

    fn words(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    // Proves a file's keys become flags placed before the typed ones (so typed flags win),
    // lists join with commas, switches turn on with true, and a bad value or an unknown key
    // is an error naming the key and the file.
    #[test]
    fn file_keys_become_flags() {
        let command = with_config_flag(command());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(
            &file,
            "port = 9400\nmdir = \"/m\"\npeers = [\"a:1\", \"b:2\"]\nfast = true\n",
        )
        .unwrap();
        let file_text = file.display().to_string();
        let argv = words(&["kelp", "master", "--config", &file_text, "--port", "9500"]);
        let expanded = expand(&command, argv, &[]).unwrap();
        let matches = command.clone().try_get_matches_from(&expanded).unwrap();
        let (_, sub) = matches.subcommand().unwrap();
        assert_eq!(sub.get_one::<u16>("port"), Some(&9500));
        assert_eq!(sub.get_one::<String>("mdir").unwrap(), "/m");
        assert_eq!(sub.get_one::<String>("peers").unwrap(), "a:1,b:2");
        assert!(sub.get_flag("fast"));
        std::fs::write(&file, "port = \"x\"\n").unwrap();
        let argv = words(&["kelp", "master", "--config", &file_text]);
        let error = expand(&command, argv.clone(), &[]).unwrap_err();
        assert!(
            error.contains("m.toml") && error.contains("port"),
            "{error}"
        );
        std::fs::write(&file, "volume-size = 3\n").unwrap();
        let error = expand(&command, argv.clone(), &[]).unwrap_err();
        assert!(
            error.contains("\"volume-size\"") && error.contains("m.toml"),
            "{error}"
        );
        assert!(error.contains("port, mdir, peers, fast"), "{error}");
        std::fs::write(&file, "[master]\nport = 1\n").unwrap();
        assert!(expand(&command, argv, &[]).unwrap_err().contains("master"));
    }

    // Proves the scaffold lists every flag with its help and default, quoted for text and
    // bare for numbers, and leaves flags without a default commented out.
    #[test]
    fn scaffold_lists_every_flag() {
        let command = command();
        let master = command.find_subcommand("master").unwrap();
        let text = scaffold(master);
        assert!(text.contains("# HTTP port.\nport = 9333\n"), "{text}");
        assert!(text.contains("# mdir = \"\" (required)\n"), "{text}");
        assert!(text.contains("peers = \"\"\n"), "{text}");
        assert!(text.contains("fast = false\n"), "{text}");
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table.len(), 3);
    }
}
