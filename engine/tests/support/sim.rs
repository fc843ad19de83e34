//! A simulated disk under the engine's storage seam, for crash tests.
//!
//! Every change (write, set_len, fsync, create, rename, remove, directory fsync) is one
//! numbered step. A test arms a fault at step N: `Fail` returns an error from that step and
//! goes on (the disk still works), `Crash` stops the "process" there (that step and every
//! later call fail). `restart` then gives the disk a rebooted machine would see:
//!
//! - `Process` (a killed process): everything written stays (the kernel has it), including
//!   a prefix of a write the crash interrupted.
//! - `PowerLoss`: what was fsynced stays; of each file's changes since its last fsync, a
//!   random subset survives in order, a surviving write possibly torn at any byte; of the
//!   directory changes since the last directory fsync, a random subset survives, in order
//!   (stricter than a journalling file system, which keeps a prefix: the engine must not
//!   rely on the order of directory changes, only on directory fsyncs).

use kelp_engine::volume::{OpenMode, Storage, StorageFile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashModel {
    Process,
    PowerLoss,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The step returns this error kind and has no effect; later steps work.
    Fail(io::ErrorKind),
    /// The process dies at the step (a write may land partly).
    Crash,
}

#[derive(Clone, Debug)]
enum FileChange {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Debug)]
enum NameChange {
    Link(PathBuf, usize),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    /// What reads see (the page cache).
    data: Vec<u8>,
    /// What survives a power loss for sure.
    durable: Vec<u8>,
    /// Changes since the last fsync, in order.
    pending: Vec<FileChange>,
}

#[derive(Debug)]
struct State {
    names: BTreeMap<PathBuf, usize>,
    durable_names: BTreeMap<PathBuf, usize>,
    pending_names: Vec<NameChange>,
    inodes: Vec<Inode>,
    steps: u64,
    fault: Option<(u64, Fault)>,
    crashed: bool,
    free_bytes: u64,
    rng: StdRng,
}

/// The simulated disk (one directory's worth of files; clones share it).
#[derive(Clone, Debug)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

/// An open file of a `SimStorage`.
#[derive(Debug)]
pub struct SimFile {
    storage: SimStorage,
    inode: usize,
    writable: bool,
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the process is gone")
}

fn apply_name(names: &mut BTreeMap<PathBuf, usize>, change: &NameChange) {
    match change {
        NameChange::Link(path, inode) => {
            names.insert(path.clone(), *inode);
        }
        NameChange::Unlink(path) => {
            names.remove(path);
        }
        NameChange::Rename(from, to) => {
            // Under power loss the link that made `from` may be among the changes lost.
            if let Some(inode) = names.remove(from) {
                names.insert(to.clone(), inode);
            }
        }
    }
}

fn apply_change(data: &mut Vec<u8>, change: &FileChange) {
    match change {
        FileChange::Write { offset, bytes } => {
            let end = *offset as usize + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*offset as usize..end].copy_from_slice(bytes);
        }
        FileChange::SetLen(len) => data.resize(*len as usize, 0),
    }
}

impl State {
    /// Counts a step; `Ok(true)` when the process dies at it.
    fn step(&mut self) -> io::Result<bool> {
        if self.crashed {
            return Err(crashed());
        }
        self.steps += 1;
        match self.fault {
            Some((at, Fault::Fail(kind))) if at == self.steps => Err(io::Error::new(
                kind,
                format!("simulated failure at step {at}"),
            )),
            Some((at, Fault::Crash)) if at == self.steps => {
                self.crashed = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn change_file(&mut self, inode: usize, change: FileChange) {
        let node = &mut self.inodes[inode];
        apply_change(&mut node.data, &change);
        node.pending.push(change);
    }

    fn change_name(&mut self, change: NameChange) {
        apply_name(&mut self.names, &change);
        self.pending_names.push(change);
    }

    fn new_inode(&mut self, path: &Path) -> usize {
        self.inodes.push(Inode::default());
        let inode = self.inodes.len() - 1;
        self.change_name(NameChange::Link(path.to_path_buf(), inode));
        inode
    }
}

impl SimStorage {
    pub fn new(seed: u64) -> SimStorage {
        SimStorage {
            state: Arc::new(Mutex::new(State {
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                pending_names: Vec::new(),
                inodes: Vec::new(),
                steps: 0,
                fault: None,
                crashed: false,
                free_bytes: 1 << 40,
                rng: StdRng::seed_from_u64(seed),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("no test panics while holding the disk")
    }

    /// Steps counted so far.
    pub fn steps(&self) -> u64 {
        self.lock().steps
    }

    /// Arms `fault` at step `at` (counted from the start).
    pub fn arm(&self, at: u64, fault: Fault) {
        self.lock().fault = Some((at, fault));
    }

    pub fn disarm(&self) {
        self.lock().fault = None;
    }

    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Kills the process now (as if at the next step).
    pub fn crash(&self) {
        self.lock().crashed = true;
    }

    pub fn set_free_bytes(&self, bytes: u64) {
        self.lock().free_bytes = bytes;
    }

    /// The names of the files there are now.
    pub fn file_names(&self) -> Vec<String> {
        let state = self.lock();
        let name = |path: &PathBuf| path.file_name().unwrap().to_string_lossy().into_owned();
        state.names.keys().map(name).collect()
    }

    /// The current bytes of a file, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        state
            .names
            .get(path)
            .map(|inode| state.inodes[*inode].data.clone())
    }

    /// The disk after a reboot (see the module docs); faults disarmed, steps from 0. This
    /// disk is left as it is, so each call gives another outcome of the same crash.
    pub fn restart(&self, model: CrashModel) -> SimStorage {
        let mut state = self.lock();
        let seed = state.rng.random();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut names = state.durable_names.clone();
        for change in &state.pending_names {
            if model == CrashModel::Process || rng.random_bool(0.5) {
                apply_name(&mut names, change);
            }
        }
        let inodes = state
            .inodes
            .iter()
            .map(|node| survivor(node, model, &mut rng))
            .collect();
        let after = SimStorage::new(seed);
        {
            let mut fresh = after.lock();
            fresh.durable_names = names.clone();
            fresh.names = names;
            fresh.inodes = inodes;
            fresh.free_bytes = state.free_bytes;
        }
        after
    }
}

/// What a file holds after the reboot, all of it durable from then on.
fn survivor(node: &Inode, model: CrashModel, rng: &mut StdRng) -> Inode {
    let data = match model {
        CrashModel::Process => node.data.clone(),
        CrashModel::PowerLoss => {
            let mut data = node.durable.clone();
            for change in &node.pending {
                if rng.random_bool(0.5) {
                    continue;
                }
                match change {
                    FileChange::Write { offset, bytes } if rng.random_bool(0.25) => {
                        let torn = rng.random_range(0..=bytes.len());
                        let change = FileChange::Write {
                            offset: *offset,
                            bytes: bytes[..torn].to_vec(),
                        };
                        apply_change(&mut data, &change);
                    }
                    change => apply_change(&mut data, change),
                }
            }
            data
        }
    };
    Inode {
        durable: data.clone(),
        data,
        pending: Vec::new(),
    }
}

impl Storage for SimStorage {
    type File = SimFile;

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<SimFile> {
        let mut state = self.lock();
        let existing = state.names.get(path).copied();
        let writable = mode != OpenMode::Read;
        let inode = match (mode, existing) {
            (OpenMode::Read | OpenMode::ReadWrite, Some(inode)) => {
                if state.crashed {
                    return Err(crashed());
                }
                inode
            }
            (OpenMode::Read | OpenMode::ReadWrite, None) => {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
            }
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
            }
            (OpenMode::CreateNew | OpenMode::Truncate, None) => {
                let dies = state.step()?;
                if dies {
                    return Err(crashed());
                }
                state.new_inode(path)
            }
            (OpenMode::Truncate, Some(inode)) => {
                let dies = state.step()?;
                if dies {
                    return Err(crashed());
                }
                state.change_file(inode, FileChange::SetLen(0));
                inode
            }
        };
        Ok(SimFile {
            storage: self.clone(),
            inode,
            writable,
        })
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.lock();
        if state.crashed {
            return Err(crashed());
        }
        Ok(state.names.contains_key(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if !state.names.contains_key(from) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
        }
        let dies = state.step()?;
        if !dies || state.rng.random_bool(0.5) {
            state.change_name(NameChange::Rename(from.to_path_buf(), to.to_path_buf()));
        }
        if dies { Err(crashed()) } else { Ok(()) }
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if !state.names.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
        }
        let dies = state.step()?;
        if !dies || state.rng.random_bool(0.5) {
            state.change_name(NameChange::Unlink(path.to_path_buf()));
        }
        if dies { Err(crashed()) } else { Ok(()) }
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.step()? {
            return Err(crashed());
        }
        state.durable_names = state.names.clone();
        state.pending_names.clear();
        Ok(())
    }

    fn free_bytes(&self, _dir: &Path) -> io::Result<u64> {
        let state = self.lock();
        if state.crashed {
            return Err(crashed());
        }
        Ok(state.free_bytes)
    }
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        let state = self.storage.lock();
        if state.crashed {
            return Err(crashed());
        }
        Ok(state.inodes[self.inode].data.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let state = self.storage.lock();
        if state.crashed {
            return Err(crashed());
        }
        let data = &state.inodes[self.inode].data;
        let end = offset as usize + buf.len();
        if end > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        buf.copy_from_slice(&data[offset as usize..end]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        assert!(self.writable, "write through a read-only handle");
        let mut state = self.storage.lock();
        let dies = state.step()?;
        let len = if dies {
            state.rng.random_range(0..=buf.len())
        } else {
            buf.len()
        };
        let change = FileChange::Write {
            offset,
            bytes: buf[..len].to_vec(),
        };
        state.change_file(self.inode, change);
        if dies { Err(crashed()) } else { Ok(()) }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        assert!(self.writable, "set_len through a read-only handle");
        let mut state = self.storage.lock();
        if state.step()? {
            return Err(crashed());
        }
        state.change_file(self.inode, FileChange::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.storage.lock();
        if state.step()? {
            return Err(crashed());
        }
        let node = &mut state.inodes[self.inode];
        node.durable = node.data.clone();
        node.pending.clear();
        Ok(())
    }
}
