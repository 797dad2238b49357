//! Zarr arrays on a local directory, through zarrs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::codec::api::BytesToBytesCodecTraits;
use zarrs::array::codec::{
    BloscCodec, BloscCompressionLevel, BloscCompressor, BloscShuffleMode, Crc32cCodec, GzipCodec, ZstdCodec,
};
use zarrs::array::data_type::{self, Float32DataType, Float64DataType};
use zarrs::array::{Array, ArrayBuilder, ArrayError, ArraySubset};
use zarrs::filesystem::{FilesystemStore, FilesystemStoreOptions};

use crate::error::{StorageError, StorageResult};
use crate::grid::{ChunkGrid, ChunkIndex};
use crate::store::{ChunkRows, ChunkStore, Dtype, SliceRows};

/// How an opened array's chunk files are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Through the page cache, with the kernel's read-ahead, and the next chunk down the
    /// column announced before it is read (`posix_fadvise(WILLNEED)`). zstd chunks are mapped,
    /// not copied out of the cache. The default: a store that fits in RAM is read from it
    /// again, and on a store larger than RAM two runs of `benches/perf.py` disagreed on which
    /// mode is faster (docs/perf).
    #[default]
    Buffered,
    /// Direct I/O (`O_DIRECT`, Linux): chunk files go from the disk into page-aligned buffers
    /// without the page cache, one synchronous request per chunk and no read-ahead. Keeps a
    /// store larger than RAM from evicting everything else cached. Uncompressed float64
    /// arrays then go through zarrs' codec path instead of outcore's raw reader. Refused where
    /// the file system does not allow it.
    Direct,
}

/// Compression of chunks in arrays outcore creates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Raw little-endian f64: fastest to read and write; random data barely compresses.
    #[default]
    None,
    /// zstd at the given level (zarr-python's default codec, at level 0).
    Zstd {
        /// Compression level (1..=22; 0 means zstd's default).
        level: i32,
    },
    /// gzip at the given level (0..=9).
    Gzip {
        /// Compression level.
        level: u32,
    },
    /// Blosc with LZ4 and byte shuffle: fast, and compresses exponent bytes.
    BloscLz4 {
        /// Compression level (0..=9).
        level: u8,
    },
}

impl std::str::FromStr for Compression {
    type Err = StorageError;

    /// Parses `none`, `zstd`, `zstd:5`, `gzip`, `gzip:6`, `blosc-lz4` or `blosc-lz4:5`.
    fn from_str(text: &str) -> StorageResult<Self> {
        let (name, level) = match text.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (text, None),
        };
        let bad = |reason: String| StorageError::InvalidArgument { what: "compression", reason };
        let level_or = |default: i64, max: i64| -> StorageResult<i64> {
            let Some(l) = level else { return Ok(default) };
            match l.parse::<i64>() {
                Ok(v) if (0..=max).contains(&v) => Ok(v),
                _ => Err(bad(format!("level {l:?} of {name} must be a whole number from 0 to {max}"))),
            }
        };
        match name {
            "none" if level.is_none() => Ok(Self::None),
            "zstd" => Ok(Self::Zstd { level: level_or(1, 22)? as i32 }),
            "gzip" => Ok(Self::Gzip { level: level_or(5, 9)? as u32 }),
            "blosc-lz4" => Ok(Self::BloscLz4 { level: level_or(5, 9)? as u8 }),
            _ => Err(bad(format!("{text:?} is not one of none, zstd[:LEVEL], gzip[:LEVEL], blosc-lz4[:LEVEL]"))),
        }
    }
}

/// How outcore creates Zarr arrays.
#[derive(Clone, Debug)]
pub struct ZarrOptions {
    /// Element type on disk (default float64; float32 rounds the f64 values written).
    pub dtype: Dtype,
    /// Chunk compression.
    pub compression: Compression,
    /// Append a crc32c checksum to every chunk, so corruption is detected on read (default on).
    pub checksum: bool,
    /// Attributes written to the array's metadata.
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl Default for ZarrOptions {
    fn default() -> Self {
        Self { dtype: Dtype::F64, compression: Compression::None, checksum: true, attributes: serde_json::Map::new() }
    }
}

/// A 2-D Zarr array (v3, or v2 from Python's zarr) in a directory.
///
/// float64 and float32 arrays are read (float32 widened to f64); other data types are refused
/// with [`StorageError::UnsupportedDtype`]. Arrays outcore creates are Zarr v3, float64.
///
/// Uncompressed float64 arrays (codecs `bytes` little-endian, optionally then `crc32c`: what
/// outcore creates by default) take a direct path: chunk files are read into and written from
/// the caller's buffer with one system call and the checksum is checked in place, instead of
/// going through zarrs' codec pipeline, which copies a chunk three times. zarrs handles
/// metadata and every other codec chain.
pub struct ZarrStore {
    path: PathBuf,
    array: Array<FilesystemStore>,
    grid: ChunkGrid,
    chunk_shape: (usize, usize),
    element: Dtype,
    raw: Option<RawLayout>,
    /// Sharded arrays are read by inner chunk (the grid's chunks), never by whole shard.
    sharded: bool,
    /// Chunk files are read with direct I/O.
    direct: bool,
    /// Chunks are zstd frames decoded by outcore (see [`Fast::Zstd`]).
    zstd: bool,
}

/// `(chunk rows, chunk columns)`.
type ChunkShape = (usize, usize);

/// Chunk encodings outcore reads itself instead of through zarrs' codec pipeline, which
/// allocates a fresh buffer per codec step (each one page-faulted in again for every chunk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fast {
    /// Raw little-endian float64.
    Raw(RawLayout),
    /// zstd frames of little-endian values of this type (zarr-python's default, v3 and v2),
    /// decoded straight into the caller's buffer from the mapped (or directly read) file.
    Zstd(Dtype),
}

/// Chunks stored as raw little-endian f64, with or without a trailing crc32c.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RawLayout {
    crc: bool,
}

impl std::fmt::Debug for ZarrStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrStore").field("path", &self.path).field("grid", &self.grid).finish()
    }
}

/// The largest chunk (as stored, edge padding included) outcore opens: 1 TiB. Larger ones
/// cannot be read into any machine's memory, and their sizes would overflow estimates.
const MAX_CHUNK_BYTES: usize = 1 << 40;

/// `values` rounded to float32.
fn narrow(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

/// Creates the directory of a new array at `path` (which must not exist) and its store.
fn new_array_dir(path: &Path) -> StorageResult<(PathBuf, Arc<FilesystemStore>)> {
    let path = path.to_path_buf();
    if path.exists() {
        return Err(StorageError::AlreadyExists { path });
    }
    std::fs::create_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
    let store =
        FilesystemStore::new(&path).map_err(|e| StorageError::Zarr { path: path.clone(), message: e.to_string() })?;
    Ok((path, Arc::new(store)))
}

/// The bytes-to-bytes codecs `options` asks for: compression, then the checksum.
fn codecs(options: &ZarrOptions, path: &Path) -> StorageResult<Vec<Arc<dyn BytesToBytesCodecTraits>>> {
    let zarr_err = |message: String| StorageError::Zarr { path: path.to_path_buf(), message };
    let mut codecs: Vec<Arc<dyn BytesToBytesCodecTraits>> = Vec::new();
    match options.compression {
        Compression::None => {}
        Compression::Zstd { level } => codecs.push(Arc::new(ZstdCodec::new(level, false))),
        Compression::Gzip { level } => {
            codecs.push(Arc::new(GzipCodec::new(level).map_err(|e| zarr_err(e.to_string()))?));
        }
        Compression::BloscLz4 { level } => {
            let level = BloscCompressionLevel::try_from(level).map_err(|e| zarr_err(e.to_string()))?;
            let codec = BloscCodec::new(BloscCompressor::LZ4, level, None, BloscShuffleMode::Shuffle, Some(8))
                .map_err(|e| zarr_err(e.to_string()))?;
            codecs.push(Arc::new(codec));
        }
    }
    if options.checksum {
        codecs.push(Arc::new(Crc32cCodec::new()));
    }
    Ok(codecs)
}

impl ZarrStore {
    /// Creates a new Zarr v3 array of `options.dtype` (float64 by default) at `path` (which
    /// must not exist) with `grid`'s shape and chunking.
    pub fn create(path: impl AsRef<Path>, grid: ChunkGrid, options: &ZarrOptions) -> StorageResult<Self> {
        let (path, store) = new_array_dir(path.as_ref())?;
        let zarr_err = |message: String| StorageError::Zarr { path: path.clone(), message };
        let (rows, cols) = grid.shape();
        let (cr, cc) = grid.chunk_shape();
        let codecs = codecs(options, &path)?;
        let (shape, chunks) = (vec![rows as u64, cols as u64], vec![cr as u64, cc as u64]);
        let mut builder = match options.dtype {
            Dtype::F64 => ArrayBuilder::new(shape, chunks, data_type::float64(), 0.0f64),
            Dtype::F32 => ArrayBuilder::new(shape, chunks, data_type::float32(), 0.0f32),
        };
        let array = builder
            .bytes_to_bytes_codecs(codecs)
            .dimension_names(["row", "col"].into())
            .attributes(options.attributes.clone())
            .build(store, "/")
            .map_err(|e| zarr_err(e.to_string()))?;
        array.store_metadata().map_err(|e| zarr_err(e.to_string()))?;
        let raw =
            (options.compression == Compression::None && options.dtype == Dtype::F64 && cfg!(target_endian = "little"))
                .then_some(RawLayout { crc: options.checksum });
        Ok(Self {
            path,
            array,
            grid,
            chunk_shape: (cr, cc),
            element: options.dtype,
            raw,
            sharded: false,
            direct: false,
            zstd: false,
        })
    }

    /// Opens an existing 2-D float64 or float32 array (Zarr v3 or v2) at `path`, read
    /// through the page cache ([`ReadMode::Buffered`]).
    pub fn open(path: impl AsRef<Path>) -> StorageResult<Self> {
        Self::open_with(path, ReadMode::Buffered)
    }

    /// Opens an existing 2-D float64 or float32 array (Zarr v3 or v2) at `path`, its chunk
    /// files read as `mode` says.
    pub fn open_with(path: impl AsRef<Path>, mode: ReadMode) -> StorageResult<Self> {
        let path = path.as_ref().to_path_buf();
        let (chunk_shape, fast, inner) = inspect_array_metadata(&path)?;
        let direct = match mode {
            ReadMode::Buffered => false,
            ReadMode::Direct if direct_io_allowed(&path) => true,
            ReadMode::Direct => {
                return Err(StorageError::InvalidArgument {
                    what: "read mode",
                    reason: format!(
                        "the file system holding {} refuses direct I/O (O_DIRECT); read it buffered",
                        path.display()
                    ),
                });
            }
        };
        // Direct reads of raw chunks go through zarrs (outcore's raw reader reads buffered).
        let fast = fast.filter(|f| !(direct && matches!(f, Fast::Raw(_))));
        Self::open_array(&path, chunk_shape, fast, inner, direct)
    }

    /// Opens the array at `path`, whose metadata `inspect_array_metadata` read.
    fn open_array(
        path: &Path,
        chunk_shape: Option<ChunkShape>,
        fast: Option<Fast>,
        inner: Option<ChunkShape>,
        direct: bool,
    ) -> StorageResult<Self> {
        let path = path.to_path_buf();
        let zarr_err = |message: String| StorageError::Zarr { path: path.clone(), message };
        let mut options = FilesystemStoreOptions::default();
        options.direct_io(direct);
        let store = Arc::new(FilesystemStore::new_with_options(&path, options).map_err(|e| zarr_err(e.to_string()))?);
        let array = Array::open(store, "/").map_err(|e| {
            let message = e.to_string();
            match message.split_once("codec ").and_then(|(_, rest)| rest.strip_suffix(" is not supported")) {
                Some(codec) => StorageError::NotAnArray {
                    path: path.clone(),
                    reason: format!(
                        "its chunks are encoded with the {codec} codec, which outcore does not decode (it reads zstd, gzip, zlib, bz2, blosc, crc32c, sharding, transpose and uncompressed chunks); rewrite it with one of those, e.g. in Python `dask.array.from_zarr(IN).to_zarr(OUT)` (zarr's default, zstd)"
                    ),
                },
                None => zarr_err(message),
            }
        })?;
        let shape = array.shape().to_vec();
        if shape.len() != 2 {
            return Err(StorageError::NotTwoDimensional { path, ndim: shape.len() });
        }
        let element = if array.data_type().is::<Float64DataType>() {
            Dtype::F64
        } else if array.data_type().is::<Float32DataType>() {
            Dtype::F32
        } else {
            return Err(StorageError::UnsupportedDtype { path, dtype: array.data_type().to_string() });
        };
        let Some((cr, cc)) = chunk_shape else {
            return Err(StorageError::NotAnArray {
                path,
                reason: "its chunk grid is not a regular 2-D grid; rechunk it with zarr to regular chunks".into(),
            });
        };
        // Zarr pads edge chunks to the full chunk shape: a chunk must be readable as stored.
        let chunk_bytes = cr.checked_mul(cc).and_then(|n| n.checked_mul(size_of::<f64>()));
        if chunk_bytes.is_none_or(|b| b > MAX_CHUNK_BYTES) {
            return Err(StorageError::NotAnArray {
                path,
                reason: format!(
                    "its chunk shape {cr} x {cc} is too large for any chunk to be read; rechunk it with zarr to chunks of a few MiB"
                ),
            });
        }
        // A sharded array's unit of reading is its inner chunk: zarrs decodes only the inner
        // chunks a read asks for, so a shard is never held whole.
        let (gr, gc) = inner.unwrap_or((cr, cc));
        let grid = ChunkGrid::new(shape[0] as usize, shape[1] as usize, gr, gc)?;
        let little = cfg!(target_endian = "little");
        let raw = match fast {
            Some(Fast::Raw(raw)) if element == Dtype::F64 && little => Some(raw),
            _ => None,
        };
        let zstd = little && fast == Some(Fast::Zstd(element));
        Ok(Self { path, array, grid, chunk_shape: (cr, cc), element, raw, sharded: inner.is_some(), direct, zstd })
    }

    /// True when chunk files are read with direct I/O (see [`ReadMode`]).
    pub fn reads_direct(&self) -> bool {
        self.direct
    }

    /// The array's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `values` as a new 1-D Zarr v3 array of `options.dtype` at `path` (which must not
    /// exist), in one chunk, with the codecs `options` gives a matrix (the crc32c checksum by
    /// default): singular values beside their vectors.
    pub fn write_vector(path: impl AsRef<Path>, values: &[f64], options: &ZarrOptions) -> StorageResult<()> {
        let (path, store) = new_array_dir(path.as_ref())?;
        let zarr_err = |message: String| StorageError::Zarr { path: path.clone(), message };
        let n = values.len() as u64;
        let mut builder = match options.dtype {
            Dtype::F64 => ArrayBuilder::new(vec![n], vec![n.max(1)], data_type::float64(), 0.0f64),
            Dtype::F32 => ArrayBuilder::new(vec![n], vec![n.max(1)], data_type::float32(), 0.0f32),
        };
        let array = builder
            .bytes_to_bytes_codecs(codecs(options, &path)?)
            .attributes(options.attributes.clone())
            .build(store, "/")
            .map_err(|e| zarr_err(e.to_string()))?;
        array.store_metadata().map_err(|e| zarr_err(e.to_string()))?;
        if !values.is_empty() {
            let stored = match options.dtype {
                Dtype::F64 => array.store_chunk(&[0], values),
                Dtype::F32 => array.store_chunk(&[0], narrow(values)),
            };
            stored.map_err(|e| zarr_err(e.to_string()))?;
        }
        Ok(())
    }

    /// The file holding chunk `index` of the grid (its shard's, for a sharded array).
    fn chunk_file(&self, index: ChunkIndex) -> PathBuf {
        let (gr, gc) = self.grid.chunk_shape();
        let (cr, cc) = self.chunk_shape;
        let key = [(index.row * gr / cr.max(1)) as u64, (index.col * gc / cc.max(1)) as u64];
        self.path.join(self.array.chunk_key(&key).as_str())
    }

    fn map_chunk_error(&self, index: ChunkIndex, error: ArrayError) -> StorageError {
        match error {
            ArrayError::CodecError(e) => StorageError::CorruptedChunk {
                path: self.path.clone(),
                index,
                file: self.chunk_file(index),
                reason: e.to_string(),
            },
            ArrayError::StorageError(zarrs::storage::StorageError::IOError(e)) => {
                StorageError::io(self.chunk_file(index), std::io::Error::new(e.kind(), e.to_string()))
            }
            other => StorageError::Zarr { path: self.path.clone(), message: format!("chunk {index}: {other}") },
        }
    }
}

impl ZarrStore {
    fn corrupted(&self, index: ChunkIndex, reason: String) -> StorageError {
        StorageError::CorruptedChunk { path: self.path.clone(), index, file: self.chunk_file(index), reason }
    }

    /// Opens chunk `index`'s file (with `O_DIRECT` when reads are direct) and gives its path,
    /// or `None` when Zarr never stored it: a chunk all of the fill value, here 0.
    fn open_stored(&self, index: ChunkIndex) -> StorageResult<Option<(std::fs::File, PathBuf)>> {
        let path = self.chunk_file(index);
        match open_chunk_file(&path, self.direct) {
            Ok(file) => Ok(Some((file, path))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    /// Reads a raw chunk file into `out`: one read into the buffer, checksum checked in place.
    fn read_raw(&self, index: ChunkIndex, raw: RawLayout, out: &mut Vec<f64>) -> StorageResult<()> {
        use std::io::Read;
        let extent = self.grid.extent(index)?;
        let (cr, cc) = self.chunk_shape;
        let Some((mut file, file_path)) = self.open_stored(index)? else {
            out.clear();
            out.resize(extent.len(), 0.0);
            return Ok(());
        };
        let expected = (cr * cc * size_of::<f64>() + if raw.crc { 4 } else { 0 }) as u64;
        let len = file.metadata().map_err(|e| StorageError::io(&file_path, e))?.len();
        if len != expected {
            return Err(self
                .corrupted(index, format!("the file has {len} bytes; a {cr} x {cc} float64 chunk takes {expected}")));
        }
        out.resize(cr * cc, 0.0);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out[..]);
        file.read_exact(bytes).map_err(|e| StorageError::io(&file_path, e))?;
        if raw.crc {
            let mut stored = [0u8; 4];
            file.read_exact(&mut stored).map_err(|e| StorageError::io(&file_path, e))?;
            if crc32c::crc32c(bytes) != u32::from_le_bytes(stored) {
                return Err(self.corrupted(
                    index,
                    "crc32c checksum mismatch: the chunk's bytes changed after it was written".into(),
                ));
            }
        }
        trim_to_extent(out, cc, extent.rows, extent.cols);
        Ok(())
    }

    /// Asks the kernel to start reading the chunk below `index` (the next one a reader going
    /// down the rows wants, while this one is decoded and factored), unless reads are direct
    /// or the array is sharded (the next inner chunk is in the same file). A hint: failures
    /// are ignored.
    fn announce_next(&self, index: ChunkIndex) {
        #[cfg(target_os = "linux")]
        if !self.direct && !self.sharded && index.row + 1 < self.grid.grid_shape().0 {
            use std::os::fd::AsRawFd;
            if let Ok(file) = std::fs::File::open(self.chunk_file(ChunkIndex::new(index.row + 1, index.col))) {
                // SAFETY: posix_fadvise only reads its arguments; the descriptor is open.
                unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
            }
        }
    }

    /// Reads a zstd chunk: the file is mapped (or, with direct I/O, read into this thread's
    /// page-aligned buffer) and decompressed straight into `out`, float32 widened in place. No
    /// buffer is allocated per chunk and the bytes are copied by no one but the decompressor.
    fn read_zstd(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let extent = self.grid.extent(index)?;
        let (cr, cc) = self.chunk_shape;
        let Some((file, file_path)) = self.open_stored(index)? else {
            out.clear();
            out.resize(extent.len(), 0.0);
            return Ok(());
        };
        let len = file.metadata().map_err(|e| StorageError::io(&file_path, e))?.len();
        let want = cr * cc * self.element.size();
        // zstd's worst case for incompressible input is a few bytes per 128 KiB block.
        if len == 0 || len > (want + want / 128 + 4096) as u64 {
            return Err(self.corrupted(index, format!("the file has {len} bytes, not a zstd {cr} x {cc} chunk")));
        }
        out.resize(cr * cc, 0.0);
        let dst = &mut bytemuck::cast_slice_mut::<f64, u8>(&mut out[..])[..want];
        let decoded = if self.direct {
            read_direct(&file, len as usize, |encoded| unzstd(encoded, dst))
        } else {
            // SAFETY: the map lives only while this function decodes it. As for `NpyStore`,
            // inputs must not be rewritten while a run reads them: a chunk file changed
            // meanwhile gives wrong values or a decode error, one truncated meanwhile SIGBUS.
            match unsafe { memmap2::Mmap::map(&file) } {
                Ok(map) => {
                    let _ = map.advise(memmap2::Advice::Sequential);
                    unzstd(&map, dst)
                }
                // A file system that cannot map files (some FUSE mounts) is read instead.
                Err(_) => {
                    let mut encoded = Vec::new();
                    std::io::Read::read_to_end(&mut &file, &mut encoded).and_then(|_| unzstd(&encoded, dst))
                }
            }
        };
        match decoded {
            Ok(n) if n == want => {}
            Ok(n) => return Err(self.corrupted(index, format!("decoded {n} bytes, expected {want}"))),
            Err(e) if e.kind() == std::io::ErrorKind::Other => return Err(self.corrupted(index, e.to_string())),
            Err(e) => return Err(StorageError::io(file_path, e)),
        }
        if self.element == Dtype::F32 {
            widen_in_place(out);
        }
        trim_to_extent(out, cc, extent.rows, extent.cols);
        Ok(())
    }

    /// Writes a raw chunk file from `data`, padding edge chunks to the full chunk shape.
    fn write_raw(&self, index: ChunkIndex, raw: RawLayout, data: &[f64]) -> StorageResult<()> {
        use std::io::Write;
        let extent = self.grid.extent(index)?;
        let (cr, cc) = self.chunk_shape;
        let file_path = self.chunk_file(index);
        if let Some(parent) = file_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StorageError::io(parent, e))?;
        }
        let io = |e| StorageError::io(&file_path, e);
        let file = std::fs::File::create(&file_path).map_err(io)?;
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
}

/// Row blocks of a raw chunk file, read in order with the crc32c folded in as they pass.
struct RawRows<'a> {
    store: &'a ZarrStore,
    index: ChunkIndex,
    file: std::fs::File,
    raw: RawLayout,
    crc: u32,
    next: usize,
}

impl RawRows<'_> {
    fn read(&mut self, bytes: &mut [u8]) -> StorageResult<()> {
        use std::io::Read;
        self.file.read_exact(bytes).map_err(|e| StorageError::io(self.store.chunk_file(self.index), e))?;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        Ok(())
    }
}

impl ChunkRows for RawRows<'_> {
    fn next_rows(&mut self, rows: usize, out: &mut Vec<f64>) -> StorageResult<()> {
        let extent = self.store.grid.extent(self.index)?;
        if self.next + rows > extent.rows {
            return Err(StorageError::Bug(format!("reading rows past the end of chunk {}", self.index)));
        }
        let cc = self.store.chunk_shape.1;
        out.resize(rows * cc, 0.0);
        self.read(bytemuck::cast_slice_mut(&mut out[..]))?;
        trim_to_extent(out, cc, rows, extent.cols);
        self.next += rows;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> StorageResult<()> {
        use std::io::Read;
        let (cr, cc) = self.store.chunk_shape;
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
            self.file.read_exact(&mut stored).map_err(|e| StorageError::io(self.store.chunk_file(self.index), e))?;
            if self.crc != u32::from_le_bytes(stored) {
                return Err(self.store.corrupted(
                    self.index,
                    "crc32c checksum mismatch: the chunk's bytes changed after it was written".into(),
                ));
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

impl<W: std::io::Write> CrcWriter<W> {
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

/// Opens a chunk file for reading, with `O_DIRECT` when `direct`.
fn open_chunk_file(path: &Path, direct: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_DIRECT);
    }
    options.open(path)
}

/// Alignment of direct I/O buffers, offsets and lengths: a page, a multiple of every
/// logical block size Linux file systems use.
const DIRECT_ALIGN: usize = 4096;

thread_local! {
    /// A thread's buffer for direct reads, grown to the largest chunk file it has read.
    static DIRECT_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A thread's zstd decompression context, reused for every chunk.
    static UNZSTD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// Reads `len` bytes of `file` (opened with `O_DIRECT`) into this thread's page-aligned
/// buffer in one request, and passes them to `f`.
fn read_direct<T>(file: &std::fs::File, len: usize, f: impl FnOnce(&[u8]) -> std::io::Result<T>) -> std::io::Result<T> {
    use std::os::unix::fs::FileExt;
    DIRECT_BUFFER.with_borrow_mut(|buffer| {
        let rounded = len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        if buffer.len() < rounded + DIRECT_ALIGN {
            *buffer = vec![0; rounded + DIRECT_ALIGN];
        }
        let start = buffer.as_ptr().align_offset(DIRECT_ALIGN);
        let Some(aligned) = buffer.get_mut(start..start.saturating_add(rounded)) else {
            return Err(std::io::Error::new(std::io::ErrorKind::OutOfMemory, "no page-aligned buffer for direct I/O"));
        };
        let mut done = 0;
        while done < len {
            match file.read_at(&mut aligned[done..], done as u64) {
                Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file ended early")),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        f(&aligned[..len])
    })
}

/// Decompresses the zstd frames in `encoded` into `dst` with this thread's context; a
/// corrupt frame or one that does not fit `dst` is an error of kind `Other`.
fn unzstd(encoded: &[u8], dst: &mut [u8]) -> std::io::Result<usize> {
    UNZSTD.with_borrow_mut(|context| {
        let context = match context {
            Some(c) => c,
            None => context.insert(
                zstd::bulk::Decompressor::new().map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?,
            ),
        };
        context.decompress_to_buffer(encoded, dst).map_err(|e| std::io::Error::other(e.to_string()))
    })
}

/// Widens the float32 values packed in the first half of `out`'s bytes to float64 in place,
/// from the last: value `i`'s eight bytes cover float32 values `2i` and `2i + 1`, both read
/// already.
fn widen_in_place(out: &mut [f64]) {
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
    for i in (0..bytes.len() / 8).rev() {
        let narrow = f32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
        bytes[8 * i..8 * i + 8].copy_from_slice(&f64::from(narrow).to_le_bytes());
    }
}

/// Cuts a full `? x cc` row-major chunk in `out` down to its `rows x cols` extent, in place.
fn trim_to_extent(out: &mut Vec<f64>, cc: usize, rows: usize, cols: usize) {
    if cols != cc {
        for r in 1..rows {
            out.copy_within(r * cc..r * cc + cols, r * cols);
        }
    }
    out.truncate(rows * cols);
}

/// Reads the metadata file directly to tell arrays from groups and other directories, giving
/// messages that say what was found; returns the regular chunk shape when there is one, and
/// whether chunks are raw little-endian float64 (see [`RawLayout`]).
/// The array's chunk shape (as stored: a shard, for sharded arrays), whether its chunks are
/// raw, and the inner chunk shape of a sharded array (a single `sharding_indexed` codec).
fn inspect_array_metadata(path: &Path) -> StorageResult<(Option<ChunkShape>, Option<Fast>, Option<ChunkShape>)> {
    if !path.exists() {
        return Err(StorageError::NotFound { path: path.to_path_buf() });
    }
    if !path.is_dir() {
        return Err(StorageError::NotAnArray {
            path: path.to_path_buf(),
            reason: "it is a file; pass a Zarr array directory, or a file ending in .npy".into(),
        });
    }
    let read_json = |name: &str| -> StorageResult<Option<serde_json::Value>> {
        let file = path.join(name);
        match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| StorageError::NotAnArray {
                path: path.to_path_buf(),
                reason: format!("{name} is not valid JSON ({e})"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(file, e)),
        }
    };
    let group = |path: &Path| StorageError::NotAnArray {
        path: path.to_path_buf(),
        reason: format!("it is a Zarr group, not an array; pass one of its arrays: {}", list_child_arrays(path)),
    };
    let shape_of = |v: &serde_json::Value| -> Option<(usize, usize)> {
        let s = v.as_array()?;
        match s.as_slice() {
            [a, b] => Some((a.as_u64()? as usize, b.as_u64()? as usize)),
            _ => None,
        }
    };
    if let Some(meta) = read_json("zarr.json")? {
        return match meta.get("node_type").and_then(|v| v.as_str()) {
            Some("array") => {
                let grid = meta.get("chunk_grid");
                let regular = grid.and_then(|g| g.get("name")).and_then(|n| n.as_str()) == Some("regular");
                let chunk_shape =
                    grid.and_then(|g| g.pointer("/configuration/chunk_shape")).filter(|_| regular).and_then(shape_of);
                let inner = match meta.get("codecs").and_then(serde_json::Value::as_array).map(Vec::as_slice) {
                    Some([codec]) if codec.get("name").and_then(|n| n.as_str()) == Some("sharding_indexed") => {
                        codec.pointer("/configuration/chunk_shape").and_then(shape_of)
                    }
                    _ => None,
                };
                Ok((chunk_shape, fast_layout(&meta), inner))
            }
            Some("group") => Err(group(path)),
            other => Err(StorageError::NotAnArray {
                path: path.to_path_buf(),
                reason: format!("zarr.json has node_type {other:?}, expected \"array\""),
            }),
        };
    }
    if let Some(meta) = read_json(".zarray")? {
        return Ok((meta.get("chunks").and_then(shape_of), zstd_layout_v2(&meta).map(Fast::Zstd), None));
    }
    if path.join(".zgroup").exists() {
        return Err(group(path));
    }
    Err(StorageError::NotAnArray {
        path: path.to_path_buf(),
        reason: "the directory has no zarr.json (Zarr v3) or .zarray (Zarr v2)".into(),
    })
}

/// A zero fill value, as v2 and v3 metadata write it (chunks never written read as zeros).
fn is_zero(v: &serde_json::Value) -> bool {
    v.as_f64() == Some(0.0) || v.as_str() == Some("0.0")
}

/// Recognizes v3 arrays outcore decodes itself, with a zero fill value and no storage
/// transformers: float64 chunks of the raw little-endian values, optionally followed by a
/// crc32c, and float64 or float32 chunks of little-endian values compressed by zstd alone.
fn fast_layout(meta: &serde_json::Value) -> Option<Fast> {
    use serde_json::Value;
    let dtype = match meta.get("data_type")?.as_str()? {
        "float64" => Dtype::F64,
        "float32" => Dtype::F32,
        _ => return None,
    };
    if !is_zero(meta.get("fill_value")?)
        || meta.get("storage_transformers").and_then(Value::as_array).is_some_and(|t| !t.is_empty())
    {
        return None;
    }
    let codecs = meta.get("codecs")?.as_array()?;
    let name = |c: &Value| c.get("name").and_then(Value::as_str).map(str::to_owned);
    let (first, rest) = codecs.split_first()?;
    let endian = first.pointer("/configuration/endian").and_then(Value::as_str).unwrap_or("little");
    if name(first)?.as_str() != "bytes" || endian != "little" {
        return None;
    }
    let crc_config_is_default =
        |c: &Value| c.get("configuration").is_none_or(|v| v.as_object().is_some_and(|o| o.is_empty()));
    match rest {
        [] if dtype == Dtype::F64 => Some(Fast::Raw(RawLayout { crc: false })),
        [c] if dtype == Dtype::F64 && name(c).as_deref() == Some("crc32c") && crc_config_is_default(c) => {
            Some(Fast::Raw(RawLayout { crc: true }))
        }
        [c] if name(c).as_deref() == Some("zstd") => Some(Fast::Zstd(dtype)),
        _ => None,
    }
}

/// Recognizes v2 arrays of little-endian float64 or float32 in C order, compressed by zstd
/// alone (zarr-python 3's default for v2), with a zero fill value.
fn zstd_layout_v2(meta: &serde_json::Value) -> Option<Dtype> {
    use serde_json::Value;
    let dtype = match meta.get("dtype")?.as_str()? {
        "<f8" => Dtype::F64,
        "<f4" => Dtype::F32,
        _ => return None,
    };
    let no_filters = meta.get("filters").is_none_or(|f| f.is_null() || f.as_array().is_some_and(Vec::is_empty));
    let zstd = meta.pointer("/compressor/id").and_then(Value::as_str) == Some("zstd");
    let c_order = meta.get("order").and_then(Value::as_str).is_none_or(|o| o == "C");
    (zstd && no_filters && c_order && is_zero(meta.get("fill_value")?)).then_some(dtype)
}

/// True when the file system holding the array at `path` opens its metadata with `O_DIRECT`
/// (tmpfs and some network file systems refuse it).
#[cfg(target_os = "linux")]
fn direct_io_allowed(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    ["zarr.json", ".zarray"]
        .iter()
        .any(|name| std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path.join(name)).is_ok())
}

/// Direct I/O is Linux-only here.
#[cfg(not(target_os = "linux"))]
fn direct_io_allowed(_path: &Path) -> bool {
    false
}

fn list_child_arrays(path: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let p = e.path();
            p.join(".zarray").exists()
                || std::fs::read_to_string(p.join("zarr.json")).is_ok_and(|s| s.contains("\"array\""))
        })
        .map(|e| e.path().display().to_string())
        .collect();
    names.sort();
    if names.is_empty() { "it contains no arrays".into() } else { names.join(", ") }
}

impl ChunkStore for ZarrStore {
    fn grid(&self) -> ChunkGrid {
        self.grid
    }

    fn location(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn dtype(&self) -> Dtype {
        self.element
    }

    fn read_chunk_into(&self, index: ChunkIndex, out: &mut Vec<f64>) -> StorageResult<()> {
        let extent = self.grid.extent(index)?;
        self.announce_next(index);
        if let Some(raw) = self.raw {
            return self.read_raw(index, raw, out);
        }
        if self.zstd {
            return self.read_zstd(index, out);
        }
        if self.sharded {
            let subset = ArraySubset::new_with_ranges(&[
                extent.row0 as u64..(extent.row0 + extent.rows) as u64,
                extent.col0 as u64..(extent.col0 + extent.cols) as u64,
            ]);
            *out = match self.element {
                Dtype::F64 => self.array.retrieve_array_subset::<Vec<f64>>(&subset),
                Dtype::F32 => self
                    .array
                    .retrieve_array_subset::<Vec<f32>>(&subset)
                    .map(|v| v.into_iter().map(f64::from).collect()),
            }
            .map_err(|e| self.map_chunk_error(index, e))?;
            if out.len() != extent.len() {
                return Err(self.corrupted(index, format!("decoded {} values, expected {}", out.len(), extent.len())));
            }
            return Ok(());
        }
        let key = [index.row as u64, index.col as u64];
        let full = match self.element {
            Dtype::F64 => self.array.retrieve_chunk::<Vec<f64>>(&key),
            Dtype::F32 => self.array.retrieve_chunk::<Vec<f32>>(&key).map(|v| v.into_iter().map(f64::from).collect()),
        }
        .map_err(|e| self.map_chunk_error(index, e))?;
        let (cr, cc) = self.chunk_shape;
        if full.len() != cr * cc {
            return Err(StorageError::CorruptedChunk {
                path: self.path.clone(),
                index,
                file: self.chunk_file(index),
                reason: format!("decoded {} values, expected {}", full.len(), cr * cc),
            });
        }
        *out = full;
        trim_to_extent(out, cc, extent.rows, extent.cols);
        Ok(())
    }

    fn write_chunk(&self, index: ChunkIndex, data: &[f64]) -> StorageResult<()> {
        let extent = self.grid.check_chunk_len(index, data.len())?;
        if let Some(raw) = self.raw {
            return self.write_raw(index, raw, data);
        }
        if self.sharded {
            let subset = ArraySubset::new_with_ranges(&[
                extent.row0 as u64..(extent.row0 + extent.rows) as u64,
                extent.col0 as u64..(extent.col0 + extent.cols) as u64,
            ]);
            let result = match self.element {
                Dtype::F64 => self.array.store_array_subset(&subset, data),
                Dtype::F32 => self.array.store_array_subset(&subset, narrow(data)),
            };
            return result.map_err(|e| StorageError::Zarr {
                path: self.path.clone(),
                message: format!("writing chunk {index}: {e}"),
            });
        }
        let key = [index.row as u64, index.col as u64];
        let (cr, cc) = self.chunk_shape;
        let padded;
        let full = if extent.rows == cr && extent.cols == cc {
            data
        } else {
            // Zarr stores edge chunks at full size; pad with the fill value.
            let mut values = vec![0.0f64; cr * cc];
            for (r, src) in data.chunks_exact(extent.cols).enumerate() {
                values[r * cc..r * cc + extent.cols].copy_from_slice(src);
            }
            padded = values;
            &padded
        };
        let result = match self.element {
            Dtype::F64 => self.array.store_chunk(&key, full),
            Dtype::F32 => self.array.store_chunk(&key, narrow(full)),
        };
        result.map_err(|e| match e {
            ArrayError::StorageError(zarrs::storage::StorageError::IOError(e)) => {
                StorageError::io(self.chunk_file(index), std::io::Error::new(e.kind(), e.to_string()))
            }
            other => StorageError::Zarr { path: self.path.clone(), message: format!("writing chunk {index}: {other}") },
        })
    }

    fn describe(&self) -> String {
        let direct = if self.direct { " (read with direct I/O)" } else { "" };
        format!("Zarr array {}{direct}", self.path.display())
    }

    fn streams_rows(&self) -> bool {
        self.raw.is_some()
    }

    fn decodes(&self) -> bool {
        self.raw.is_none()
    }

    fn chunk_rows(&self, index: ChunkIndex) -> StorageResult<Option<Box<dyn ChunkRows + '_>>> {
        let Some(raw) = self.raw else { return Ok(None) };
        let extent = self.grid.extent(index)?;
        let Some((file, file_path)) = self.open_stored(index)? else {
            let values = std::borrow::Cow::Owned(vec![0.0; extent.len()]);
            return Ok(Some(Box::new(SliceRows { values, cols: extent.cols, next: 0 })));
        };
        let (cr, cc) = self.chunk_shape;
        let expected = (cr * cc * size_of::<f64>() + if raw.crc { 4 } else { 0 }) as u64;
        let len = file.metadata().map_err(|e| StorageError::io(&file_path, e))?.len();
        if len != expected {
            return Err(self
                .corrupted(index, format!("the file has {len} bytes; a {cr} x {cc} float64 chunk takes {expected}")));
        }
        Ok(Some(Box::new(RawRows { store: self, index, file, raw, crc: 0, next: 0 })))
    }

    fn write_scratch_bytes(&self) -> u64 {
        // Raw chunks stream through a 64 KiB buffer. Through zarrs: the padded chunk, the
        // encoded bytes and the checksummed copy.
        let (cr, cc) = self.chunk_shape;
        if self.raw.is_some() { 64 << 10 } else { 3 * (cr * cc * size_of::<f64>()) as u64 }
    }

    fn read_scratch_bytes(&self) -> u64 {
        // Raw chunks are read straight into the caller's buffer. Through zarrs each codec
        // consumes its input and returns a new buffer (encoded bytes, checksum-stripped copy,
        // decompressed bytes, the values), so at most two of them, each up to a full chunk (an
        // inner chunk of a sharded array, plus its shard's index), live at once. Measured: a
        // 2000 x 2000 zstd chunk read by one task peaked at 115 MiB RSS, its buffer and two
        // chunks over the process's own.
        let (cr, cc) = self.grid.chunk_shape();
        let index = if self.sharded {
            (self.chunk_shape.0 / cr.max(1) + 1) as u64 * (self.chunk_shape.1 / cc.max(1) + 1) as u64 * 16
        } else {
            0
        };
        if self.raw.is_some() {
            0
        } else if self.zstd {
            // The encoded file, mapped or in the thread's aligned buffer; the decompressor
            // writes into the chunk itself.
            let encoded = cr * cc * self.element.size();
            (encoded + encoded / 128 + 3 * DIRECT_ALIGN) as u64
        } else {
            2 * (cr * cc * size_of::<f64>()) as u64 + index
        }
    }
}
