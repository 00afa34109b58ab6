//! Archives: the rows retention removes, zstd-compressed, one file per id range
//! (`logs-FIRST-LAST.cols.zst`, the columnar layout of `archive_cols`) with a manifest
//! beside it (`….manifest.json`: format, time range, id range, rows, SHA-256 of the
//! file). Archives written before that layout (`….jsonl.zst`, the `logq -o json`
//! records one per line) are read as before.
//!
//! Order of writing, so a crash never loses a row: the data file is written under a
//! temporary name and synced, renamed, then the manifest the same way, then the
//! directory is synced; only then are the rows removed from the store. A data file
//! without a manifest is incomplete and ignored (its rows are still in the store); rows
//! both archived and still stored (a crash before the removal) are told apart by id.

use super::{Batch, RecordRef, StoreError};
use super::{archive_cols, record_json};
pub use archive_cols::{Columns, HOST, MSGID, PEER, PROCID, SOURCE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// zstd level, shortest match, window and match tables (BENCHMARKS.md: bytes per
/// message against CPU). Level 3 with matches of at least 6 bytes compresses about four
/// times as fast as level 6 for about 7 % more bytes, which the columnar layout's format
/// 3 wins back (names met for the first time cost no number): the archive thread has to
/// keep up with ingest. Long-distance matching found under 1 % more for a seventh of the
/// time. Level 3's own tables for large inputs (2^17 and 2^16 entries, 768 KiB) miss the
/// CPU's caches at most lookups: tables of 2^15 and 2^14 (192 KiB) took about 40 % less
/// time for the same bytes (0.2 % fewer). Format 5 (messages grouped by source) makes
/// about 5 % fewer bytes, which lets level 1 (ZSTD_fast: one hash table, here of 2^15
/// entries, matches of at least 7 bytes) take level 3's place: still fewer bytes than
/// level 3 on format 4, the compressor alone about a quarter faster (an archived row
/// about 8 % less CPU end to end, near the noise of the machine measured on).
const LEVEL: i32 = 1;
const MIN_MATCH: u32 = 7;
const WINDOW_LOG: u32 = 24;
const HASH_LOG: u32 = 15;
const MANIFEST_SUFFIX: &str = ".manifest.json";
/// Data files: JSON lines (format 1, written before the columnar layout) and columns.
const JSONL_SUFFIX: &str = ".jsonl.zst";
const COLS_SUFFIX: &str = ".cols.zst";
const FORMAT_JSONL: u32 = 1;
/// Columns: names referred to by number (format 2, still read), first uses of a name
/// without one (format 3, still read), texts ended instead of preceded by their lengths
/// (format 4, still read), messages grouped by source (format 5, written now);
/// `archive_cols` tells them apart.
const FORMAT_COLUMNS_2: u32 = 2;
const FORMAT_COLUMNS_3: u32 = 3;
const FORMAT_COLUMNS_4: u32 = 4;
const FORMAT_COLUMNS: u32 = 5;

fn format_jsonl() -> u32 {
    FORMAT_JSONL
}

/// What writing a file needs, kept per thread between files: a new compression
/// context allocates (and faults in) its tables again, and new buffers of a file's size
/// (about 10 MB each) cost page faults again. The relay's archive thread keeps them
/// (about 25 MB in use) for as long as it runs; what it held at its peak is unchanged.
#[derive(Default)]
struct Scratch {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    cols: archive_cols::Columns,
    raw: Vec<u8>,
    compressed: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

impl Scratch {
    /// The layout gathered in `cols`, compressed into `compressed`: one zstd frame,
    /// with its checksum.
    fn compress(&mut self) -> std::io::Result<()> {
        use zstd::stream::raw::CParameter;
        self.raw.clear();
        self.cols.finish(&mut self.raw);
        let c = match &mut self.compressor {
            Some(c) => c,
            None => {
                let mut c = zstd::bulk::Compressor::new(LEVEL)?;
                c.include_checksum(true)?;
                c.window_log(WINDOW_LOG)?;
                c.set_parameter(CParameter::MinMatch(MIN_MATCH))?;
                c.set_parameter(CParameter::HashLog(HASH_LOG))?;
                self.compressor.insert(c)
            }
        };
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(self.raw.len()));
        c.compress_to_buffer(&self.raw, &mut self.compressed)?;
        Ok(())
    }
}

/// Whether the id ranges of `manifests` (in id order, as [`ArchiveDir::manifests`]
/// gives them) together hold every id `first..=last`: blocks archived ahead of their
/// removal, in runs of their own, may be removed in runs cut differently.
pub fn covered(manifests: &[Manifest], first: i64, last: i64) -> bool {
    let mut need = first;
    for m in manifests {
        if m.first_id > need {
            break;
        }
        if m.last_id >= need {
            if m.last_id >= last {
                return true;
            }
            need = m.last_id + 1;
        }
    }
    false
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The data file's name, in the same directory.
    pub file: String,
    /// 1: `logq -o json` records one per line (manifests without the field); 2 to 4:
    /// the columnar layout (`archive_cols`).
    #[serde(default = "format_jsonl")]
    pub format: u32,
    pub first_id: i64,
    pub last_id: i64,
    /// Earliest and latest event time of the rows, µs since the epoch and as text.
    pub min_time_us: i64,
    pub max_time_us: i64,
    pub min_time: String,
    pub max_time: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// An archive directory; it must exist (retention never creates one, so a missing
/// mount is noticed instead of filling the disk below it).
#[derive(Debug, Clone)]
pub struct ArchiveDir {
    path: PathBuf,
}

fn io_at(e: std::io::Error, path: &Path) -> StoreError {
    StoreError::from(e).at(path)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn time_text(us: i64) -> String {
    let mut s = String::new();
    crate::timefmt::write_rfc3339_utc(us, 6, &mut s);
    s
}

/// Writes `bytes` to `path` through a temporary name, synced before and after the rename.
fn write_synced(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| io_at(e, &tmp))?;
    let written = write(&mut f)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_at(e, &tmp))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io_at(e, path)));
    if written.is_err() {
        // A full disk: what was written of the file would only keep the space taken.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// What [`write_data`] wrote: rows, their time range, the file's size and SHA-256.
struct Written {
    rows: u64,
    min_t: i64,
    max_t: i64,
    bytes: u64,
    sha: String,
}

/// Gathers the rows `fill` puts in the columns, then compresses them to `data`, synced.
fn write_data(
    scratch: &mut Scratch,
    data: &Path,
    fill: impl FnOnce(&mut Columns) -> Result<(), StoreError>,
) -> Result<Written, StoreError> {
    scratch.cols.clear();
    fill(&mut scratch.cols)?;
    let (rows, min_t, max_t) = scratch.cols.summary();
    scratch.compress().map_err(|e| io_at(e, data))?;
    let compressed = &scratch.compressed;
    let (bytes, sha) = (compressed.len() as u64, hex(&Sha256::digest(compressed)));
    write_synced(data, |f| f.write_all(compressed))?;
    Ok(Written {
        rows,
        min_t,
        max_t,
        bytes,
        sha,
    })
}

impl ArchiveDir {
    pub fn open(path: &Path) -> Result<ArchiveDir, StoreError> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(ArchiveDir {
                path: path.to_path_buf(),
            }),
            Ok(_) => Err(StoreError::File {
                path: path.to_path_buf(),
                reason: "not a directory".into(),
                hint: Some("retention.archive-dir must name a directory"),
            }),
            Err(e) => Err(StoreError::File {
                path: path.to_path_buf(),
                reason: e.to_string(),
                hint: Some(
                    "create the archive directory (logrelay never creates it, so an unmounted disk is noticed)",
                ),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the rows `fill` streams (ids `first..=last`, in id order) to a new
    /// archive file and its manifest, both synced. The rows are gathered in memory
    /// first (column by column), so the store's read snapshot ends before the slow
    /// part: compressing and syncing.
    pub fn write(
        &self,
        first: i64,
        last: i64,
        fill: impl FnOnce(&mut super::Visit<'_>) -> Result<(), StoreError>,
    ) -> Result<Manifest, StoreError> {
        self.write_columns(first, last, |cols| {
            fill(&mut |id, r: &RecordRef<'_>| {
                cols.push(id, r);
                true
            })
        })
    }

    /// [`write`](Self::write) for a reader that fills the columns itself (the SQLite
    /// store's rows, read without making records of them).
    pub fn write_columns(
        &self,
        first: i64,
        last: i64,
        fill: impl FnOnce(&mut Columns) -> Result<(), StoreError>,
    ) -> Result<Manifest, StoreError> {
        // The directory may have gone (an unmounted disk) since it was opened.
        ArchiveDir::open(&self.path)?;
        let name = format!("logs-{first:015}-{last:015}{COLS_SUFFIX}");
        let data = self.path.join(&name);
        let mut scratch = SCRATCH.with(|s| s.take());
        let written = write_data(&mut scratch, &data, fill);
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
        let Written {
            rows,
            min_t,
            max_t,
            bytes,
            sha,
        } = written?;
        let manifest = Manifest {
            file: name.clone(),
            format: FORMAT_COLUMNS,
            first_id: first,
            last_id: last,
            min_time_us: min_t,
            max_time_us: max_t,
            min_time: time_text(min_t),
            max_time: time_text(max_t),
            rows,
            bytes,
            sha256: sha,
        };
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| StoreError::Server(e.to_string()))?;
        let mpath = self.path.join(format!(
            "{}{MANIFEST_SUFFIX}",
            name.trim_end_matches(COLS_SUFFIX)
        ));
        if let Err(e) = write_synced(&mpath, |f| f.write_all(text.as_bytes())) {
            let _ = std::fs::remove_file(&data);
            return Err(e);
        }
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_at(e, &self.path))?;
        Ok(manifest)
    }

    /// Every manifest, in id order. A manifest that cannot be read is an error: its
    /// rows would otherwise silently vanish from queries.
    pub fn manifests(&self) -> Result<Vec<Manifest>, StoreError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.path).map_err(|e| io_at(e, &self.path))? {
            let entry = entry.map_err(|e| io_at(e, &self.path))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.ends_with(MANIFEST_SUFFIX) {
                continue;
            }
            let path = entry.path();
            let text = std::fs::read_to_string(&path).map_err(|e| io_at(e, &path))?;
            let m: Manifest = serde_json::from_str(&text).map_err(|e| StoreError::File {
                path: path.clone(),
                reason: format!("bad manifest: {e}"),
                hint: None,
            })?;
            out.push(m);
        }
        out.sort_by_key(|m| (m.first_id, m.last_id));
        Ok(out)
    }

    /// Whether the ids `first..=last` are archived already (in one file or several).
    pub fn covers(&self, first: i64, last: i64) -> Result<bool, StoreError> {
        Ok(covered(&self.manifests()?, first, last))
    }

    /// Total bytes of the data files the manifests name.
    pub fn size(&self) -> Result<(u64, u64), StoreError> {
        let ms = self.manifests()?;
        Ok((
            ms.iter().map(|m| m.bytes).sum(),
            ms.iter().map(|m| m.rows).sum(),
        ))
    }

    /// Streams one archive file's records, in id order, into `rows` (id and record).
    pub fn read(
        &self,
        m: &Manifest,
        rows: &mut dyn FnMut(i64, &RecordRef<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let path = self.path.join(&m.file);
        if [
            FORMAT_COLUMNS,
            FORMAT_COLUMNS_4,
            FORMAT_COLUMNS_3,
            FORMAT_COLUMNS_2,
        ]
        .contains(&m.format)
        {
            let bytes = std::fs::read(&path).map_err(|e| io_at(e, &path))?;
            let raw = zstd::decode_all(bytes.as_slice()).map_err(|e| io_at(e, &path))?;
            return archive_cols::read(&raw, rows).map_err(|reason| StoreError::File {
                path: path.clone(),
                reason,
                hint: Some("run logq archive verify"),
            })?;
        }
        if m.format != FORMAT_JSONL {
            return Err(StoreError::File {
                path,
                reason: format!("archive format {} is newer than this logq", m.format),
                hint: Some("read it with a newer logq"),
            });
        }
        let file = File::open(&path).map_err(|e| io_at(e, &path))?;
        let dec = zstd::Decoder::new(file).map_err(|e| io_at(e, &path))?;
        let mut reader = BufReader::with_capacity(1 << 16, dec);
        let mut line = String::new();
        let mut batch = Batch::new();
        let mut n = 0u64;
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(|e| io_at(e, &path))? == 0 {
                break;
            }
            n += 1;
            batch.clear();
            let id = record_json::read(line.trim_end_matches('\n'), &mut batch).map_err(|e| {
                StoreError::File {
                    path: path.clone(),
                    reason: format!("record {n}: {e}"),
                    hint: Some("run logq archive verify"),
                }
            })?;
            if let Some(r) = batch.record_at(0) {
                rows(id, &r)?;
            }
        }
        Ok(())
    }

    /// Checks every file against its manifest: size, SHA-256, and that its records
    /// parse, count as many and lie within its id and time ranges. One line per
    /// problem; data files without a manifest are reported as incomplete.
    pub fn verify(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        let manifests = self.manifests()?;
        for m in &manifests {
            let path = self.path.join(&m.file);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    problems.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            if bytes.len() as u64 != m.bytes {
                problems.push(format!(
                    "{}: {} bytes, the manifest says {}",
                    m.file,
                    bytes.len(),
                    m.bytes
                ));
            }
            if hex(&Sha256::digest(&bytes)) != m.sha256 {
                problems.push(format!("{}: SHA-256 differs from the manifest's", m.file));
                continue;
            }
            let mut n = 0u64;
            let mut outside = 0u64;
            let read = self.read(m, &mut |id, r| {
                n += 1;
                if id < m.first_id
                    || id > m.last_id
                    || r.time_us < m.min_time_us
                    || r.time_us > m.max_time_us
                {
                    outside += 1;
                }
                Ok(())
            });
            if let Err(e) = read {
                problems.push(e.to_string());
            } else if n != m.rows {
                problems.push(format!(
                    "{}: {n} records, the manifest says {}",
                    m.file, m.rows
                ));
            }
            if outside > 0 {
                problems.push(format!(
                    "{}: {outside} records outside the manifest's id or time range",
                    m.file
                ));
            }
        }
        let named: std::collections::HashSet<&str> =
            manifests.iter().map(|m| m.file.as_str()).collect();
        for entry in std::fs::read_dir(&self.path)
            .map_err(|e| io_at(e, &self.path))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().to_string();
            let data = name.ends_with(JSONL_SUFFIX) || name.ends_with(COLS_SUFFIX);
            if data && !named.contains(name.as_str()) {
                problems.push(format!("{name}: no manifest (an archive cut short; its rows were not removed from the store)"));
            }
        }
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(first_id: i64, last_id: i64) -> Manifest {
        Manifest {
            file: format!("logs-{first_id}-{last_id}{COLS_SUFFIX}"),
            format: FORMAT_COLUMNS,
            first_id,
            last_id,
            min_time_us: 0,
            max_time_us: 0,
            min_time: String::new(),
            max_time: String::new(),
            rows: 1,
            bytes: 1,
            sha256: String::new(),
        }
    }

    #[test]
    fn a_range_is_covered_by_one_file_or_by_several_without_a_gap() {
        let ms = [manifest(0, 99), manifest(100, 199), manifest(300, 399)];
        assert!(covered(&ms, 10, 90));
        assert!(covered(&ms, 50, 150), "across two files");
        assert!(covered(&ms, 0, 199));
        assert!(!covered(&ms, 150, 310), "200..=299 is not archived");
        assert!(!covered(&ms, 390, 400));
        assert!(!covered(&[], 0, 0));
    }
}
