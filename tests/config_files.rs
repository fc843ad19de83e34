//! `--config FILE` and `kelp scaffold`: a scaffolded file, edited, starts a master and a
//! volume server that behave as the same flags do; typed flags override the file; an
//! unknown key or a bad value stops the start naming the key and the file. And `kelp
//! --version` names the build.

mod master_common;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use master_common::get;
use support::{ChildGuard, free_port, free_port_run, kelp_bin, wait_until};

fn kelp(args: &[&str]) -> std::process::Output {
    Command::new(kelp_bin()).args(args).output().unwrap()
}

/// `kelp scaffold --config NAME`, with `edits` (key, TOML value) set in it: an existing
/// line `key = ...` or `# key = ...` is replaced. Written to `dir/NAME.toml`.
fn scaffold_edited(dir: &Path, name: &str, edits: &[(&str, String)]) -> String {
    let output = kelp(&["scaffold", "--config", name]);
    assert!(output.status.success(), "{output:?}");
    let mut text = String::from_utf8(output.stdout).unwrap();
    for (key, value) in edits {
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                let bare = line.trim_start_matches("# ");
                match bare.split_once(" = ") {
                    Some((k, _)) if k == *key => format!("{key} = {value}"),
                    _ => line.to_string(),
                }
            })
            .collect();
        assert!(
            lines.iter().any(|l| l == &format!("{key} = {value}")),
            "{key} in {name}"
        );
        text = lines.join("\n") + "\n";
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn quoted(text: &str) -> String {
    format!("{text:?}")
}

/// The data nodes the master lists: (url, data center, rack, max).
fn data_nodes(master: &str) -> Vec<(String, String, String, u64)> {
    let status = get(master, "/dir/status").unwrap().json();
    let mut nodes = Vec::new();
    for dc in status["Topology"]["DataCenters"].as_array().unwrap() {
        for rack in dc["Racks"].as_array().unwrap() {
            for node in rack["DataNodes"].as_array().unwrap() {
                nodes.push((
                    node["Url"].as_str().unwrap().to_string(),
                    dc["Id"].as_str().unwrap().to_string(),
                    rack["Id"].as_str().unwrap().to_string(),
                    node["Max"].as_u64().unwrap(),
                ));
            }
        }
    }
    nodes.sort();
    nodes
}

// Proves scaffolded files, edited, start a master and two volume servers that the master
// sees exactly as one started with the same flags, that a typed flag overrides the file,
// and that the scaffolded security.toml is taken as it is.
#[test]
fn scaffold_edit_start_same_as_flags() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let master_port = free_port();
    let master = format!("127.0.0.1:{master_port}");
    let security = scaffold_edited(root, "security", &[]);
    let master_file = scaffold_edited(
        root,
        "master",
        &[
            ("port", master_port.to_string()),
            ("mdir", quoted(&root.join("m").display().to_string())),
            ("pulse_seconds", "1".into()),
            ("security", quoted(&security)),
        ],
    );
    let _master = ChildGuard::spawn_kelp(
        "master",
        &["master", "--config", &master_file],
        &root.join("master.log"),
    );
    let (file_port, flag_port) = (free_port_run(2), free_port_run(2));
    let volume_file = scaffold_edited(
        root,
        "volume",
        &[
            ("dir", quoted(&root.join("v1").display().to_string())),
            ("port", file_port.to_string()),
            ("master", quoted(&master)),
            ("cores", "1".into()),
            ("max", "3".into()),
            ("data_center", quoted("dc-file")),
            ("rack", quoted("rack-file")),
        ],
    );
    std::fs::create_dir_all(root.join("v1")).unwrap();
    std::fs::create_dir_all(root.join("v2")).unwrap();
    let _from_file = ChildGuard::spawn_kelp(
        "volume from file",
        &["volume", "--config", &volume_file],
        &root.join("v1.log"),
    );
    let (flag_port_text, v2) = (flag_port.to_string(), root.join("v2").display().to_string());
    let _from_flags = ChildGuard::spawn_kelp(
        "volume from flags",
        &[
            "volume",
            "--dir",
            &v2,
            "--port",
            &flag_port_text,
            "--master",
            &master,
            "--cores",
            "1",
            "--max",
            "3",
            "--data-center",
            "dc-file",
            "--rack",
            "rack-file",
        ],
        &root.join("v2.log"),
    );
    wait_until(
        "both volume servers joined",
        Duration::from_secs(30),
        || {
            get(&master, "/dir/status").is_ok_and(|s| s.status == 200)
                && data_nodes(&master).len() == 2
        },
    );
    let nodes = data_nodes(&master);
    let same: Vec<_> = nodes
        .iter()
        .map(|(_, dc, rack, max)| (dc, rack, max))
        .collect();
    assert_eq!(same[0], same[1], "{nodes:?}");
    assert_eq!(
        same[0],
        (&"dc-file".to_string(), &"rack-file".to_string(), &3),
        "{nodes:?}"
    );
    // A typed flag overrides the file.
    let override_port = free_port_run(2);
    std::fs::create_dir_all(root.join("v3")).unwrap();
    let (port_text, v3) = (
        override_port.to_string(),
        root.join("v3").display().to_string(),
    );
    let _overridden = ChildGuard::spawn_kelp(
        "volume overridden",
        &[
            "volume",
            "--config",
            &volume_file,
            "--port",
            &port_text,
            "--dir",
            &v3,
            "--max",
            "5",
        ],
        &root.join("v3.log"),
    );
    let address = format!("127.0.0.1:{override_port}");
    wait_until(
        "the third volume server joined",
        Duration::from_secs(30),
        || {
            data_nodes(&master)
                .iter()
                .any(|(url, _, _, max)| *url == address && *max == 5)
        },
    );
}

// Proves an unknown key, a misspelt one and a bad value stop the start with a message
// naming the key and the file, and a missing file names itself.
#[test]
fn bad_files_are_refused_naming_key_and_file() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("master.toml");
    let file_text = file.display().to_string();
    for (text, words) in [
        (
            "mdir = \"/tmp/x\"\nvolume_size_limit = 5\n",
            "\"volume_size_limit\"",
        ),
        (
            "mdir = \"/tmp/x\"\npulse-seconds = 5\n",
            "write it \"pulse_seconds\"",
        ),
        ("mdir = \"/tmp/x\"\nport = \"high\"\n", "port = \"high\""),
    ] {
        std::fs::write(&file, text).unwrap();
        let output = kelp(&["master", "--config", &file_text]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&file_text) && stderr.contains(words),
            "{stderr}"
        );
    }
    let missing = root.path().join("none.toml").display().to_string();
    let output = kelp(&["volume", "--config", &missing]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("none.toml"),
        "{stderr}"
    );
    for name in ["master", "volume", "server", "filer", "security"] {
        let output = kelp(&["scaffold", "--config", name]);
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.parse::<toml::Table>().is_ok(), "{name}: {text}");
    }
}

// Proves `kelp --version` prints the version and the build it came from.
#[test]
fn version_names_the_build() {
    let output = kelp(&["--version"]);
    let text = String::from_utf8(output.stdout).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(text.starts_with(&format!("kelp {version} (")), "{text}");
    let build = match std::env::var("KELP_BUILD") {
        Ok(build) if !build.is_empty() => build,
        _ => Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| format!("git {}", String::from_utf8_lossy(&o.stdout).trim()))
            .unwrap_or_else(|| "unknown".into()),
    };
    assert!(
        text.contains(&format!("({build}, ")),
        "{text} lacks {build}"
    );
}
