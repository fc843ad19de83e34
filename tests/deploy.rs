//! The bare-metal deployment files in `deploy/`: the systemd unit templates pass
//! `systemd-analyze verify` (when the tool is installed: test.sh runs the `needs_systemd`
//! tests then, and lists them as ignored otherwise), and the install script lays out the
//! binary, the directories, the units and configuration files that `kelp` takes as they are.

mod support;

use std::path::Path;
use std::process::Command;

const UNITS: [&str; 3] = ["master", "volume", "filer"];

fn deploy_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy"))
}

// Proves each unit template, instantiated, passes `systemd-analyze verify` with no warning
// (the binary path pointed at the kelp built here, since verify checks it is executable),
// and keeps the settings the deployment relies on.
#[test]
#[ignore = "needs systemd-analyze (test.sh runs the needs_systemd tests when it is installed)"]
fn units_verify_needs_systemd() {
    let staging = tempfile::tempdir().unwrap();
    for role in UNITS {
        let name = format!("kelp-{role}@.service");
        let text = std::fs::read_to_string(deploy_dir().join(&name)).unwrap();
        for setting in [
            "User=kelp",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/kelp/",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "Restart=on-failure",
            "KillSignal=SIGTERM",
            "LimitNOFILE=",
        ] {
            assert!(text.contains(setting), "{name} lacks {setting}");
        }
        if role == "volume" {
            assert!(text.contains("LimitMEMLOCK=infinity"), "{name}");
        }
        let local = text.replace("/usr/local/bin/kelp", support::kelp_bin());
        std::fs::write(staging.path().join(&name), local).unwrap();
        let instance = staging.path().join(format!("kelp-{role}@test.service"));
        let output = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&instance)
            .output()
            .expect("run systemd-analyze");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        let complaints: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains(&name) || line.contains("kelp-"))
            .collect();
        assert!(complaints.is_empty(), "{name}: {stderr}");
    }
}

// Proves install.sh (into a staging root) places the binary, the units and one scaffolded
// configuration per instance whose state directory matches its unit's, that kelp takes
// each file as it is, and that a second run keeps the files an operator edited.
#[test]
fn install_script_lays_out_a_host() {
    let root = tempfile::tempdir().unwrap();
    let root_text = root.path().display().to_string();
    let run = || {
        Command::new("bash")
            .arg(deploy_dir().join("install.sh"))
            .args(["--binary", support::kelp_bin(), "--root", &root_text])
            .args(["--master", "m1", "--volume", "v1", "--filer", "f1"])
            .output()
            .unwrap()
    };
    let output = run();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let at = |path: &str| root.path().join(path.trim_start_matches('/'));
    assert!(at("/usr/local/bin/kelp").is_file());
    for role in UNITS {
        assert!(at(&format!("/etc/systemd/system/kelp-{role}@.service")).is_file());
    }
    for (role, name, key) in [
        ("master", "m1", "mdir"),
        ("volume", "v1", "dir"),
        ("filer", "f1", "dir"),
    ] {
        let file = at(&format!("/etc/kelp/{role}-{name}.toml"));
        let text = std::fs::read_to_string(&file).unwrap();
        let line = format!("{key} = \"/var/lib/kelp/{role}-{name}\"");
        assert!(text.lines().any(|l| l == line), "{role}: {text}");
        // `--help` after the file: the file is read and checked, then help is printed.
        let file_text = file.display().to_string();
        let checked = Command::new(support::kelp_bin())
            .args([role, "--config", &file_text, "--help"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&checked.stderr);
        assert!(checked.status.success(), "{role}: {stderr}");
    }
    let security = std::fs::read_to_string(at("/etc/kelp/security.toml")).unwrap();
    assert!(security.contains("[jwt.signing]"));
    let master_file = at("/etc/kelp/master-m1.toml");
    std::fs::write(&master_file, "mdir = \"/edited\"\n").unwrap();
    let output = run();
    assert!(output.status.success());
    assert_eq!(
        std::fs::read_to_string(&master_file).unwrap(),
        "mdir = \"/edited\"\n"
    );
}
