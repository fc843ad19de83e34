//! SeaweedFS's filer HTTP API, case by case, as SeaweedFS 4.48's filer answers it (checked
//! against the real one by tests/filer_peer.rs). Every case works under `base`, so several
//! runs can share one store.

use super::{Answer, http, multipart};

const JSON: (&str, &str) = ("Accept", "application/json");

fn listing(port: u16, target: &str) -> serde_json::Value {
    let answer = http(port, "GET", target, &[JSON], b"");
    assert_eq!(answer.status, 200, "list {target}: {}", answer.text());
    answer.json()
}

fn names(listing: &serde_json::Value) -> Vec<String> {
    listing["Entries"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| {
                    e["FullPath"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every case, against the filer on `port`, under directory `base` (e.g. `/t1`).
pub fn run_all(port: u16, base: &str) {
    uploads_and_reads(port, base);
    ranges_and_conditional_gets(port, base);
    listings(port, base);
    extended_attributes(port, base);
    deletes(port, base);
    renames_and_copies(port, base);
    appends_and_ttl(port, base);
    directories(port, base);
}

fn uploads_and_reads(port: u16, base: &str) {
    let (content_type, body) = multipart("hello.txt", "text/plain", b"hello\n");
    let created = http(
        port,
        "POST",
        &format!("{base}/u/"),
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(
        created.json(),
        serde_json::json!({"name": "hello.txt", "size": 6})
    );
    assert_eq!(
        created.header("content-md5"),
        Some("sZRqySSS0jR8YjW00mERhA==")
    );
    let put = http(port, "PUT", &format!("{base}/u/raw.bin"), &[], b"raw body");
    assert_eq!(put.status, 201);
    assert_eq!(
        put.json(),
        serde_json::json!({"name": "raw.bin", "size": 8})
    );
    let read = http(port, "GET", &format!("{base}/u/hello.txt"), &[], b"");
    assert_eq!(read.status, 200);
    assert_eq!(read.body, b"hello\n");
    assert_eq!(read.header("content-type"), Some("text/plain"));
    assert_eq!(
        read.header("etag"),
        Some("\"b1946ac92492d2347c6235b4d2611184\"")
    );
    assert_eq!(read.header("accept-ranges"), Some("bytes"));
    assert!(read.header("last-modified").is_some());
    let head = http(port, "HEAD", &format!("{base}/u/raw.bin"), &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("8"));
    assert!(head.body.is_empty());
    let missing = http(port, "GET", &format!("{base}/u/none.txt"), &[], b"");
    assert_eq!(missing.status, 404);
    let metadata = http(
        port,
        "GET",
        &format!("{base}/u/hello.txt?metadata=true"),
        &[],
        b"",
    );
    assert_eq!(metadata.status, 200);
    let entry = metadata.json();
    assert_eq!(entry["FullPath"], format!("{base}/u/hello.txt"));
    assert_eq!(entry["FileSize"], 6);
    assert_eq!(entry["Mode"], 432);
    assert_eq!(entry["Mime"], "text/plain");
    assert_eq!(entry["Md5"], "sZRqySSS0jR8YjW00mERhA==");
    assert_eq!(entry["chunks"][0]["size"], 6);
    assert!(
        entry["chunks"][0]["file_id"]
            .as_str()
            .unwrap()
            .contains(',')
    );
    let missing = http(
        port,
        "GET",
        &format!("{base}/u/none?metadata=true"),
        &[],
        b"",
    );
    assert_eq!(missing.status, 404);
}

fn ranges_and_conditional_gets(port: u16, base: &str) {
    let target = format!("{base}/u/hello.txt");
    let part = http(port, "GET", &target, &[("Range", "bytes=1-3")], b"");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"ell");
    assert_eq!(part.header("content-range"), Some("bytes 1-3/6"));
    let suffix = http(port, "GET", &target, &[("Range", "bytes=-2")], b"");
    assert_eq!(
        (suffix.status, suffix.body.as_slice()),
        (206, b"o\n".as_slice())
    );
    let outside = http(port, "GET", &target, &[("Range", "bytes=100-200")], b"");
    assert_eq!(outside.status, 416);
    assert_eq!(outside.header("content-range"), Some("bytes */6"));
    let etag = "\"b1946ac92492d2347c6235b4d2611184\"";
    let cached = http(port, "GET", &target, &[("If-None-Match", etag)], b"");
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
}

fn listings(port: u16, base: &str) {
    let all = listing(port, &format!("{base}/u/"));
    assert_eq!(all["Path"], format!("{base}/u"));
    assert_eq!(names(&all), ["hello.txt", "raw.bin"]);
    assert_eq!(all["ShouldDisplayLoadMore"], false);
    assert_eq!(all["LastFileName"], "raw.bin");
    let first = listing(port, &format!("{base}/u?limit=1"));
    assert_eq!(names(&first), ["hello.txt"]);
    assert_eq!(first["Limit"], 1);
    assert_eq!(first["ShouldDisplayLoadMore"], true);
    let second = listing(port, &format!("{base}/u/?limit=1&lastFileName=hello.txt"));
    assert_eq!(names(&second), ["raw.bin"]);
    assert_eq!(second["ShouldDisplayLoadMore"], false);
    let parent = listing(port, &format!("{base}/"));
    let dir = &parent["Entries"][0];
    assert_eq!(dir["FullPath"], format!("{base}/u"));
    assert_eq!(dir["Mode"], 2_147_484_153u64);
    assert_eq!(dir["Md5"], serde_json::Value::Null);
    let only = listing(port, &format!("{base}/u/?namePattern=*.bin"));
    assert_eq!(names(&only), ["raw.bin"]);
    let without = listing(port, &format!("{base}/u/?namePatternExclude=*.bin"));
    assert_eq!(names(&without), ["hello.txt"]);
    let html = http(port, "GET", &format!("{base}/u/"), &[], b"");
    assert_eq!(html.status, 200);
    assert!(
        html.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text().contains("hello.txt"));
}

fn extended_attributes(port: u16, base: &str) {
    let target = format!("{base}/tag/a.txt");
    let headers = [("Seaweed-Color", "blue"), ("Seaweed-Size-Class", "L")];
    assert_eq!(http(port, "PUT", &target, &headers, b"x").status, 201);
    let head = http(port, "HEAD", &target, &[], b"");
    assert_eq!(head.header("seaweed-color"), Some("blue"));
    assert_eq!(head.header("seaweed-size-class"), Some("L"));
    let entry = http(port, "GET", &format!("{target}?metadata=true"), &[], b"").json();
    assert_eq!(entry["Extended"]["Seaweed-Color"], "Ymx1ZQ==");
    let tagged = http(
        port,
        "PUT",
        &format!("{target}?tagging"),
        &[("Seaweed-Shape", "round")],
        b"",
    );
    assert_eq!(tagged.status, 202);
    let head = http(port, "HEAD", &target, &[], b"");
    assert_eq!(head.header("seaweed-shape"), Some("round"));
    assert_eq!(head.header("seaweed-color"), Some("blue"));
    assert_eq!(
        http(port, "DELETE", &format!("{target}?tagging=Color"), &[], b"").status,
        202
    );
    let head = http(port, "HEAD", &target, &[], b"");
    assert_eq!(head.header("seaweed-color"), None);
    assert_eq!(head.header("seaweed-shape"), Some("round"));
    assert_eq!(
        http(port, "DELETE", &format!("{target}?tagging"), &[], b"").status,
        202
    );
    let head = http(port, "HEAD", &target, &[], b"");
    assert!(head.headers.iter().all(|(n, _)| !n.starts_with("seaweed-")));
    assert_eq!(http(port, "GET", &target, &[], b"").body, b"x");
}

fn deletes(port: u16, base: &str) {
    let dir = format!("{base}/del");
    for name in ["a", "b"] {
        assert_eq!(
            http(port, "PUT", &format!("{dir}/{name}"), &[], b"d").status,
            201
        );
    }
    assert_eq!(
        http(port, "PUT", &format!("{dir}/sub/c"), &[], b"d").status,
        201
    );
    assert_eq!(
        http(port, "DELETE", &format!("{dir}/a"), &[], b"").status,
        204
    );
    assert_eq!(http(port, "GET", &format!("{dir}/a"), &[], b"").status, 404);
    assert_eq!(
        http(port, "DELETE", &format!("{dir}/a"), &[], b"").status,
        204
    );
    let refused = http(port, "DELETE", &dir, &[], b"");
    assert_eq!(refused.status, 500);
    assert_eq!(
        refused.json()["error"],
        format!("fail to delete non-empty folder: {dir}")
    );
    assert_eq!(http(port, "GET", &format!("{dir}/b"), &[], b"").body, b"d");
    assert_eq!(
        http(port, "DELETE", &format!("{dir}?recursive=true"), &[], b"").status,
        204
    );
    assert_eq!(
        http(port, "GET", &format!("{dir}/"), &[JSON], b"").status,
        404
    );
    assert_eq!(
        http(port, "GET", &format!("{dir}/sub/c"), &[], b"").status,
        404
    );
}

fn renames_and_copies(port: u16, base: &str) {
    let dir = format!("{base}/mv");
    assert_eq!(
        http(port, "PUT", &format!("{dir}/one.txt"), &[], b"moving").status,
        201
    );
    let moved = http(
        port,
        "POST",
        &format!("{dir}/two.txt?mv.from={dir}/one.txt"),
        &[],
        b"",
    );
    assert_eq!(moved.status, 204);
    assert_eq!(
        http(port, "GET", &format!("{dir}/one.txt"), &[], b"").status,
        404
    );
    assert_eq!(
        http(port, "GET", &format!("{dir}/two.txt"), &[], b"").body,
        b"moving"
    );
    let missing = http(
        port,
        "POST",
        &format!("{dir}/x?mv.from={dir}/nothere"),
        &[],
        b"",
    );
    assert_eq!(missing.status, 400);
    assert!(
        missing.json()["error"]
            .as_str()
            .unwrap()
            .contains("failed to get src entry")
    );
    let into = http(
        port,
        "POST",
        &format!("{dir}/into/?mv.from={dir}/two.txt"),
        &[],
        b"",
    );
    assert_eq!(into.status, 204);
    assert_eq!(
        http(port, "GET", &format!("{dir}/into/two.txt"), &[], b"").body,
        b"moving"
    );
    let copied = http(
        port,
        "POST",
        &format!("{dir}/copy.txt?cp.from={dir}/into/two.txt"),
        &[],
        b"",
    );
    assert_eq!(copied.status, 204);
    assert_eq!(copied.header("x-seaweedfs-copy-committed"), Some("true"));
    assert_eq!(
        http(port, "GET", &format!("{dir}/copy.txt"), &[], b"").body,
        b"moving"
    );
    assert_eq!(
        http(port, "DELETE", &format!("{dir}/into/two.txt"), &[], b"").status,
        204
    );
    assert_eq!(
        http(port, "GET", &format!("{dir}/copy.txt"), &[], b"").body,
        b"moving"
    );
    let missing = http(
        port,
        "POST",
        &format!("{dir}/c2?cp.from={dir}/nothere"),
        &[],
        b"",
    );
    assert_eq!(missing.status, 400);
    let moved_dir = http(port, "POST", &format!("{base}/mv2?mv.from={dir}"), &[], b"");
    assert_eq!(moved_dir.status, 204);
    assert_eq!(
        http(port, "GET", &format!("{base}/mv2/copy.txt"), &[], b"").body,
        b"moving"
    );
    assert_eq!(
        http(port, "GET", &format!("{dir}/copy.txt"), &[], b"").status,
        404
    );
}

fn appends_and_ttl(port: u16, base: &str) {
    let target = format!("{base}/ap/log.txt");
    let first = http(port, "PUT", &format!("{target}?op=append"), &[], b"abc");
    assert_eq!(first.status, 201);
    assert_eq!(first.json()["size"], 3);
    let second = http(port, "PUT", &format!("{target}?op=append"), &[], b"def");
    assert_eq!(second.json()["size"], 6);
    assert_eq!(http(port, "GET", &target, &[], b"").body, b"abcdef");
    let ranged = http(port, "GET", &target, &[("Range", "bytes=2-4")], b"");
    assert_eq!(ranged.body, b"cde");
    let ttl = format!("{base}/ttl/a.txt");
    assert_eq!(
        http(port, "PUT", &format!("{ttl}?ttl=1m"), &[], b"t").status,
        201
    );
    let entry = http(port, "GET", &format!("{ttl}?metadata=true"), &[], b"").json();
    assert_eq!(entry["TtlSec"], 60);
}

fn directories(port: u16, base: &str) {
    let made = http(port, "POST", &format!("{base}/emptydir/"), &[], b"");
    assert_eq!(made.status, 201);
    assert_eq!(made.json(), serde_json::json!({"name": "emptydir"}));
    let empty = listing(port, &format!("{base}/emptydir/"));
    assert_eq!(empty["Entries"], serde_json::Value::Null);
    assert_eq!(empty["EmptyFolder"], true);
    let meta = http(
        port,
        "GET",
        &format!("{base}/emptydir?metadata=true"),
        &[],
        b"",
    )
    .json();
    // os.ModeDir | 0660 for a directory a request made (0771 for an implicit one).
    assert_eq!(meta["Mode"], 2_147_484_080u64);
    assert_eq!(
        http(port, "DELETE", &format!("{base}/emptydir"), &[], b"").status,
        204
    );
    assert_eq!(
        http(port, "GET", &format!("{base}/emptydir/"), &[JSON], b"").status,
        404
    );
    let nested = http(port, "PUT", &format!("{base}/deep/er/est/f"), &[], b"n");
    assert_eq!(nested.status, 201);
    let parent = listing(port, &format!("{base}/deep/er/"));
    assert_eq!(names(&parent), ["est"]);
}

/// A check that an answer is an error in JSON with a message.
pub fn assert_json_error(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert!(
        answer.json()["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
}
