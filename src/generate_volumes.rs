//! `kelp generate-volumes`: writes synthetic volumes (see
//! `kelp_engine::volume::generate`) for scale benchmarks, several volumes at a time.

use crate::CliResult;
use kelp_engine::format::FileId;
use kelp_engine::volume::generate::{
    GenerateSpec, GeneratedNeedle, GeneratedVolume, check_files_free, generate_volume,
};
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Directory to write the volumes into (created if missing; existing volumes with the
    /// same ids are an error, never overwritten).
    #[arg(long)]
    pub dir: PathBuf,
    /// How many volumes.
    #[arg(long)]
    pub volumes: u32,
    /// Needles in each volume; keys are dealt round-robin over the volumes from 1.
    #[arg(long)]
    pub needles_per_volume: u64,
    /// Id of the first volume; the others follow.
    #[arg(long, default_value_t = 1)]
    pub first_volume_id: u32,
    /// Collection of the volumes ("" for the default collection).
    #[arg(long, default_value = "")]
    pub collection: String,
    /// Smallest needle data, bytes (each needle's size follows from its key).
    #[arg(long, default_value_t = 8)]
    pub data_bytes_min: usize,
    /// Largest needle data, bytes.
    #[arg(long, default_value_t = 40)]
    pub data_bytes_max: usize,
    /// Volumes written at once; default: every CPU this process may use.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write, for the last needle of every volume, a line `fid<TAB>data in hex` to
    /// this file: what a reader should be served.
    #[arg(long)]
    pub sample_fids: Option<PathBuf>,
}

pub fn run(args: Args) -> CliResult {
    let spec = GenerateSpec {
        collection: args.collection.clone(),
        first_volume_id: args.first_volume_id,
        volumes: args.volumes,
        needles_per_volume: args.needles_per_volume,
        data_bytes_min: args.data_bytes_min,
        data_bytes_max: args.data_bytes_max,
    };
    spec.check()?;
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| format!("create directory {}: {e}", args.dir.display()))?;
    check_files_free(&args.dir, &spec)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, args.volumes as usize);
    let started = Instant::now();
    let next = AtomicU32::new(0);
    let total = Mutex::new(GeneratedVolume::default());
    let failure = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let volume_index = next.fetch_add(1, Ordering::Relaxed);
                    if volume_index >= spec.volumes || failure.lock().expect("failure").is_some() {
                        return;
                    }
                    match generate_volume(&args.dir, &spec, volume_index) {
                        Ok(written) => {
                            let mut total = total.lock().expect("total");
                            total.needles += written.needles;
                            total.dat_bytes += written.dat_bytes;
                            total.idx_bytes += written.idx_bytes;
                        }
                        Err(error) => {
                            *failure.lock().expect("failure") = Some(error);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(error) = failure.into_inner().expect("failure") {
        return Err(error.into());
    }
    if let Some(path) = &args.sample_fids {
        write_sample_fids(path, &spec)?;
    }
    let total = total.into_inner().expect("total");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "kelp generate-volumes: {} volumes ({}..={}), {} needles, .dat {} bytes, .idx {} bytes, in {seconds:.1} s ({:.1} M needles/s)",
        spec.volumes,
        spec.volume_id(0),
        spec.volume_id(spec.volumes - 1),
        total.needles,
        total.dat_bytes,
        total.idx_bytes,
        total.needles as f64 / seconds / 1e6
    );
    Ok(())
}

/// One line per volume: the fid of its last needle and the data it holds, in hex.
fn write_sample_fids(path: &Path, spec: &GenerateSpec) -> CliResult {
    let context = |e: std::io::Error| format!("write {}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(context)?;
    let mut out = std::io::BufWriter::new(file);
    for volume_index in 0..spec.volumes {
        let Some(last) = spec.needles_per_volume.checked_sub(1) else {
            break;
        };
        let key = spec.key(volume_index, last);
        let needle = GeneratedNeedle::for_key(key, spec.data_bytes_min, spec.data_bytes_max);
        let fid = FileId {
            volume_id: spec.volume_id(volume_index),
            key,
            cookie: needle.cookie,
        };
        let hex: String = needle.data.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(out, "{fid}\t{hex}").map_err(context)?;
    }
    out.flush().map_err(context)?;
    Ok(())
}
