//! Raw chunks: little-endian float64 values, optionally followed by their crc32c (what outcore
//! creates by default). Read into and written from the caller's buffer with one system call,
//! the checksum checked or computed as the bytes pass; streamed in row blocks when a reader
//! wants less than a chunk at a time.

use std::io::{Read, Write};
use std::path::Path;

use super::file::ChunkFile;
use super::meta::{ChunkShape, RawLayout};
use crate::error::{StorageError, StorageResult};
use crate::grid::ChunkExtent;
use crate::store::ChunkRows;

/// The bytes a raw chunk file of `chunk_shape` holds.
fn expected_len((cr, cc): ChunkShape, raw: RawLayout) -> u64 {
    (cr * cc * size_of::<f64>() + if raw.crc { 4 } else { 0 }) as u64
}

/// Refuses a chunk file of the wrong length.
fn check_len(chunk: &ChunkFile<'_>, chunk_shape: ChunkShape, raw: RawLayout) -> StorageResult<()> {
    let (cr, cc) = chunk_shape;
    let expected = expected_len(chunk_shape, raw);
    let len = chunk.len()?;
    if len != expected {
        return Err(chunk.corrupted(format!("the file has {len} bytes; a {cr} x {cc} float64 chunk takes {expected}")));
    }
    Ok(())
}

fn checksum_mismatch(chunk: &ChunkFile<'_>) -> StorageError {
    chunk.corrupted("crc32c checksum mismatch: the chunk's bytes changed after it was written".into())
}

/// Reads a raw chunk file into `out`: one read into the buffer, checksum checked in place,
/// then cut to the chunk's `extent`.
pub(super) fn read(
    mut chunk: ChunkFile<'_>,
    raw: RawLayout,
    chunk_shape: ChunkShape,
    extent: ChunkExtent,
    out: &mut Vec<f64>,
) -> StorageResult<()> {
    check_len(&chunk, chunk_shape, raw)?;
    let (cr, cc) = chunk_shape;
    out.resize(cr * cc, 0.0);
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out[..]);
    chunk.file.read_exact(bytes).map_err(|e| chunk.io(e))?;
    if raw.crc {
        let mut stored = [0u8; 4];
        chunk.file.read_exact(&mut stored).map_err(|e| chunk.io(e))?;
        if crc32c::crc32c(bytes) != u32::from_le_bytes(stored) {
            return Err(checksum_mismatch(&chunk));
        }
    }
    trim_to_extent(out, cc, extent.rows, extent.cols);
    Ok(())
}

/// Writes a raw chunk file at `path` from `data` (the chunk's `extent`), padding edge chunks
/// to the full chunk shape.
pub(super) fn write(
    path: &Path,
    raw: RawLayout,
    (cr, cc): ChunkShape,
    extent: ChunkExtent,
    data: &[f64],
) -> StorageResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StorageError::io(parent, e))?;
    }
    let io = |e| StorageError::io(path, e);
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = CrcWriter { inner: std::io::BufWriter::with_capacity(1 << 16, file), crc: 0 };
    let bytes: &[u8] = bytemuck::cast_slice(data);
    if extent.cols == cc {
        out.put(bytes).map_err(io)?;
    } else {
        for row in bytes.chunks_exact(extent.cols * size_of::<f64>()).take(extent.rows) {
            out.put(row).map_err(io)?;
            out.zeros((cc - extent.cols) * size_of::<f64>()).map_err(io)?;
        }
    }
    out.zeros((cr - extent.rows) * cc * size_of::<f64>()).map_err(io)?;
    if raw.crc {
        let crc = out.crc.to_le_bytes();
        out.inner.write_all(&crc).map_err(io)?;
    }
    out.inner.flush().map_err(io)
}

/// Row blocks of a raw chunk file, read in order with the crc32c folded in as they pass.
pub(super) struct RawRows<'a> {
    chunk: ChunkFile<'a>,
    raw: RawLayout,
    chunk_shape: ChunkShape,
    extent: ChunkExtent,
    crc: u32,
    next: usize,
}

impl<'a> RawRows<'a> {
    /// The rows of `chunk` (of `extent`), once its length is checked.
    pub(super) fn new(
        chunk: ChunkFile<'a>,
        raw: RawLayout,
        chunk_shape: ChunkShape,
        extent: ChunkExtent,
    ) -> StorageResult<Self> {
        check_len(&chunk, chunk_shape, raw)?;
        Ok(Self { chunk, raw, chunk_shape, extent, crc: 0, next: 0 })
    }

    fn read(&mut self, bytes: &mut [u8]) -> StorageResult<()> {
        self.chunk.file.read_exact(bytes).map_err(|e| self.chunk.io(e))?;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        Ok(())
    }
}

impl ChunkRows for RawRows<'_> {
    fn next_rows(&mut self, rows: usize, out: &mut Vec<f64>) -> StorageResult<()> {
        if self.next + rows > self.extent.rows {
            return Err(StorageError::Bug(format!("reading rows past the end of chunk {}", self.chunk.index())));
        }
        let cc = self.chunk_shape.1;
        out.resize(rows * cc, 0.0);
        self.read(bytemuck::cast_slice_mut(&mut out[..]))?;
        trim_to_extent(out, cc, rows, self.extent.cols);
        self.next += rows;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> StorageResult<()> {
        let (cr, cc) = self.chunk_shape;
        // The padding rows of an edge chunk are part of the checksum.
        let mut padding = (cr - self.next) * cc * size_of::<f64>();
        let mut buf = [0u8; 8192];
        while padding > 0 {
            let n = padding.min(buf.len());
            self.read(&mut buf[..n])?;
            padding -= n;
        }
        if self.raw.crc {
            let mut stored = [0u8; 4];
            self.chunk.file.read_exact(&mut stored).map_err(|e| self.chunk.io(e))?;
            if self.crc != u32::from_le_bytes(stored) {
                return Err(checksum_mismatch(&self.chunk));
            }
        }
        Ok(())
    }
}

/// A writer that keeps the crc32c of what went through it.
struct CrcWriter<W> {
    inner: W,
    crc: u32,
}

impl<W: Write> CrcWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.inner.write_all(bytes)
    }

    fn zeros(&mut self, mut n: usize) -> std::io::Result<()> {
        const ZEROS: [u8; 8192] = [0; 8192];
        while n > 0 {
            let step = n.min(ZEROS.len());
            self.put(&ZEROS[..step])?;
            n -= step;
        }
        Ok(())
    }
}

/// Cuts a full `? x cc` row-major chunk in `out` down to its `rows x cols` extent, in place.
pub(super) fn trim_to_extent(out: &mut Vec<f64>, cc: usize, rows: usize, cols: usize) {
    if cols != cc {
        for r in 1..rows {
            out.copy_within(r * cc..r * cc + cols, r * cols);
        }
    }
    out.truncate(rows * cols);
}
