//! Volumes: a sans-I/O core (`VolumeCore`) plus a blocking backend (`FileVolume`, on the
//! real disk or on any `storage::Storage`) that recovers by itself when opened, and online
//! compaction in bounded steps (`compact`).
//!
//! A volume is `<collection>_<id>.dat` + `.idx` + `.vif` (`<id>.*` for the default
//! collection). See `engine/FORMAT.md` for the bytes and the crash guarantees.

mod append_clock;
pub mod compact;
mod core;
mod file;
pub mod generate;
pub mod offline;
mod recovery;
pub mod scan;
pub mod storage;

/// The key index (`crate::needle_map`), named in one place.
pub(crate) mod map {
    pub use crate::needle_map::{NeedleMap, NeedleValue};
}

pub use self::core::{
    AppendError, AppendKind, AppendPlan, IdxAppend, ReadError, ReadOnlyReason, ReadPlan,
    VolumeConfig, VolumeCore, VolumeStats,
};
pub use self::file::{
    DeleteError, FileReadError, FileVolume, NeedleBuf, NeedleLocation, OpenError, OpenOptions,
    OpenProblem, VolumeIoError, VolumePaths, WriteError, WriteOutcome, base_name, default_config,
};
pub use self::map::{NeedleMap, NeedleValue};
pub use self::recovery::RecoveryReport;
pub use self::storage::{OpenMode, StdStorage, Storage, StorageFile};
