//! Stamps the build into `kelp --version`: `KELP_BUILD` when the environment sets it (a
//! packager building from a tarball), else the git commit of the source, else "unknown" (a
//! tarball without `.git`). Compiles the gRPC contracts in `proto/` (SeaweedFS's
//! `master_pb`, `volume_server_pb` and `filer_pb` subsets) into Rust with a pure-Rust
//! protobuf compiler, so a build needs no system `protoc`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos()?;
    println!("cargo:rerun-if-env-changed=KELP_BUILD");
    let build = match std::env::var("KELP_BUILD") {
        Ok(build) if !build.is_empty() => build,
        _ => git_build().unwrap_or_else(|| "unknown".to_string()),
    };
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=KELP_BUILD={build}");
    println!("cargo:rustc-env=KELP_PROFILE={profile}");
    Ok(())
}

fn compile_protos() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/master.proto",
        "proto/volume_server.proto",
        "proto/filer.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}

/// `git <hash>`, watching the files that change with a commit or a checkout.
fn git_build() -> Option<String> {
    let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &reference])
    {
        println!("cargo:rerun-if-changed={path}");
    }
    Some(format!("git {hash}"))
}
