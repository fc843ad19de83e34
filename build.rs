//! Stamps the build into `kelp --version`: `KELP_BUILD` when the environment sets it (a
//! packager building from a tarball), else the git commit of the source, else "unknown" (a
//! tarball without `.git`).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KELP_BUILD");
    let build = match std::env::var("KELP_BUILD") {
        Ok(build) if !build.is_empty() => build,
        _ => git_build().unwrap_or_else(|| "unknown".to_string()),
    };
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=KELP_BUILD={build}");
    println!("cargo:rustc-env=KELP_PROFILE={profile}");
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
