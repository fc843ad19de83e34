//! Helpers of the vacuum and TTL tests: `kelp volume` processes with their own flags, files
//! written through the master and checked back, a reader and a writer that run while a
//! vacuum does, and a tmpfs to fill. Include with `mod vacuum_support;` beside
//! `mod master_common;` and `mod support;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::master_common::{Answer, get, http, multipart_file};
use crate::support::{ChildGuard, free_port_run, wait_until};

/// Longest a reader or writer thread runs, whatever its stop flag says.
const LOAD_SECONDS_MAX: u64 = 120;
/// A writer thread's pause between two files (about 50 writes/s): enough to land during a
/// compaction, not so many that the new files outweigh the garbage before it is checked.
const WRITER_PAUSE_MS: u64 = 20;
/// Most files one writer thread writes.
const WRITER_FILES_MAX: usize = 2_000;

/// Deterministic bytes: `len` of them from `seed`.
pub fn data_for(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Uploads `data` as `fid` to the volume server at `url` (multipart, as `curl -F`).
pub fn upload(url: &str, fid: &str, data: &[u8]) -> Answer {
    let (content_type, body) = multipart_file("f.bin", data);
    let headers = [("Content-Type", content_type.as_str())];
    http("POST", url, &format!("/{fid}"), &headers, &body).expect("upload")
}

/// Deletes `fid` on `url`; its status.
pub fn delete(url: &str, fid: &str) -> u16 {
    http("DELETE", url, &format!("/{fid}"), &[], b"")
        .expect("delete")
        .status
}

/// Bytes of the `.dat` files of `collection` in `dir`.
pub fn dat_bytes(dir: &Path, collection: &str) -> u64 {
    let prefix = format!("{collection}_");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with(&prefix) && name.ends_with(".dat")
        })
        .map(|entry| entry.metadata().unwrap().len())
        .sum()
}

/// The value of metric `name` (no labels) on the server at `address`.
pub fn metric(address: &str, name: &str) -> f64 {
    let text = get(address, "/metrics").expect("metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
        .parse()
        .unwrap()
}

/// Files by fid: (volume server url, bytes).
pub type Written = BTreeMap<String, (String, Vec<u8>)>;

/// Every file of `live` reads back byte-identical from its server; every one of `deleted`
/// (fid, url) is 404.
pub fn read_all(live: &Written, deleted: &[(String, String)]) {
    for (fid, (url, data)) in live {
        let answer = get(url, &format!("/{fid}")).expect("read");
        assert_eq!(answer.status, 200, "{fid}: {}", answer.text());
        assert!(
            answer.body == *data,
            "{fid}: other bytes ({} read)",
            answer.body.len()
        );
    }
    for (fid, url) in deleted {
        let answer = get(url, &format!("/{fid}")).expect("read");
        assert_eq!(answer.status, 404, "deleted {fid}: {}", answer.text());
    }
}

/// What a reader thread did.
pub struct Reads {
    pub count: u64,
    pub errors: Vec<String>,
}

/// Files written through the master.
pub struct Files {
    pub master: String,
    pub live: Written,
}

impl Files {
    /// `count` files of `size` bytes in `collection`, assigned by the master.
    pub fn write(master: &str, collection: &str, count: u64, size: usize) -> Files {
        let mut live = Written::new();
        for index in 0..count {
            let (fid, url) = assign(master, collection);
            let data = data_for(index + 1, size);
            let answer = upload(&url, &fid, &data);
            assert_eq!(answer.status, 201, "{fid}: {}", answer.text());
            live.insert(fid, (url, data));
        }
        Files {
            master: master.to_string(),
            live,
        }
    }

    /// Deletes `percent` % of the files (every file whose position modulo 10 is below
    /// percent / 10); returns them as (fid, url).
    pub fn delete_share(&mut self, percent: usize) -> Vec<(String, String)> {
        let chosen: Vec<String> = self
            .live
            .keys()
            .enumerate()
            .filter(|(index, _)| index % 10 < percent / 10)
            .map(|(_, fid)| fid.clone())
            .collect();
        chosen
            .into_iter()
            .map(|fid| {
                let (url, _) = self.live.remove(&fid).unwrap();
                assert_eq!(delete(&url, &fid), 202, "delete {fid}");
                (fid, url)
            })
            .collect()
    }

    /// A thread that reads the live files over and over until `stop`, checking each.
    pub fn spawn_reader(&self, stop: Arc<AtomicBool>) -> JoinHandle<Reads> {
        let live = self.live.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut reads = Reads {
                count: 0,
                errors: Vec::new(),
            };
            while !stop.load(Ordering::Relaxed) && started.elapsed().as_secs() < LOAD_SECONDS_MAX {
                for (fid, (url, data)) in &live {
                    reads.count += 1;
                    match get(url, &format!("/{fid}")) {
                        Ok(a) if a.status == 200 && a.body == *data => {}
                        Ok(a) => reads
                            .errors
                            .push(format!("{fid}: {} {}", a.status, a.text())),
                        Err(error) => reads.errors.push(format!("{fid}: {error}")),
                    }
                }
            }
            reads
        })
    }

    /// A thread that writes 4 KiB files into `collection` (about 50 a second) until `stop`;
    /// returns those acknowledged (an upload cut off by a crash is not).
    pub fn spawn_writer(
        master: &str,
        collection: &str,
        stop: Arc<AtomicBool>,
    ) -> JoinHandle<Written> {
        let (master, collection) = (master.to_string(), collection.to_string());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut written = Written::new();
            let mut seed = 1_000_000;
            while !stop.load(Ordering::Relaxed)
                && started.elapsed().as_secs() < LOAD_SECONDS_MAX
                && written.len() < WRITER_FILES_MAX
            {
                seed += 1;
                let Ok(assigned) = get(&master, &format!("/dir/assign?collection={collection}"))
                else {
                    continue;
                };
                if assigned.status != 200 {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let assigned = assigned.json();
                let fid = assigned["fid"].as_str().unwrap().to_string();
                let url = assigned["url"].as_str().unwrap().to_string();
                let data = data_for(seed, 4096);
                let (content_type, body) = multipart_file("w.bin", &data);
                let headers = [("Content-Type", content_type.as_str())];
                let answer = http("POST", &url, &format!("/{fid}"), &headers, &body);
                if answer.is_ok_and(|a| a.status == 201) {
                    written.insert(fid, (url, data));
                }
                std::thread::sleep(Duration::from_millis(WRITER_PAUSE_MS));
            }
            written
        })
    }

    /// Every live file reads back byte-identical from each of `volumes` (all replicas).
    pub fn read_each_replica(&self, volumes: &[&Volume]) {
        for (fid, (_, data)) in &self.live {
            for volume in volumes {
                let answer = get(&volume.address(), &format!("/{fid}")).expect("read");
                assert_eq!(answer.status, 200, "{fid} on {}", volume.address());
                assert!(answer.body == *data, "{fid} on {}", volume.address());
            }
        }
    }
}

/// `/dir/assign?collection=C` on `master`: (fid, url), retried while the master warms up.
pub fn assign(master: &str, collection: &str) -> (String, String) {
    let mut assigned = None;
    wait_until("an assignment", Duration::from_secs(20), || {
        match get(master, &format!("/dir/assign?collection={collection}")) {
            Ok(answer) if answer.status == 200 => {
                assigned = Some(answer.json());
                true
            }
            _ => false,
        }
    });
    let assigned = assigned.unwrap();
    let fid = assigned["fid"].as_str().unwrap().to_string();
    (fid, assigned["url"].as_str().unwrap().to_string())
}

/// A `kelp volume` process on 2 cores (ports `port..=port+2`) with extra flags.
pub struct Volume {
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    guard: Option<ChildGuard>,
}

impl Volume {
    pub fn start(dir: &Path, master: &str, extra: &[&str]) -> Volume {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port_run(3);
        let mut args: Vec<String> = [
            "volume",
            "--dir",
            &dir.display().to_string(),
            "--port",
            &port.to_string(),
            "--cores",
            "2",
            "--master",
            master,
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut volume = Volume {
            port,
            dir: dir.to_path_buf(),
            log: dir.with_extension("log"),
            args,
            guard: None,
        };
        volume.spawn();
        volume
    }

    /// Starts the process (again) and waits until every port answers.
    pub fn spawn(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let name = format!("volume {}", self.address());
        self.guard = Some(ChildGuard::spawn_kelp(&name, &args, &self.log));
        let ports: Vec<u16> = (self.port..self.port + 3).collect();
        wait_until("kelp volume to answer", Duration::from_secs(20), || {
            ports
                .iter()
                .all(|p| get(&format!("127.0.0.1:{p}"), "/healthz").is_ok_and(|a| a.status == 200))
        });
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// SIGTERM, and wait for the clean exit (the volumes synced).
    pub fn terminate(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.terminate(Duration::from_secs(10));
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn status(&self) -> serde_json::Value {
        get(&self.address(), "/status").expect("status").json()
    }

    /// Compaction revision by volume id, for the volumes of `collection`.
    pub fn revisions(&self, collection: &str) -> BTreeMap<u64, u64> {
        let status = self.status();
        status["Volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["Collection"] == collection)
            .map(|v| {
                (
                    v["Id"].as_u64().unwrap(),
                    v["CompactRevision"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Is a compaction of a volume of `collection` in `phase` (its admin status)?
    pub fn any_phase(&self, collection: &str, phase: &str) -> bool {
        self.revisions(collection).keys().any(|id| {
            let path = format!("/admin/vacuum/status?volume={id}");
            http("POST", &self.address(), &path, &[], b"")
                .is_ok_and(|a| a.status == 200 && a.json()["phase"] == phase)
        })
    }

    /// Waits until the master knows every volume of `collection` this server has.
    pub fn wait_reported(&self, master: &str, collection: &str) {
        let ids: Vec<u64> = self.revisions(collection).keys().copied().collect();
        wait_until(
            "the master to know the volumes",
            Duration::from_secs(20),
            || {
                ids.iter().all(|id| {
                    get(master, &format!("/dir/lookup?volumeId={id}"))
                        .is_ok_and(|a| a.status == 200)
                })
            },
        );
    }
}

/// A tmpfs of `mb` MiB mounted at a directory, unmounted when dropped.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, mb: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount a tmpfs at {} (needs root)",
            dir.display()
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}
