//! A state as bytes and on disk: a versioned header, the means and the factor, and a checksum
//! of it all.
//!
//! ```text
//!  "OCSTATE\0"  version u32  cols u64  rows u64  k u64     little-endian, 36 bytes
//!  mean         cols f64
//!  factor       k x cols f64, row by row
//!  crc32        u32 of every byte before it
//! ```

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use faer::Mat;
use outcore_storage::StorageError;

use super::FactorState;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"OCSTATE\0";
const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 3 * 8;

impl FactorState {
    /// The state as bytes (what [`save`](Self::save) writes): to send it between processes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (k, n) = self.factor.shape();
        let mut bytes = Vec::with_capacity(HEADER + 8 * (n + k * n) + 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        for x in [n as u64, self.rows, k as u64] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        self.mean.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
        for i in 0..k {
            (0..n).for_each(|j| bytes.extend_from_slice(&self.factor[(i, j)].to_le_bytes()));
        }
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
        bytes
    }

    /// A state from [`to_bytes`](Self::to_bytes); bytes of another kind or version, cut short,
    /// or whose checksum fails are refused with [`Error::StateFile`] saying which.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        decode(bytes).map_err(|reason| Error::StateFile { what: "the bytes given".into(), reason })
    }

    /// Writes the state to `path`, replacing it whole or not at all (a new file renamed over
    /// it), so a state saved after each update is never left half-written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes();
        let partial = partial_path(path);
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&partial)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&partial, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&partial);
            Error::from(StorageError::io(path, e))
        })
    }

    /// Reads a state [`save`](Self::save) wrote, refused as [`from_bytes`](Self::from_bytes)
    /// refuses; the header is checked against the file's size before the rest is read.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |reason: String| Error::StateFile { what: path.display().to_string(), reason };
        let io = |e| Error::from(StorageError::io(path, e));
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut bytes = vec![0u8; HEADER.min(usize::try_from(len).unwrap_or(HEADER))];
        file.read_exact(&mut bytes).map_err(io)?;
        header(&bytes, len).map_err(bad)?;
        file.read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 != len {
            return Err(bad(format!(
                "it changed while read ({len} bytes, then {}): read it once its writer is done",
                bytes.len()
            )));
        }
        decode(&bytes).map_err(bad)
    }
}

/// The columns, rows and factor rows a header of a state of `len` bytes gives, or why it is
/// no state's.
fn header(bytes: &[u8], len: u64) -> std::result::Result<(usize, u64, usize), String> {
    if len < (HEADER + 4) as u64 || bytes.len() < HEADER {
        return Err(format!("{len} bytes, fewer than a state's header and checksum: not a state, or cut short"));
    }
    if &bytes[..8] != MAGIC {
        return Err("it does not start as a state does (saved by FactorState::save or to_bytes)".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(format!(
            "version {version}; this outcore reads version {VERSION}: read it with the outcore that wrote it, or refit"
        ));
    }
    let field = |i: usize| u64::from_le_bytes(bytes[12 + 8 * i..20 + 8 * i].try_into().unwrap_or_default());
    let (cols, rows, k) = (field(0), field(1), field(2));
    let expected = k
        .checked_mul(cols)
        .and_then(|kn| kn.checked_add(cols))
        .and_then(|values| values.checked_mul(8))
        .and_then(|body| body.checked_add((HEADER + 4) as u64));
    if k > cols || expected != Some(len) {
        return Err(format!(
            "its header describes a {k} x {cols} factor that does not match its {len} bytes: cut short or damaged"
        ));
    }
    Ok((cols as usize, rows, k as usize))
}

/// The state in `bytes`, or why they hold none.
fn decode(bytes: &[u8]) -> std::result::Result<FactorState, String> {
    let (cols, rows, k) = header(bytes, bytes.len() as u64)?;
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("its checksum does not match its contents: it is damaged".into());
    }
    let values: Vec<f64> =
        body[HEADER..].chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default())).collect();
    let (mean, factor) = values.split_at(cols);
    Ok(FactorState { rows, mean: mean.to_vec(), factor: Mat::from_fn(k, cols, |i, j| factor[i * cols + j]) })
}

/// Where a state is written before it is renamed over `path`.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".partial-{}", std::process::id()));
    path.with_file_name(name)
}
