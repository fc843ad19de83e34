//! `security.toml` and `--white-list` end to end: a real master and two real volume servers
//! (volumes replicated on both) with SeaweedFS's JWT keys. Tokens are made here from the
//! key, the way SeaweedFS's master makes them, so the checks are held against SeaweedFS's
//! shape and not against Kelp's own signer.
// master_common and volume_support both include the raw response type; each keeps its own.
#![allow(clippy::duplicate_mod)]

mod master_common;
mod support;
mod volume_support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use master_common::{Answer, MasterProcess, get, http, multipart_file};
use support::{ChildGuard, free_port, free_port_run, wait_until};

const WRITE_KEY: &str = "kelp-write-key";
const READ_KEY: &str = "kelp-read-key";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token with the claims `fid` and `exp` (none when `exp` is `None`), as golang-jwt
/// writes SeaweedFS's `SeaweedFileIdClaims`.
fn token(key: &str, fid: &str, exp: Option<u64>) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = match exp {
        Some(exp) => format!(r#"{{"fid":"{fid}","exp":{exp}}}"#),
        None => format!(r#"{{"fid":"{fid}"}}"#),
    };
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// The claims of a token (not checked: the test checks them itself).
fn claims_of(token: &str) -> serde_json::Value {
    let claims = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
}

fn bearer(answer: &Answer) -> String {
    let value = answer
        .header("authorization")
        .unwrap_or_else(|| panic!("no Authorization in {} {}", answer.status, answer.text()));
    value
        .strip_prefix("Bearer ")
        .expect("Bearer scheme")
        .to_string()
}

/// A `kelp volume` with `extra` flags, ready when its ports answer `/healthz`.
fn start_volume(root: &Path, name: &str, master: &str, extra: &[&str]) -> (ChildGuard, String) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port_run(2);
    let (port_text, dir_text) = (port.to_string(), dir.display().to_string());
    let mut args = vec![
        "volume", "--dir", &dir_text, "--port", &port_text, "--cores", "1", "--master", master,
        "--max", "8",
    ];
    args.extend(extra);
    let guard = ChildGuard::spawn_kelp(name, &args, &root.join(format!("{name}.log")));
    let address = format!("127.0.0.1:{port}");
    wait_until(&format!("{name} to serve"), Duration::from_secs(20), || {
        get(&address, "/healthz").is_ok_and(|a| a.status == 200)
    });
    (guard, address)
}

fn upload(address: &str, fid: &str, query: &str, headers: &[(&str, &str)], data: &[u8]) -> Answer {
    let (content_type, body) = multipart_file("a.txt", data);
    let mut all = vec![("Content-Type", content_type.as_str())];
    all.extend_from_slice(headers);
    http("POST", address, &format!("/{fid}{query}"), &all, &body).unwrap()
}

fn assert_refused(answer: &Answer, what: &str, words: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.text());
    let error = answer.json()["error"].as_str().unwrap_or("").to_string();
    assert!(error.contains(words), "{what}: {error:?} lacks {words:?}");
}

/// Writes `security.toml` (SeaweedFS's sections) with a write key and, when asked, a read key.
fn security_file(root: &Path, read_key: bool) -> String {
    let read = if read_key { READ_KEY } else { "" };
    let text = format!(
        "[jwt.signing]\nkey = \"{WRITE_KEY}\"\nexpires_after_seconds = 10\n\n\
         [jwt.signing.read]\nkey = \"{read}\"\nexpires_after_seconds = 10\n\n\
         [access]\nui = false\n\n[grpc]\nca = \"\"\n"
    );
    let path = root.join("security.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

struct Cluster {
    master: MasterProcess,
    volumes: Vec<(ChildGuard, String)>,
    _root: tempfile::TempDir,
}

fn start_cluster(read_key: bool) -> Cluster {
    let root = tempfile::tempdir().unwrap();
    let security = security_file(root.path(), read_key);
    let port = free_port();
    let extra = [
        "--security",
        security.as_str(),
        "--default-replication",
        "001",
    ];
    let master = MasterProcess::start(root.path(), "master", port, "", &extra);
    let volumes = ["volume1", "volume2"]
        .map(|name| {
            start_volume(
                root.path(),
                name,
                &master.address,
                &["--security", &security],
            )
        })
        .into();
    let cluster = Cluster {
        master,
        volumes,
        _root: root,
    };
    wait_until("two volume servers joined", Duration::from_secs(20), || {
        let status = get(&cluster.master.address, "/dir/status");
        status.is_ok_and(|s| s.text().matches("\"Url\"").count() >= 2)
    });
    cluster
}

/// Assign through the master (growing the first volume may take a moment).
fn assign(master: &str, query: &str) -> Answer {
    let mut answer = None;
    wait_until("an assignment", Duration::from_secs(20), || {
        let got = get(master, &format!("/dir/assign?{query}")).unwrap();
        let ok = got.status == 200;
        answer = Some(got);
        ok
    });
    answer.unwrap()
}

// Proves the volume server refuses writes and deletes with no token, a token for another
// fid, an expired token and a token of another key, each with 401 and a JSON error naming
// why; that the master's assign token (SeaweedFS's claims, signed with the write key) and a
// token made here from the key are taken from ?jwt=, Authorization: Bearer and the cookie
// AT; that the replica accepts the forwarded write and delete; that with no read key reads
// need nothing; and that the master's admin calls need their signed token.
#[test]
fn writes_and_deletes_need_the_write_token() {
    let cluster = start_cluster(false);
    let master = &cluster.master.address;
    let assigned = assign(master, "");
    let fid = assigned.json()["fid"].as_str().unwrap().to_string();
    let url = assigned.json()["url"].as_str().unwrap().to_string();
    let issued = bearer(&assigned);
    let claims = claims_of(&issued);
    assert_eq!(claims["fid"], fid.as_str());
    let exp = claims["exp"].as_u64().unwrap();
    assert!((now() + 8..=now() + 11).contains(&exp), "exp {exp}");
    let other_fid = format!("{fid}0"); // a longer key: another file
    let refusals = [
        (String::new(), "no token"),
        (
            token(WRITE_KEY, &other_fid, Some(now() + 60)),
            "token is for",
        ),
        (token(WRITE_KEY, &fid, Some(now() - 1)), "expired"),
        (
            token("another-key", &fid, Some(now() + 60)),
            "not signed with this server's key",
        ),
    ];
    for (bad, why) in &refusals {
        let header = format!("Bearer {bad}");
        let answer = upload(&url, &fid, "", &[("Authorization", &header)], b"no");
        assert_refused(&answer, &format!("write with {why}"), why);
        let answer = http("DELETE", &url, &format!("/{fid}?jwt={bad}"), &[], b"").unwrap();
        assert_refused(&answer, &format!("delete with {why}"), why);
    }
    let written = upload(&url, &fid, &format!("?jwt={issued}"), &[], b"hello");
    assert_eq!(written.status, 201, "{}", written.text());
    // The replica holds it: reads need no token without a read key.
    for (_, volume) in &cluster.volumes {
        let read = get(volume, &format!("/{fid}")).unwrap();
        assert_eq!(
            (read.status, read.body.as_slice()),
            (200, &b"hello"[..]),
            "{volume}"
        );
    }
    // A token made here from the key, as a cookie, deletes it on both servers.
    let cookie = format!("AT={}", token(WRITE_KEY, &fid, Some(now() + 60)));
    let deleted = http(
        "DELETE",
        &url,
        &format!("/{fid}"),
        &[("Cookie", &cookie)],
        b"",
    )
    .unwrap();
    assert_eq!(deleted.status, 202, "{}", deleted.text());
    for (_, volume) in &cluster.volumes {
        assert_eq!(
            get(volume, &format!("/{fid}")).unwrap().status,
            404,
            "{volume}"
        );
    }
    // An admin call from the master's address still needs the master's signed token.
    let (_, volume) = &cluster.volumes[0];
    let create = "/admin/volume/create?volume=99";
    let unsigned = http("POST", volume, create, &[], b"").unwrap();
    assert_refused(&unsigned, "admin call without a token", "no token");
    let wrong = format!(
        "Bearer {}",
        token(WRITE_KEY, "/admin/volume/create?volume=98", None)
    );
    let refused = http("POST", volume, create, &[("Authorization", &wrong)], b"").unwrap();
    assert_refused(&refused, "admin token of another call", "token is for");
    let signed = format!("Bearer {}", token(WRITE_KEY, create, Some(now() + 60)));
    let created = http("POST", volume, create, &[("Authorization", &signed)], b"").unwrap();
    assert_eq!(created.status, 200, "{}", created.text());
}

// Proves a count=3 assign's token covers the batch's fids `fid_1`, `fid_2` (the claim is the
// first fid, the suffix is dropped), that /dir/lookup?fileId= answers a write token that
// deletes, and that the master's /submit carries a token itself.
#[test]
fn batch_assigns_lookups_and_submit_carry_tokens() {
    let cluster = start_cluster(false);
    let master = &cluster.master.address;
    let assigned = assign(master, "count=3");
    let fid = assigned.json()["fid"].as_str().unwrap().to_string();
    let url = assigned.json()["url"].as_str().unwrap().to_string();
    let issued = format!("Bearer {}", bearer(&assigned));
    for suffix in ["", "_1", "_2"] {
        let answer = upload(
            &url,
            &format!("{fid}{suffix}"),
            "",
            &[("Authorization", &issued)],
            b"x",
        );
        assert_eq!(answer.status, 201, "{fid}{suffix}: {}", answer.text());
    }
    let looked_up = get(master, &format!("/dir/lookup?fileId={fid}")).unwrap();
    assert_eq!(looked_up.status, 200, "{}", looked_up.text());
    let write_token = bearer(&looked_up);
    assert_eq!(claims_of(&write_token)["fid"], fid.as_str());
    let deleted = http(
        "DELETE",
        &url,
        &format!("/{fid}?jwt={write_token}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(deleted.status, 202, "{}", deleted.text());
    // No fileId, no token.
    let volume_id = fid.split(',').next().unwrap();
    let plain = get(master, &format!("/dir/lookup?volumeId={volume_id}")).unwrap();
    assert!(plain.header("authorization").is_none());
    let (content_type, body) = multipart_file("s.txt", b"submitted");
    let submitted = http(
        "POST",
        master,
        "/submit",
        &[("Content-Type", &content_type)],
        &body,
    )
    .unwrap();
    assert_eq!(submitted.status, 201, "{}", submitted.text());
}

// Proves that with a read key set, reads need a read token with the same refusals as
// writes (a write-key token is another key's), that /dir/lookup?fileId=&read=yes answers a
// read token, and that the write path is unchanged.
#[test]
fn reads_need_the_read_token_when_a_read_key_is_set() {
    let cluster = start_cluster(true);
    let master = &cluster.master.address;
    let assigned = assign(master, "");
    let fid = assigned.json()["fid"].as_str().unwrap().to_string();
    let url = assigned.json()["url"].as_str().unwrap().to_string();
    let issued = format!("Bearer {}", bearer(&assigned));
    let written = upload(&url, &fid, "", &[("Authorization", &issued)], b"secret");
    assert_eq!(written.status, 201, "{}", written.text());
    let other_fid = format!("{fid}0");
    for (bad, why) in [
        (String::new(), "no token"),
        (
            token(READ_KEY, &other_fid, Some(now() + 60)),
            "token is for",
        ),
        (token(READ_KEY, &fid, Some(now() - 1)), "expired"),
        (
            token(WRITE_KEY, &fid, Some(now() + 60)),
            "not signed with this server's key",
        ),
    ] {
        for (_, volume) in &cluster.volumes {
            let answer = get(volume, &format!("/{fid}?jwt={bad}")).unwrap();
            assert_refused(&answer, &format!("read on {volume} with {why}"), why);
        }
    }
    let looked_up = get(master, &format!("/dir/lookup?fileId={fid}&read=yes")).unwrap();
    let read_token = format!("Bearer {}", bearer(&looked_up));
    for (_, volume) in &cluster.volumes {
        let read = http(
            "GET",
            volume,
            &format!("/{fid}"),
            &[("Authorization", &read_token)],
            b"",
        );
        let read = read.unwrap();
        assert_eq!(
            (read.status, read.body.as_slice()),
            (200, &b"secret"[..]),
            "{volume}"
        );
    }
    let made_here = token(READ_KEY, &fid, None);
    let read = get(&url, &format!("/{fid}.txt?jwt={made_here}")).unwrap();
    assert_eq!(read.status, 200, "{}", read.text());
}

// Proves that without a security file nothing changes: assign answers no token and writes,
// reads and deletes need none.
#[test]
fn without_security_nothing_changes() {
    let root = tempfile::tempdir().unwrap();
    let master = MasterProcess::start(root.path(), "master", free_port(), "", &[]);
    let (_volume, _) = start_volume(root.path(), "volume", &master.address, &[]);
    let assigned = assign(&master.address, "");
    assert!(assigned.header("authorization").is_none());
    let fid = assigned.json()["fid"].as_str().unwrap().to_string();
    let url = assigned.json()["url"].as_str().unwrap().to_string();
    assert_eq!(upload(&url, &fid, "", &[], b"open").status, 201);
    assert_eq!(get(&url, &format!("/{fid}")).unwrap().status, 200);
    let deleted = http("DELETE", &url, &format!("/{fid}"), &[], b"").unwrap();
    assert_eq!(deleted.status, 202);
}

/// One request to 127.0.0.1:`port` from the local address `source` (127.0.0.x).
fn from(source: [u8; 4], port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::Write as _;
    let mut stream = volume_support::connect_from(source.into(), port);
    let (content_type, body) = multipart_file("w.txt", body);
    let headers = [("Content-Type", content_type.as_str())];
    let request = volume_support::encode(method, path, &headers, &body);
    stream.write_all(&request).unwrap();
    let answer = volume_support::read_response(&mut stream, false);
    (answer.status, answer.text())
}

fn port_of(address: &str) -> u16 {
    address.rsplit_once(':').unwrap().1.parse().unwrap()
}

// Proves --white-list lets only listed addresses and networks write and delete on a volume
// server and make the master's destructive calls (403 with a JSON error naming the caller),
// while reads and assignments stay open to all.
#[test]
fn allow_lists_guard_writes_and_destructive_calls() {
    let root = tempfile::tempdir().unwrap();
    let list = ["--white-list", "127.0.0.1,10.0.0.0/8"];
    let master = MasterProcess::start(root.path(), "master", free_port(), "", &list);
    let (_volume, url) = start_volume(root.path(), "volume", &master.address, &list);
    let assigned = assign(&master.address, "");
    let fid = assigned.json()["fid"].as_str().unwrap().to_string();
    let volume_port = port_of(&url);
    let (status, text) = from(
        [127, 0, 0, 2],
        volume_port,
        "POST",
        &format!("/{fid}"),
        b"x",
    );
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("127.0.0.2") && text.contains("allow-list"),
        "{text}"
    );
    let (status, text) = from(
        [127, 0, 0, 2],
        volume_port,
        "DELETE",
        &format!("/{fid}"),
        b"",
    );
    assert_eq!(status, 403, "{text}");
    let (status, text) = from(
        [127, 0, 0, 1],
        volume_port,
        "POST",
        &format!("/{fid}"),
        b"ok",
    );
    assert_eq!(status, 201, "{text}");
    let (status, text) = from([127, 0, 0, 2], volume_port, "GET", &format!("/{fid}"), b"");
    assert_eq!(status, 200, "reads stay open: {text}");
    let master_port = master.port;
    for path in [
        "/vol/grow?count=1",
        "/col/delete?collection=c",
        "/vol/vacuum",
        "/submit",
    ] {
        let (status, text) = from([127, 0, 0, 3], master_port, "POST", path, b"x");
        assert_eq!(status, 403, "{path}: {text}");
        assert!(text.contains("127.0.0.3"), "{path}: {text}");
    }
    let (status, text) = from([127, 0, 0, 3], master_port, "GET", "/dir/assign", b"");
    assert_eq!(status, 200, "assignments stay open: {text}");
    let (status, text) = from(
        [127, 0, 0, 1],
        master_port,
        "POST",
        "/vol/grow?count=1",
        b"",
    );
    assert_eq!(status, 200, "{text}");
}

// Proves `kelp benchmark` carries tokens against servers with both keys: its uploads use the
// assign's token, its reads and deletes get theirs from /dir/lookup?fileId=, and no request
// fails.
#[test]
fn the_benchmark_carries_tokens() {
    let cluster = start_cluster(true);
    let master = cluster.master.address.clone();
    let output = std::process::Command::new(support::kelp_bin())
        .args(["benchmark", "--master", &master, "-n", "200", "-c", "4"])
        .args(["--replication", "000", "--delete-percent", "20"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    let failed: Vec<&str> = text
        .lines()
        .filter(|line| line.trim_start().starts_with("Failed requests:"))
        .collect();
    assert_eq!(failed.len(), 2, "a write and a read report: {text}");
    for line in failed {
        assert!(line.trim_end().ends_with(" 0"), "{line}\n{text}");
    }
}
