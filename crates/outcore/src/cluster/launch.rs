//! What the launcher that started this process (`mpirun`, `srun`, a PMI launcher) says of the
//! job.

/// Environment variables by which launchers say how many tasks they started, in the order
/// read: Open MPI's `mpirun`, PMI-1/2 launchers (MPICH's hydra, `srun --mpi=pmi2`), Slurm's
/// `srun` (set for the job step, not for a batch script itself, which is one process).
const TASK_COUNTS: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"];

/// Variables present only in a process some launcher started as one of its tasks.
const LAUNCHED: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMIX_RANK", "SLURM_STEP_NUM_TASKS"];

/// The number of tasks the launcher that started this process says it started, and the
/// variable that says it; `None` when no launcher started this process (a plain run). PMIx
/// launchers name no count: 1 then, and the world's size says the rest.
pub fn launcher_tasks() -> Option<(&'static str, usize)> {
    if !LAUNCHED.iter().any(|v| std::env::var_os(v).is_some()) {
        return None;
    }
    let counted = TASK_COUNTS.iter().find_map(|v| std::env::var(v).ok().and_then(|n| n.parse().ok()).map(|n| (*v, n)));
    Some(counted.unwrap_or(("PMIX_RANK", 1)))
}
