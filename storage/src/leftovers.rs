//! Leftovers of processes that were killed: partial outputs and spill directories carry their
//! process's id in their names, so a later run can tell whose they are and remove those whose
//! process no longer runs.

use std::path::{Path, PathBuf};

/// Whether process `pid` still runs on this machine (a process we may not signal counts as
/// running: it is someone else's, and so are its files).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes the entries of `dir` named `{prefix}{pid}{rest}`, where `rest` is empty or starts
/// with `-` or `.`, whose process `pid` is not this one and no longer runs. Returns what it
/// removed. Entries it cannot read or remove are left alone: this is housekeeping, never a
/// reason to fail.
pub fn remove_leftovers(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (pid, tail) = rest.split_at(digits);
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if !(tail.is_empty() || tail.starts_with(['-', '.'])) || pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let path = entry.path();
        let gone = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_what_dead_processes_left_and_keeps_the_living_ones() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited: a child we waited for.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let mine = std::process::id();
        let names = [
            format!(".out.partial-{dead}-0"),
            format!(".out.partial-{mine}-0"),
            format!(".out.partial-{dead}x"),
            "outcore-spill-1-abc".to_string(),
            "unrelated".to_string(),
        ];
        for n in &names {
            std::fs::create_dir(dir.path().join(n)).unwrap();
            std::fs::write(dir.path().join(n).join("f"), "x").unwrap();
        }
        let removed = remove_leftovers(dir.path(), ".out.partial-");
        assert_eq!(removed, vec![dir.path().join(&names[0])]);
        assert!(process_alive(mine) && process_alive(1), "this process and init run");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }
}
