//! zstd chunks (zarr-python's default, v3 and v2): the file is read into the thread's
//! page-aligned buffer (with or without direct I/O) and decompressed straight into the
//! caller's buffer, float32 widened in place. No buffer is allocated per chunk.

use super::file::{ChunkFile, read_whole};
use super::meta::ChunkShape;
use super::raw::trim_to_extent;
use crate::error::StorageResult;
use crate::grid::ChunkExtent;
use crate::store::Dtype;

thread_local! {
    /// A thread's zstd decompression context, reused for every chunk.
    static UNZSTD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// The most bytes a zstd chunk of `want` decoded bytes may take: zstd's worst case for
/// incompressible input is a few bytes per 128 KiB block.
pub(super) fn max_encoded_len(want: usize) -> usize {
    want + want / 128 + 4096
}

/// Reads the zstd chunk in `chunk` (of `element` values, `chunk_shape` as stored) into `out`,
/// cut to `extent`.
pub(super) fn read(
    chunk: ChunkFile<'_>,
    element: Dtype,
    chunk_shape: ChunkShape,
    extent: ChunkExtent,
    out: &mut Vec<f64>,
) -> StorageResult<()> {
    let (cr, cc) = chunk_shape;
    let len = chunk.len()?;
    let want = cr * cc * element.size();
    if len == 0 || len > max_encoded_len(want) as u64 {
        return Err(chunk.corrupted(format!("the file has {len} bytes, not a zstd {cr} x {cc} chunk")));
    }
    out.resize(cr * cc, 0.0);
    let dst = &mut bytemuck::cast_slice_mut::<f64, u8>(&mut out[..])[..want];
    // Read, not mapped: a chunk file truncated or rewritten while the run reads it is then a
    // short read or a decode error, never a SIGBUS (a copy into a reused buffer costs little).
    let decoded = read_whole(&chunk.file, len as usize, |encoded| unzstd(encoded, dst));
    match decoded {
        Ok(n) if n == want => {}
        Ok(n) => return Err(chunk.corrupted(format!("decoded {n} bytes, expected {want}"))),
        Err(e) if e.kind() == std::io::ErrorKind::Other => return Err(chunk.corrupted(e.to_string())),
        Err(e) => return Err(chunk.io(e)),
    }
    if element == Dtype::F32 {
        widen_in_place(out);
    }
    trim_to_extent(out, cc, extent.rows, extent.cols);
    Ok(())
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
