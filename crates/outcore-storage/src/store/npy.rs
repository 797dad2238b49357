//! `.npy` files, read in chunks with positioned reads.
//!
//! Reads C-order and Fortran-order files of float64 or float32 (either byte order), straight
//! into the caller's buffer and converted in place. The file is read, not mapped: a file
//! truncated or rewritten while a run reads it (`numpy.save` over it) is then an error naming
//! it, never a SIGBUS, and reading a file larger than RAM does not grow the resident set.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{StorageError, StorageResult};
use crate::grid::{ChunkExtent, ChunkGrid, ChunkIndex};
use crate::store::{ChunkRows, ChunkStore, Dtype};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    dtype: Dtype,
    big_endian: bool,
    fortran: bool,
}

/// Default chunk size when opening a `.npy` file: row panels of about this many bytes.
const DEFAULT_PANEL_BYTES: usize = 8 << 20;

/// A 2-D `.npy` file, read and written with positioned reads and writes.
#[derive(Debug)]
pub struct NpyStore {
    path: PathBuf,
    file: File,
    /// The file's length the header promises.
    len: usize,
    data_offset: usize,
    layout: Layout,
    grid: ChunkGrid,
    writable: bool,
}

impl NpyStore {
    /// Opens `path` read-only, chunked in row panels of about 8 MiB (see
    /// [`NpyStore::with_chunk_shape`] to choose).
    pub fn open(path: impl AsRef<Path>) -> StorageResult<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Err(StorageError::NotFound { path });
        }
        let file = File::open(&path).map_err(|e| StorageError::io(&path, e))?;
        let (layout, rows, cols, data_offset) = read_header(&path, &file)?;
        let file_len = file.metadata().map_err(|e| StorageError::io(&path, e))?.len() as usize;
        let needed = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(layout.dtype.size()))
            .and_then(|n| n.checked_add(data_offset))
            .ok_or_else(|| StorageError::NotAnArray {
                path: path.clone(),
                reason: format!("its header promises {rows} x {cols} values, more than can be addressed"),
            })?;
        if file_len < needed {
            return Err(StorageError::NotAnArray {
                path,
                reason: format!("the file is truncated: {file_len} bytes, the header promises {needed}"),
            });
        }
        let chunk_rows = (DEFAULT_PANEL_BYTES / (cols.max(1) * 8)).clamp(1, rows.max(1));
        let grid = ChunkGrid::new(rows, cols, chunk_rows, cols.max(1))?;
        advise_sequential(&file);
        Ok(Self { path, file, len: needed, data_offset, layout, grid, writable: false })
    }

    /// Creates a C-order float64 `.npy` file of `grid`'s shape at `path` (which must not exist),
    /// filled with zeros, chunked by `grid`.
    pub fn create(path: impl AsRef<Path>, grid: ChunkGrid) -> StorageResult<Self> {
        let path = path.as_ref().to_path_buf();
        let (rows, cols) = grid.shape();
        let file =
            OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => StorageError::AlreadyExists { path: path.clone() },
                _ => StorageError::io(&path, e),
            })?;
        let header = encode_header(rows, cols);
        file.write_all_at(&header, 0).map_err(|e| StorageError::io(&path, e))?;
        let len = header.len() + rows * cols * 8;
        file.set_len(len as u64).map_err(|e| StorageError::io(&path, e))?;
        let layout = Layout { dtype: Dtype::F64, big_endian: false, fortran: false };
        Ok(Self { path, file, len, data_offset: header.len(), layout, grid, writable: true })
    }

    /// The same file read with chunks of `chunk_rows x chunk_cols`.
    pub fn with_chunk_shape(self, chunk_rows: usize, chunk_cols: usize) -> StorageResult<Self> {
        let (rows, cols) = self.grid.shape();
        Ok(Self { grid: ChunkGrid::new(rows, cols, chunk_rows, chunk_cols)?, ..self })
    }

    /// Element type of the file.
    pub fn dtype(&self) -> Dtype {
        self.layout.dtype
    }

    /// Fills `dst` from the file at byte `offset`; a file that ends early was cut while the
    /// run read it.
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> StorageResult<()> {
        self.file.read_exact_at(dst, offset as u64).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => StorageError::InputChanged {
                path: self.path.clone(),
                reason: format!("it is now shorter than the {} bytes its header promises", self.len),
            },
            _ => StorageError::io(&self.path, e),
        })
    }

    /// Reads `rows` rows of chunk extent `e` from row `first` (of the chunk) into `out`,
    /// row-major (C order only): the file's bytes land in `out`'s memory and are decoded there.
    fn read_rows(&self, e: ChunkExtent, first: usize, rows: usize, out: &mut Vec<f64>) -> StorageResult<()> {
        let (size, cols) = (self.layout.dtype.size(), self.grid.cols());
        out.clear();
        out.resize(rows * e.cols, 0.0);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out[..]);
        let row_bytes = e.cols * size;
        let start = self.data_offset + ((e.row0 + first) * cols + e.col0) * size;
        if e.cols == cols {
            // Whole rows lie together in the file: one read.
            self.read_bytes(start, &mut bytes[..rows * row_bytes])?;
        } else {
            for (i, dst) in bytes[..rows * row_bytes].chunks_exact_mut(row_bytes.max(1)).enumerate() {
                self.read_bytes(start + i * cols * size, dst)?;
            }
        }
        decode_in_place(out, self.layout);
        Ok(())
    }
}

/// Hints the kernel to read ahead: chunks are read down the file. Failure changes only speed.
fn advise_sequential(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: posix_fadvise only reads its arguments; the descriptor is open.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    }
}

/// Decodes in place the values whose file bytes fill the front of `out`'s memory (all of it
/// for float64, the first half for float32), into native float64.
fn decode_in_place(out: &mut [f64], layout: Layout) {
    match (layout.dtype, layout.big_endian) {
        (Dtype::F64, false) => out.iter_mut().for_each(|v| *v = f64::from_bits(u64::from_le(v.to_bits()))),
        (Dtype::F64, true) => out.iter_mut().for_each(|v| *v = f64::from_bits(u64::from_be(v.to_bits()))),
        (Dtype::F32, big_endian) => {
            // From the last: value i's eight bytes cover float32 values 2i and 2i + 1, both
            // read already.
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
            for i in (0..bytes.len() / 8).rev() {
                let b = [bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]];
                let narrow = if big_endian { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) };
                bytes[8 * i..8 * i + 8].copy_from_slice(&f64::from(narrow).to_ne_bytes());
            }
        }
    }
}

impl ChunkStore for NpyStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn location(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn dtype(&self) -> Dtype {
        self.layout.dtype
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let e = self.grid.extent(index)?;
        if !self.layout.fortran {
            return self.read_rows(e, 0, e.rows, out);
        }
        // Fortran order: each column of the chunk lies together in the file.
        let (size, rows) = (self.layout.dtype.size(), self.grid.rows());
        let mut column = vec![0.0; e.rows];
        out.clear();
        out.resize(e.len(), 0.0);
        for j in 0..e.cols {
            let start = self.data_offset + ((e.col0 + j) * rows + e.row0) * size;
            self.read_bytes(start, &mut bytemuck::cast_slice_mut(&mut column[..])[..e.rows * size])?;
            decode_in_place(&mut column, self.layout);
            for (i, v) in column.iter().enumerate() {
                out[i * e.cols + j] = *v;
            }
        }
        Ok(())
    }

    fn write_chunk(&self, index: ChunkIndex, data: &[f64]) -> StorageResult<()> {
        let e = self.grid.check_chunk_len(index, data.len())?;
        if !self.writable {
            return Err(StorageError::ReadOnly { store: self.describe() });
        }
        let cols = self.grid.cols();
        let mut row = Vec::with_capacity(e.cols * 8);
        for (i, values) in data.chunks_exact(e.cols.max(1)).enumerate().take(e.rows) {
            row.clear();
            row.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            let offset = self.data_offset + ((e.row0 + i) * cols + e.col0) * 8;
            self.file.write_all_at(&row, offset as u64).map_err(|err| StorageError::io(&self.path, err))?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(".npy file {}", self.path.display())
    }

    fn streams_rows(&self) -> bool {
        !self.layout.fortran
    }

    fn write_scratch_bytes(&self) -> u64 {
        // One row of bytes at a time.
        (self.grid.chunk_shape().1 * size_of::<f64>()) as u64
    }

    fn chunk_rows(&self, index: ChunkIndex) -> StorageResult<Option<Box<dyn ChunkRows + '_>>> {
        if self.layout.fortran {
            return Ok(None);
        }
        let extent = self.grid.extent(index)?;
        Ok(Some(Box::new(NpyRows { store: self, extent, next: 0 })))
    }
}

/// Row blocks of a C-order `.npy` chunk, read as they are asked for.
struct NpyRows<'a> {
    store: &'a NpyStore,
    extent: crate::grid::ChunkExtent,
    next: usize,
}

impl ChunkRows for NpyRows<'_> {
    fn next_rows(&mut self, rows: usize, out: &mut Vec<f64>) -> StorageResult<()> {
        self.store.read_rows(self.extent, self.next, rows, out)?;
        self.next += rows;
        Ok(())
    }

    fn finish(self: Box<Self>) -> StorageResult<()> {
        Ok(())
    }
}

fn read_header(path: &Path, file: &File) -> StorageResult<(Layout, usize, usize, usize)> {
    let not_npy = |reason: String| StorageError::NotAnArray { path: path.to_path_buf(), reason };
    let mut prefix = [0u8; 12];
    let got = file.read_at(&mut prefix, 0).map_err(|e| StorageError::io(path, e))?;
    if got < 10 || &prefix[..6] != b"\x93NUMPY" {
        return Err(not_npy("it does not start with the .npy magic bytes; save it with numpy.save".into()));
    }
    let (header_len, header_start) = match prefix[6] {
        1 => (u16::from_le_bytes([prefix[8], prefix[9]]) as usize, 10),
        2 | 3 if got >= 12 => (u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize, 12),
        v => return Err(not_npy(format!(".npy format version {v} is not supported (1, 2 and 3 are)"))),
    };
    let mut header = vec![0u8; header_len];
    file.read_exact_at(&mut header, header_start as u64).map_err(|_| not_npy("the header is truncated".into()))?;
    let header = String::from_utf8_lossy(&header);
    let field = |name: &str| -> Option<&str> {
        let at = header.find(&format!("'{name}'")).or_else(|| header.find(&format!("\"{name}\"")))?;
        let rest = &header[at + name.len() + 2..];
        Some(rest[rest.find(':')? + 1..].trim_start())
    };
    let descr_text = field("descr").ok_or_else(|| not_npy("the header has no 'descr'".into()))?;
    let descr = match descr_text.chars().next() {
        Some(q @ ('\'' | '"')) => descr_text[1..].split(q).next().unwrap_or_default(),
        // A list of fields: a structured (record) array, not a matrix of numbers.
        _ => {
            return Err(StorageError::UnsupportedDtype {
                path: path.to_path_buf(),
                dtype: "a structured (record) dtype".into(),
            });
        }
    };
    let fortran = field("fortran_order").is_some_and(|r| r.starts_with("True"));
    let shape_text = field("shape")
        .and_then(|r| r.strip_prefix('(').and_then(|r| r.split(')').next()))
        .ok_or_else(|| not_npy("the header has no 'shape'".into()))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().map_err(|_| not_npy(format!("bad shape entry {s:?}"))))
        .collect::<StorageResult<_>>()?;
    let (big_endian, kind) = match descr.split_at_checked(1) {
        Some(("<" | "=" | "|", k)) => (false, k),
        Some((">", k)) => (true, k),
        _ => (false, descr),
    };
    let dtype = match kind {
        "f8" => Dtype::F64,
        "f4" => Dtype::F32,
        _ => return Err(StorageError::UnsupportedDtype { path: path.to_path_buf(), dtype: descr.to_string() }),
    };
    // A vector is read as one column (numpy's `b` and weights are often 1-D).
    let (rows, cols) = match shape[..] {
        [rows, cols] => (rows, cols),
        [rows] => (rows, 1),
        _ => return Err(StorageError::NotTwoDimensional { path: path.to_path_buf(), ndim: shape.len() }),
    };
    Ok((Layout { dtype, big_endian, fortran }, rows, cols, header_start + header_len))
}

fn encode_header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + dict + padding + newline, a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{read_matrix, write_matrix};

    #[test]
    fn a_structured_dtype_is_named_as_such_not_quoted_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.npy");
        let dict = "{'descr': [('a', '<f8'), ('b', '<i4')], 'fortran_order': False, 'shape': (3,), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let total = (10 + dict.len() + 1).div_ceil(64) * 64;
        bytes.extend_from_slice(&((total - 10) as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.resize(total - 1, b' ');
        bytes.push(b'\n');
        bytes.extend_from_slice(&[0u8; 36]);
        std::fs::write(&path, bytes).unwrap();
        let err = NpyStore::open(&path).unwrap_err().to_string();
        assert!(err.contains("a structured (record) dtype") && !err.contains("fortran_order"), "{err}");
    }

    #[test]
    fn a_header_promising_more_than_can_be_addressed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (rows, cols) in [(4, 1usize << 61), (1usize << 40, 1usize << 40), (3, 0)] {
            let path = dir.path().join(format!("h{rows}x{cols}.npy"));
            let mut bytes = encode_header(rows, cols);
            bytes.extend_from_slice(&[0u8; 64]);
            std::fs::write(&path, bytes).unwrap();
            match NpyStore::open(&path) {
                Err(e) if cols > 0 => {
                    let text = e.to_string();
                    assert!(text.contains("more than can be addressed") || text.contains("truncated"), "{text}");
                }
                Err(e) => panic!("an empty 3 x 0 array is readable: {e}"),
                Ok(store) => assert_eq!((cols, store.grid().shape()), (0, (3, 0))),
            }
        }
    }

    #[test]
    fn round_trips_and_rechunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let grid = ChunkGrid::new(7, 5, 3, 2).unwrap();
        let data: Vec<f64> = (0..35).map(|x| x as f64 * 0.25 - 3.0).collect();
        let store = NpyStore::create(&path, grid).unwrap();
        write_matrix(&store, &data).unwrap();
        drop(store);
        let store = NpyStore::open(&path).unwrap();
        assert_eq!(store.grid().shape(), (7, 5));
        assert_eq!(read_matrix(&store).unwrap(), data);
        let store = store.with_chunk_shape(2, 3).unwrap();
        assert_eq!(read_matrix(&store).unwrap(), data);
        assert!(matches!(store.write_chunk(ChunkIndex::new(0, 0), &[0.0; 6]), Err(StorageError::ReadOnly { .. })));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("t.npy");
        std::fs::write(&text, "hello").unwrap();
        assert!(matches!(NpyStore::open(&text), Err(StorageError::NotAnArray { .. })));
        assert!(matches!(NpyStore::open(dir.path().join("missing.npy")), Err(StorageError::NotFound { .. })));
        let grid = ChunkGrid::new(2, 2, 1, 2).unwrap();
        let path = dir.path().join("a.npy");
        NpyStore::create(&path, grid).unwrap();
        assert!(matches!(NpyStore::create(&path, grid), Err(StorageError::AlreadyExists { .. })));
    }
}
