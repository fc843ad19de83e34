//! End-to-end tests of `kelp volume` against hostile or unlucky clients: admin calls from
//! strangers, silent connections, taken ports, corrupt gzip uploads, unsatisfiable ranges.

mod support;
mod volume_support;

use std::io::Write as _;
use volume_support::{VolumeServer, request};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

// Proves a range past the end is answered 416 with `Content-Range: bytes */LEN` and a JSON
// error body, like every other error.
#[test]
fn unsatisfiable_range_is_a_json_error() {
    let server = VolumeServer::start(1, "", &[]);
    server.create_volume(1, "");
    let gz = [("Content-Encoding", "gzip")];
    let zipped = gzip(b"0123456789");
    assert_eq!(
        request(server.port, "POST", "/1,01000000aa", &[], b"0123456789").status,
        201
    );
    assert_eq!(
        request(server.port, "POST", "/1,02000000aa", &gz, &zipped).status,
        201
    );
    for (fid, length) in [("/1,01000000aa", 10), ("/1,02000000aa", 10)] {
        let past = request(server.port, "GET", fid, &[("Range", "bytes=10-")], b"");
        assert_eq!(past.status, 416, "{fid}");
        assert_eq!(
            past.header("content-range"),
            Some(format!("bytes */{length}").as_str())
        );
        assert_eq!(past.header("content-type"), Some("application/json"));
        assert_eq!(past.header("content-encoding"), None, "{fid}");
        let message = past.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains("range"), "{message}");
    }
}
