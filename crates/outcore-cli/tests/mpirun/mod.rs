//! Open MPI's `mpirun` for the tests that start ranks (`mpi.rs`, `dashboard.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `mpirun` on PATH, or a loud skip (a failure under `OUTCORE_REQUIRE_MPI`).
pub(crate) fn mpirun() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("mpirun"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("OUTCORE_REQUIRE_MPI").is_none(),
            "OUTCORE_REQUIRE_MPI is set but no mpirun is on PATH: install openmpi-bin"
        );
        eprintln!("SKIPPED MPI test: no mpirun on PATH (install openmpi-bin to run it)");
    }
    found
}

/// `mpirun` with the options these tests need: root allowed (CI runs as root), more ranks
/// than cores, and no binding (a bound rank sees one core).
pub(crate) fn launcher(mpirun: &Path) -> Command {
    let mut cmd = Command::new(mpirun);
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .args(["--bind-to", "none"]);
    cmd
}

/// [`launcher`], with ten seconds where Open MPI's default is one between the steps that stop
/// a job (`mpirun` 4.1 sends SIGCONT, SIGTERM a step later, SIGKILL another step later): for
/// the tests of each rank's own exit, which must not depend on whether a debug build on a
/// loaded machine manages it within a second (once, in CI, one rank's spill directory was
/// left that way). Every job that fails then takes twenty seconds to end, even when its ranks
/// exited at once: `mpirun` waits out both steps.
pub(crate) fn patient_launcher(mpirun: &Path) -> Command {
    let mut cmd = launcher(mpirun);
    cmd.env("OMPI_MCA_odls_base_sigkill_timeout", "10");
    cmd
}

/// Whether process `pid` has ended (gone, or a zombie not reaped yet).
pub(crate) fn exited(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |stat| stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) == Some("Z"))
}

/// The processes `parent` started (the ranks, under `mpirun`).
pub(crate) fn children(parent: u32) -> Vec<i32> {
    let parent = parent.to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // pid (comm) state ppid ...: after the last ')'.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)) == Some(parent.as_str())
        })
        .collect()
}
