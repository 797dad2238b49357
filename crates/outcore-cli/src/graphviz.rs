//! `--visualize`: the task graph as Graphviz DOT source, or a picture rendered by Graphviz's
//! `dot`.

use std::io::Write;
use std::process::{Command, Stdio};

use outcore::storage::StorageError;
use outcore::{Error, Knob, Result};

use crate::args::GraphFile;

/// Writes the task graph `dot` to `file`.
pub(crate) fn write_visualization(file: &GraphFile, dot: &str) -> Result<()> {
    let path = &file.path;
    let io = |e: std::io::Error| Error::from(StorageError::io(path, e));
    let Some(format) = file.rendered else { return std::fs::write(path, dot).map_err(io) };
    let mut child =
        Command::new("dot").arg(format!("-T{format}")).arg("-o").arg(path).stdin(Stdio::piped()).spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::invalid(
                    Knob::Program("--visualize"),
                    format!("rendering {format} needs Graphviz's `dot`, which is not installed (apt install graphviz); or write a .dot file"),
                )
            } else {
                io(e)
            }
        })?;
    child.stdin.take().map(|mut stdin| stdin.write_all(dot.as_bytes())).transpose().map_err(io)?;
    let status = child.wait().map_err(io)?;
    if !status.success() {
        return Err(Error::invalid(
            Knob::Program("--visualize"),
            format!("Graphviz's dot failed ({status}) writing {}", path.display()),
        ));
    }
    Ok(())
}
