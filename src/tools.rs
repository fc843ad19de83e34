//! Offline volume tools: `kelp export` (list or tar a volume's live needles, like
//! `weed export`), `kelp fix` (rebuild a volume's `.idx` from its `.dat`, like `weed fix`) and
//! `kelp compact` (give back the space of deleted, overwritten and expired needles, like
//! `weed compact`). Run them on a volume no server has open. Errors name the file and the
//! problem.

use crate::CliResult;
use kelp_engine::format::{FileId, Needle};
use kelp_engine::volume::compact::{CompactReport, Throttle};
use kelp_engine::volume::offline::{self, DatFile};
use kelp_engine::volume::scan::ScanEnd;
use kelp_engine::volume::{FileVolume, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// Which volume a tool works on (both tools take these flags).
#[derive(clap::Args, Debug, Clone)]
pub struct VolumeFiles {
    /// Directory holding the volume's files.
    #[arg(long)]
    pub dir: PathBuf,
    /// The volume id.
    #[arg(long = "volume-id")]
    pub volume_id: u32,
    /// The volume's collection ("" for the default collection).
    #[arg(long, default_value = "")]
    pub collection: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    #[command(flatten)]
    pub volume: VolumeFiles,
    /// Write the live files into this tar file instead of listing them.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct FixArgs {
    #[command(flatten)]
    pub volume: VolumeFiles,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CompactArgs {
    #[command(flatten)]
    pub volume: VolumeFiles,
}

pub fn export(args: ExportArgs) -> CliResult {
    let files = &args.volume;
    let dat = DatFile::open(&files.dir, &files.collection, files.volume_id)?;
    let (last, end) = dat.last_needles()?;
    let is_live = |offset: u64, key: u64| last.get(&key) == Some(&(offset, true));
    let volume_id = files.volume_id;
    let mut failure: Option<Box<dyn std::error::Error + Send + Sync>> = None;
    let mut count = 0usize;
    match &args.out {
        None => {
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            writeln!(out, "key\tsize\tname\tmime\tmodified\tcrc\tgzip\tttl")?;
            dat.scan(|offset, needle| {
                if failure.is_none() && is_live(offset, needle.key) {
                    count += 1;
                    if let Err(e) = writeln!(out, "{}", listing_line(volume_id, needle)) {
                        failure = Some(e.into());
                    }
                }
            })?;
            out.flush()?;
        }
        Some(tar_path) => {
            let file = std::fs::File::create(tar_path)
                .map_err(|e| format!("create {}: {e}", tar_path.display()))?;
            let mut tar = io::BufWriter::new(file);
            dat.scan(|offset, needle| {
                if failure.is_none() && is_live(offset, needle.key) {
                    count += 1;
                    if let Err(e) = write_tar_entry(&mut tar, volume_id, needle) {
                        failure = Some(format!("{}: {e}", tar_path.display()).into());
                    }
                }
            })?;
            tar.write_all(&[0u8; 1024])
                .and_then(|_| tar.flush())
                .and_then(|_| tar.get_ref().sync_all())
                .map_err(|e| format!("write {}: {e}", tar_path.display()))?;
            eprintln!(
                "kelp export: {count} files written to {}",
                tar_path.display()
            );
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    report_torn_end(&dat, &end);
    Ok(())
}

pub fn fix(args: FixArgs) -> CliResult {
    let files = &args.volume;
    let report = offline::fix_index(&files.dir, &files.collection, files.volume_id)?;
    eprintln!(
        "kelp fix: wrote {} ({} entries: {} live, {} deleted keys)",
        report.idx_path.display(),
        report.entries,
        report.live,
        report.deleted
    );
    if let ScanEnd::Torn { offset, error } = &report.end {
        let dat = report.idx_path.with_extension("dat");
        eprintln!(
            "kelp fix: {}: needles after offset {offset} are not indexed: {error} (opening the volume cuts them away)",
            dat.display()
        );
    }
    Ok(())
}

/// Opens the volume (which finishes or undoes an interrupted compaction and recovers a
/// torn end), compacts it, and reports sizes and needle counts.
pub fn compact(args: CompactArgs) -> CliResult {
    let files = &args.volume;
    let options = OpenOptions::default();
    let (mut volume, recovery) =
        FileVolume::open(&files.dir, &files.collection, files.volume_id, &options)?;
    let dat_path = volume.paths().dat.clone();
    if !recovery.is_clean() {
        eprintln!(
            "kelp compact: {}: recovered on open: {recovery:?}",
            dat_path.display()
        );
    }
    let before = volume.stats();
    let report = volume.compact(&mut Throttle::new(0))?;
    for (key, offset) in &report.corrupt {
        eprintln!(
            "kelp compact: {}: needle {key:x} at offset {offset} does not decode: dropped",
            dat_path.display()
        );
    }
    let superseded = before.file_count - before.live_count;
    eprintln!("{}", compact_summary(&dat_path, &report, superseded));
    Ok(())
}

/// The lines `kelp compact` prints: bytes before and after, needles kept and dropped.
fn compact_summary(dat: &std::path::Path, report: &CompactReport, superseded: u64) -> String {
    let reclaimed = report.bytes_reclaimed();
    let percent = if report.dat_bytes_before == 0 {
        0.0
    } else {
        100.0 * reclaimed as f64 / report.dat_bytes_before as f64
    };
    format!(
        "kelp compact: {}: {} -> {} bytes (reclaimed {reclaimed} bytes, {percent:.1} %); \
         .idx {} -> {} bytes; compaction revision {} -> {}\n\
         kelp compact: needles: {} kept; dropped: {superseded} deleted or overwritten, \
         {} expired, {} unreadable",
        dat.display(),
        report.dat_bytes_before,
        report.dat_bytes_after,
        report.idx_bytes_before,
        report.idx_bytes_after,
        report.old_revision,
        report.new_revision,
        report.needles_after,
        report.needles_expired,
        report.needles_corrupt,
    )
}

fn report_torn_end(dat: &DatFile, end: &ScanEnd) {
    if let ScanEnd::Torn { offset, error } = end {
        eprintln!(
            "kelp export: {}: stopped at offset {offset}: {error}",
            dat.paths.dat.display()
        );
    }
}

/// `fid size name mime modified crc gzip ttl`, tab-separated.
fn listing_line(volume_id: u32, needle: &Needle) -> String {
    let fid = FileId {
        volume_id,
        key: needle.key,
        cookie: needle.cookie,
    };
    let text =
        |field: Option<&[u8]>| String::from_utf8_lossy(field.unwrap_or_default()).into_owned();
    let modified = needle.last_modified_s.map(format_utc).unwrap_or_default();
    let ttl = needle.ttl.map(|ttl| ttl.to_string()).unwrap_or_default();
    format!(
        "{fid}\t{}\t{}\t{}\t{modified}\t{:08x}\t{}\t{ttl}",
        needle.data.len(),
        text(needle.name),
        text(needle.mime),
        needle.checksum,
        needle.is_gzipped(),
    )
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC (the form `weed export` prints).
fn format_utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let second_of_day = unix_s % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3_600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// One tar member: `<fid>_<name>` (or `<fid>`), the original bytes (gzip undone), mtime.
/// Names longer than the 100-byte ustar field get a pax `path` record.
fn write_tar_entry(out: &mut impl Write, volume_id: u32, needle: &Needle) -> io::Result<()> {
    let fid = FileId {
        volume_id,
        key: needle.key,
        cookie: needle.cookie,
    };
    let name = match needle.name.filter(|name| !name.is_empty()) {
        Some(name) => format!(
            "{fid}_{}",
            String::from_utf8_lossy(name).replace(['/', '\0'], "_")
        ),
        None => fid.to_string(),
    };
    let data = if needle.is_gzipped() {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(needle.data)
            .read_to_end(&mut plain)
            .map_err(|e| io::Error::new(e.kind(), format!("needle {fid}: gzip data: {e}")))?;
        plain
    } else {
        needle.data.to_vec()
    };
    let mtime = needle.last_modified_s.unwrap_or(0);
    if name.len() > 100 {
        let record = pax_record("path", &name);
        write_tar_member(out, "././@PaxHeader", b'x', record.as_bytes(), mtime)?;
    }
    write_tar_member(out, &name, b'0', &data, mtime)
}

fn pax_record(key: &str, value: &str) -> String {
    // The length prefix counts itself: find the fixed point.
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len != body.len() + len.to_string().len() {
        len = body.len() + len.to_string().len();
    }
    format!("{len}{body}")
}

fn write_tar_member(
    out: &mut impl Write,
    name: &str,
    kind: u8,
    data: &[u8],
    mtime: u64,
) -> io::Result<()> {
    let mut header = [0u8; 512];
    let name_bytes = name.as_bytes();
    let short = &name_bytes[..name_bytes.len().min(100)];
    header[..short.len()].copy_from_slice(short);
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], data.len() as u64);
    octal(&mut header[136..148], mtime);
    header[156] = kind;
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].fill(b' ');
    let checksum: u64 = header.iter().map(|&b| u64::from(b)).sum();
    octal(&mut header[148..155], checksum);
    out.write_all(&header)?;
    out.write_all(data)?;
    let padding = (512 - data.len() % 512) % 512;
    out.write_all(&[0u8; 512][..padding])
}

/// Zero-padded octal filling the field but its last byte (a NUL).
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    assert!(
        text.len() == digits,
        "value {value} does not fit a {digits}-digit tar field"
    );
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves dates print like `weed export` prints them, across leap years.
    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00");
        assert_eq!(format_utc(1_795_316_109), "2026-11-22T02:55:09");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00");
    }

    // Proves the pax length prefix counts its own digits.
    #[test]
    fn pax_length_counts_itself() {
        let record = pax_record("path", &"a".repeat(95));
        assert_eq!(record.len().to_string(), record.split(' ').next().unwrap());
    }
}
