//! How arrays are read and created: the read mode, compression, and the codec chains outcore
//! writes.

use std::path::Path;
use std::sync::Arc;

use zarrs::array::codec::api::BytesToBytesCodecTraits;
use zarrs::array::codec::{
    BloscCodec, BloscCompressionLevel, BloscCompressor, BloscShuffleMode, Crc32cCodec, GzipCodec, ZstdCodec,
};

use crate::error::{StorageError, StorageResult};
use crate::store::Dtype;

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

/// The bytes-to-bytes codecs `options` asks for: compression, then the checksum.
pub(super) fn codecs(options: &ZarrOptions, path: &Path) -> StorageResult<Vec<Arc<dyn BytesToBytesCodecTraits>>> {
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
