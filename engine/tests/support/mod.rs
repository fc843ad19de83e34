//! Shared by the crash and compaction tests: the simulated disk and a model of what each key
//! may read as after a crash.
#![allow(dead_code)]

pub mod sim;

use kelp_engine::format::{Needle, ReplicaPlacement, Ttl};
use kelp_engine::volume::{
    DeleteError, FileReadError, FileVolume, OpenOptions, ReadError, RecoveryReport, Storage,
    WriteError, default_config,
};
use std::collections::BTreeMap;
use std::path::Path;

pub const COLLECTION: &str = "c";

/// The seeds a crash campaign runs: `0..default`, or `0..KELP_CRASH_SEEDS` for a longer run
/// by hand (`KELP_CRASH_SEEDS=50 cargo test -p kelp-engine --release --test compaction_crash`).
pub fn campaign_seeds(default: u64) -> std::ops::Range<u64> {
    let seeds = std::env::var("KELP_CRASH_SEEDS").ok().map(|text| {
        text.parse()
            .unwrap_or_else(|_| panic!("KELP_CRASH_SEEDS={text:?} is not a count"))
    });
    0..seeds.unwrap_or(default)
}
pub const VOLUME_ID: u32 = 3;

/// The cookie every needle of `key` has (so overwrites and deletes pass the cookie check).
pub fn cookie(key: u64) -> u32 {
    key as u32 ^ 0x5eed_0000
}

/// Bytes of the `version`th write of `key`: lengths vary so needles straddle pages.
pub fn data_for(key: u64, version: u32) -> Vec<u8> {
    let len = 1 + ((key as usize * 131 + version as usize * 977) % 2_900);
    (0..len)
        .map(|i| (key as usize * 7 + version as usize * 13 + i) as u8)
        .collect()
}

pub fn needle(key: u64, data: &[u8]) -> Needle<'_> {
    Needle {
        key,
        cookie: cookie(key),
        data,
        name: Some(b"n.bin"),
        ..Needle::default()
    }
}

pub fn create<S: Storage>(storage: S, dir: &Path) -> FileVolume<S> {
    let config = default_config(
        VOLUME_ID,
        COLLECTION,
        ReplicaPlacement::default(),
        Ttl::EMPTY,
    );
    FileVolume::create_in(storage, dir, config).expect("create the volume")
}

pub fn reopen<S: Storage>(storage: S, dir: &Path) -> FileVolume<S> {
    reopen_with_report(storage, dir).0
}

pub fn reopen_with_report<S: Storage>(storage: S, dir: &Path) -> (FileVolume<S>, RecoveryReport) {
    let options = OpenOptions::default();
    match FileVolume::open_in(storage, dir, COLLECTION, VOLUME_ID, &options) {
        Ok(opened) => opened,
        Err(error) => panic!("reopen: {error}"),
    }
}

/// What an operation's result means for the model.
pub enum Outcome {
    /// It returned Ok: acknowledged.
    Acked,
    /// The storage failed under it: it may or may not have happened.
    Unacked,
    /// It was refused before anything was written (no such key, a read-only volume).
    Refused,
}

pub fn write_outcome<T>(result: Result<T, WriteError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Acked,
        Err(WriteError::Io(_)) => Outcome::Unacked,
        Err(WriteError::Append(_)) => Outcome::Refused,
        Err(error) => panic!("write failed unexpectedly: {error}"),
    }
}

pub fn delete_outcome<T>(result: Result<T, DeleteError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Acked,
        Err(DeleteError::Io(_)) => Outcome::Unacked,
        Err(DeleteError::Append(_) | DeleteError::Read(ReadError::NotFound { .. })) => {
            Outcome::Refused
        }
        Err(error) => panic!("delete failed unexpectedly: {error}"),
    }
}

/// A key's bytes, or `None` when it is deleted (or was never written).
type Value = Option<Vec<u8>>;

/// Per key: the acknowledged state, and the states of operations issued after it that were
/// not acknowledged (any of them may be what survived).
#[derive(Clone, Debug, Default)]
pub struct Model {
    keys: BTreeMap<u64, (Value, Vec<Value>)>,
}

impl Model {
    /// Records an operation that set `key` to `value` (None: deleted).
    pub fn record(&mut self, key: u64, value: Value, outcome: Outcome) {
        let state = self.keys.entry(key).or_default();
        match outcome {
            Outcome::Acked => *state = (value, Vec::new()),
            Outcome::Unacked => state.1.push(value),
            Outcome::Refused => {}
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.keys().copied()
    }

    /// Reads every key and checks it is one of the states allowed; then takes what was read
    /// as acknowledged (the volume has settled). Err names the first key that is wrong.
    pub fn check_and_settle<S: Storage>(&mut self, volume: &FileVolume<S>) -> Result<(), String> {
        for (key, state) in self.keys.iter_mut() {
            let found = match volume.read(*key, cookie(*key)) {
                Ok(buf) => Some(buf.needle().data.to_vec()),
                Err(FileReadError::Read(ReadError::NotFound { .. })) => None,
                Err(error) => return Err(format!("key {key}: {error}")),
            };
            let allowed = std::iter::once(&state.0).chain(state.1.iter());
            if !allowed.clone().any(|value| *value == found) {
                let lens: Vec<_> = allowed.map(|v| v.as_ref().map(Vec::len)).collect();
                let found_len = found.as_ref().map(Vec::len);
                return Err(format!("key {key}: read {found_len:?}, allowed {lens:?}"));
            }
            *state = (found, Vec::new());
        }
        Ok(())
    }
}
