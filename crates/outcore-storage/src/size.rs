//! Human-readable byte sizes: `256MiB` in, `12.0 MiB` out.

use crate::error::{StorageError, StorageResult};

/// Parses a size such as `256MiB`, `1.5 GiB`, `64MB` or `4096` (bytes).
///
/// Binary (`KiB`, `MiB`, `GiB`, `TiB`) and decimal (`KB`, `MB`, `GB`, `TB`) units are accepted,
/// case-insensitively. Zero is refused: a memory limit of nothing cannot run anything.
pub fn parse_size(text: &str) -> StorageResult<u64> {
    let trimmed = text.trim();
    let size: bytesize::ByteSize = trimmed.parse().map_err(|reason: String| StorageError::InvalidArgument {
        what: "size",
        reason: format!("{text:?} is not a size ({reason}); write it like 256MiB, 1.5GiB or 64MB"),
    })?;
    if size.as_u64() == 0 {
        return Err(StorageError::InvalidArgument {
            what: "size",
            reason: format!("{text:?} is zero; give a positive size such as 256MiB"),
        });
    }
    Ok(size.as_u64())
}

/// Formats a byte count with binary units and one decimal, e.g. `12.0 MiB`.
pub fn format_size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_units() {
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("4 MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("64MB").unwrap(), 64_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
    }

    #[test]
    fn refuses_garbage_and_zero_with_a_hint() {
        let err = parse_size("lots").unwrap_err().to_string();
        assert!(err.contains("\"lots\"") && err.contains("256MiB"), "{err}");
        let err = parse_size("0MiB").unwrap_err().to_string();
        assert!(err.contains("zero"), "{err}");
    }

    #[test]
    fn formats_with_binary_units() {
        assert_eq!(format_size(12 << 20), "12.0 MiB");
        assert_eq!(format_size(512), "512 B");
    }
}
