//! Spill files: dirty chunks written to disk, LZ4-compressed, and read back.
//!
//! One file per chunk in a temporary directory that is created on the first spill and removed
//! with the manager (on panics too, as the drop runs while unwinding). Each [`SpillFile`] deletes
//! its file when dropped.
//!
//! Format: `OCSPILL1`, the value count (u64 LE), then frames of up to 1 MiB of values, each
//! `stored length | RAW flag` (u32 LE), the CRC32 of the raw bytes (u32 LE) and the stored bytes
//! (LZ4 block, or raw when LZ4 would not shrink them). Frames bound the transient memory of a
//! spill or reload to [`spill_io_scratch`] (under 270 KiB) whatever the chunk size, and the CRC
//! catches torn files.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tempfile::TempDir;

use crate::error::{StorageError, StorageResult};
use crate::leftovers::{SPILL_PREFIX, process_tag, remove_leftovers};
#[cfg(feature = "testing")]
use crate::testing::FaultCounter;

const MAGIC: &[u8; 8] = b"OCSPILL1";

const FRAME_VALUES: usize = 32 * 1024;
const RAW_FLAG: u32 = 1 << 31;
const IO_BUFFER: usize = 8 * 1024;

/// Transient bytes a spill or reload of a block of `bytes` allocates beside the block itself:
/// one compressed frame and the I/O buffer.
pub(crate) fn spill_io_scratch(bytes: u64) -> u64 {
    let frame = bytes.min((FRAME_VALUES * size_of::<f64>()) as u64) as usize;
    (lz4_flex::block::get_maximum_output_size(frame) + IO_BUFFER) as u64
}

/// A chunk on disk. Dropping it deletes the file.
#[derive(Debug)]
pub(crate) struct SpillFile {
    path: PathBuf,
    disk_bytes: u64,
    len: usize,
}

impl SpillFile {
    /// Bytes the file takes on disk.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        // Nothing useful can be done if the file is already gone; the directory is removed
        // with the manager in any case.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The directory spill files live in.
#[derive(Debug)]
pub(crate) struct SpillDir {
    parent: Option<PathBuf>,
    dir: Mutex<Option<TempDir>>,
    next: AtomicU64,
    compress: bool,
    /// Faults injected into spill writes and reloads (testing).
    #[cfg(feature = "testing")]
    faults: FaultCounter,
}

impl SpillDir {
    pub(crate) fn new(parent: Option<PathBuf>, compress: bool) -> Self {
        Self {
            parent,
            dir: Mutex::new(None),
            next: AtomicU64::new(0),
            compress,
            #[cfg(feature = "testing")]
            faults: FaultCounter::default(),
        }
    }

    /// The same directory, failing spill writes and reloads as `faults` says.
    #[cfg(feature = "testing")]
    pub(crate) fn with_faults(self, faults: crate::testing::FaultPlan) -> Self {
        Self { faults: FaultCounter::new(faults), ..self }
    }

    /// The spill directory, if one was created.
    pub(crate) fn path(&self) -> Option<PathBuf> {
        self.dir.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|d| d.path().to_path_buf())
    }

    fn new_file_path(&self) -> StorageResult<PathBuf> {
        let mut dir = self.dir.lock().unwrap_or_else(|p| p.into_inner());
        if dir.is_none() {
            let parent = self.parent.clone().unwrap_or_else(std::env::temp_dir);
            // Named by this process, so a later run can remove it if this one is killed.
            remove_leftovers(&parent, SPILL_PREFIX);
            let created = tempfile::Builder::new()
                .prefix(&format!("{SPILL_PREFIX}{}-", process_tag()))
                .tempdir_in(&parent)
                .map_err(|e| StorageError::io(&parent, e))?;
            *dir = Some(created);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // The directory was created just above if it was missing.
        Ok(dir.as_ref().map(|d| d.path().join(format!("chunk-{n}.lz4"))).unwrap_or_default())
    }

    /// Writes `data` to a new spill file.
    pub(crate) fn write(&self, data: &[f64]) -> StorageResult<SpillFile> {
        let path = self.new_file_path()?;
        #[cfg(feature = "testing")]
        self.faults.on_write(&path.display().to_string())?;
        let file = File::create(&path).map_err(|e| StorageError::io(&path, e))?;
        // From here on the SpillFile owns the path, so a failed write deletes the partial file.
        let mut spill = SpillFile { path, disk_bytes: 0, len: data.len() };
        let io = |e| StorageError::io(&spill.path, e);
        let mut out = BufWriter::with_capacity(IO_BUFFER, file);
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&(data.len() as u64).to_le_bytes()).map_err(io)?;
        let mut written = 16u64;
        let frame_bytes = data.len().min(FRAME_VALUES) * size_of::<f64>();
        let mut buf = vec![0u8; lz4_flex::block::get_maximum_output_size(frame_bytes)];
        for frame in data.chunks(FRAME_VALUES) {
            let raw: &[u8] = bytemuck::cast_slice(frame);
            let compressed = if self.compress {
                lz4_flex::block::compress_into(raw, &mut buf).ok().filter(|&n| n < raw.len())
            } else {
                None
            };
            let (header, stored) = match compressed {
                Some(n) => (n as u32, &buf[..n]),
                None => (raw.len() as u32 | RAW_FLAG, raw),
            };
            out.write_all(&header.to_le_bytes()).map_err(io)?;
            out.write_all(&crc32fast::hash(raw).to_le_bytes()).map_err(io)?;
            out.write_all(stored).map_err(io)?;
            written += 8 + stored.len() as u64;
        }
        out.flush().map_err(io)?;
        spill.disk_bytes = written;
        Ok(spill)
    }

    /// Reads a spill file back.
    pub(crate) fn read(&self, spill: &SpillFile) -> StorageResult<Vec<f64>> {
        let path = &spill.path;
        #[cfg(feature = "testing")]
        self.faults.on_read(&path.display().to_string())?;
        let corrupt = |reason: String| StorageError::SpillCorrupted { path: path.clone(), reason };
        let file = File::open(path).map_err(|e| StorageError::io(path, e))?;
        let mut input = BufReader::with_capacity(IO_BUFFER, file);
        let mut head = [0u8; 16];
        input.read_exact(&mut head).map_err(|e| corrupt(format!("header: {e}")))?;
        if &head[..8] != MAGIC {
            return Err(corrupt("bad magic bytes".into()));
        }
        let len = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default()) as usize;
        if len != spill.len {
            return Err(corrupt(format!("holds {len} values, expected {}", spill.len)));
        }
        let mut data = vec![0.0f64; len];
        let mut buf = Vec::new();
        for (i, frame) in data.chunks_mut(FRAME_VALUES).enumerate() {
            let mut frame_head = [0u8; 8];
            input.read_exact(&mut frame_head).map_err(|e| corrupt(format!("frame {i} header: {e}")))?;
            let header = u32::from_le_bytes(frame_head[..4].try_into().unwrap_or_default());
            let crc = u32::from_le_bytes(frame_head[4..].try_into().unwrap_or_default());
            let stored_len = (header & !RAW_FLAG) as usize;
            let raw: &mut [u8] = bytemuck::cast_slice_mut(frame);
            if header & RAW_FLAG != 0 {
                if stored_len != raw.len() {
                    return Err(corrupt(format!("frame {i} stores {stored_len} raw bytes, expected {}", raw.len())));
                }
                input.read_exact(raw).map_err(|e| corrupt(format!("frame {i}: {e}")))?;
            } else {
                buf.resize(stored_len, 0);
                input.read_exact(&mut buf).map_err(|e| corrupt(format!("frame {i}: {e}")))?;
                let n = lz4_flex::block::decompress_into(&buf, raw).map_err(|e| corrupt(format!("frame {i}: {e}")))?;
                if n != raw.len() {
                    return Err(corrupt(format!("frame {i} decompressed to {n} bytes, expected {}", raw.len())));
                }
            }
            if crc32fast::hash(raw) != crc {
                return Err(corrupt(format!("frame {i} fails its CRC32 check")));
            }
        }
        Ok(data)
    }
}

/// Test helper: the path of a spill file.
#[cfg(test)]
pub(crate) fn path_of(spill: &SpillFile) -> &std::path::Path {
    &spill.path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<f64> {
        (0..n).map(|i| if i % 3 == 0 { 1.5 } else { (i as f64).sin() }).collect()
    }

    #[test]
    fn round_trips_compressed_and_raw() {
        for compress in [true, false] {
            let dir = SpillDir::new(None, compress);
            for n in [0, 1, FRAME_VALUES - 1, FRAME_VALUES, 2 * FRAME_VALUES + 17] {
                let data = sample(n);
                let file = dir.write(&data).unwrap();
                assert_eq!(dir.read(&file).unwrap(), data);
            }
            let constant = vec![2.0; 3 * FRAME_VALUES];
            let file = dir.write(&constant).unwrap();
            if compress {
                assert!(file.disk_bytes() < 100_000, "constant data should compress: {}", file.disk_bytes());
            }
            assert_eq!(dir.read(&file).unwrap(), constant);
        }
    }

    #[test]
    fn dropping_deletes_the_file_and_the_directory() {
        let dir = SpillDir::new(None, true);
        let file = dir.write(&sample(100)).unwrap();
        let path = path_of(&file).to_path_buf();
        let root = dir.path().unwrap();
        assert!(path.exists());
        drop(file);
        assert!(!path.exists());
        drop(dir);
        assert!(!root.exists());
    }

    #[test]
    fn detects_truncation_and_bit_flips() {
        let dir = SpillDir::new(None, false);
        let file = dir.write(&sample(1000)).unwrap();
        let path = path_of(&file).to_path_buf();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert!(dir.read(&file).unwrap_err().to_string().contains("CRC32"));
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(dir.read(&file), Err(StorageError::SpillCorrupted { .. })));
    }

    #[test]
    #[cfg(feature = "testing")]
    fn injected_faults_fail_writes_and_reads() {
        use crate::testing::FaultPlan;
        let plan = FaultPlan { fail_read: Some(1), fail_write: Some(1), ..FaultPlan::default() };
        let dir = SpillDir::new(None, true).with_faults(plan);
        assert!(dir.write(&sample(10)).is_err());
        let file = dir.write(&sample(10)).unwrap();
        assert!(dir.read(&file).is_err());
        assert_eq!(dir.read(&file).unwrap(), sample(10));
    }
}
