//! What an array's metadata says, read directly from `zarr.json` or `.zarray` before zarrs
//! opens it: array or group (with messages that say what was found), the regular chunk shape,
//! a sharded array's inner chunks, and whether chunks are in one of the encodings outcore
//! decodes itself ([`OwnCodec`]).

use std::path::Path;

use crate::error::{StorageError, StorageResult};
use crate::store::Dtype;

/// `(chunk rows, chunk columns)`.
pub(super) type ChunkShape = (usize, usize);

/// Chunk encodings outcore reads itself instead of through zarrs' codec pipeline, which
/// allocates a fresh buffer per codec step (each one page-faulted in again for every chunk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OwnCodec {
    /// Raw little-endian float64.
    Raw(RawLayout),
    /// zstd frames of little-endian values of this type (zarr-python's default, v3 and v2),
    /// decoded straight into the caller's buffer from the file read into a reused buffer.
    Zstd(Dtype),
}

/// Chunks stored as raw little-endian f64, with or without a trailing crc32c.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RawLayout {
    /// A crc32c of the chunk's bytes follows them.
    pub(super) crc: bool,
}

/// What the metadata says of an array's chunks.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    /// The regular chunk shape, as stored (a shard, for sharded arrays); `None` when the grid
    /// is not regular.
    pub(super) chunk_shape: Option<ChunkShape>,
    /// An encoding outcore decodes itself, if the chunks are in one.
    pub(super) own_codec: Option<OwnCodec>,
    /// The inner chunk shape of a sharded array (a single `sharding_indexed` codec).
    pub(super) inner: Option<ChunkShape>,
}

/// Reads the metadata file directly to tell arrays from groups and other directories, giving
/// messages that say what was found, and returns the array's chunk [`Layout`].
pub(super) fn inspect_array_metadata(path: &Path) -> StorageResult<Layout> {
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
                Ok(Layout { chunk_shape, own_codec: own_codec_v3(&meta), inner })
            }
            Some("group") => Err(group(path)),
            other => Err(StorageError::NotAnArray {
                path: path.to_path_buf(),
                reason: format!("zarr.json has node_type {other:?}, expected \"array\""),
            }),
        };
    }
    if let Some(meta) = read_json(".zarray")? {
        let chunk_shape = meta.get("chunks").and_then(shape_of);
        return Ok(Layout { chunk_shape, own_codec: zstd_layout_v2(&meta).map(OwnCodec::Zstd), inner: None });
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
fn own_codec_v3(meta: &serde_json::Value) -> Option<OwnCodec> {
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
        [] if dtype == Dtype::F64 => Some(OwnCodec::Raw(RawLayout { crc: false })),
        [c] if dtype == Dtype::F64 && name(c).as_deref() == Some("crc32c") && crc_config_is_default(c) => {
            Some(OwnCodec::Raw(RawLayout { crc: true }))
        }
        [c] if name(c).as_deref() == Some("zstd") => Some(OwnCodec::Zstd(dtype)),
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

/// The arrays directly inside the group at `path`, for messages.
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
