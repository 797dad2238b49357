//! Leftovers of processes that were killed: partial outputs and spill directories carry their
//! process's id and machine in their names ([`process_tag`]), so a later run can tell whose they
//! are and remove those whose process no longer runs. Only this machine's are judged: on storage
//! shared by the ranks of a job, another machine's process ids mean nothing here.

use std::path::{Path, PathBuf};

/// Spill directories are named `outcore-spill-PID@HOST-RANDOM` (and so are the raw copies a
/// decoded store keeps, which are spill files of another kind).
pub const SPILL_PREFIX: &str = "outcore-spill-";

/// Whether process `pid` still runs on this machine (a process we may not signal counts as
/// running: it is someone else's, and so are its files).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This machine's host name as a token of letters, digits and `_` (empty where unknown).
fn host_token() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = if ok { String::from_utf8_lossy(&buf[..len]).into_owned() } else { String::new() };
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// What names this process's leftovers: `{pid}@{host}`.
pub fn process_tag() -> String {
    format!("{}@{}", std::process::id(), host_token())
}

/// Removes the entries of `dir` named `{prefix}{pid}@{host}{rest}` (or, from older versions,
/// `{prefix}{pid}{rest}`), where `rest` is empty or starts with `-` or `.`, whose process `pid`
/// ran on this machine, is not this one and no longer runs. Returns what it removed. Entries it
/// cannot read or remove are left alone: this is housekeeping, never a reason to fail.
pub fn remove_leftovers(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let host = host_token();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (pid, mut tail) = rest.split_at(digits);
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if let Some(tagged) = tail.strip_prefix('@') {
            let end = tagged.find(['-', '.']).unwrap_or(tagged.len());
            if tagged[..end] != host {
                continue;
            }
            tail = &tagged[end..];
        }
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
        let host = host_token();
        let names = [
            format!(".out.partial-{dead}@{host}-0"),
            format!(".out.partial-{dead}-1"),
            format!(".out.partial-{mine}@{host}-0"),
            format!(".out.partial-{dead}@another_machine-0"),
            format!(".out.partial-{dead}x"),
            "outcore-spill-1-abc".to_string(),
            "unrelated".to_string(),
        ];
        for n in &names {
            std::fs::create_dir(dir.path().join(n)).unwrap();
            std::fs::write(dir.path().join(n).join("f"), "x").unwrap();
        }
        let mut removed = remove_leftovers(dir.path(), ".out.partial-");
        removed.sort();
        let mut expected = vec![dir.path().join(&names[0]), dir.path().join(&names[1])];
        expected.sort();
        assert_eq!(removed, expected, "this machine's dead process's, tagged or not; not another machine's");
        assert!(process_alive(mine) && process_alive(1), "this process and init run");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 5);
        assert!(process_tag().starts_with(&format!("{mine}@")));
    }
}
