//! zarr-python reads what outcore writes, and outcore reads what zarr-python writes with the
//! same values. Runs when OUTCORE_PYTHON names a Python with `zarr` and `numpy` (`.ci/run`
//! installs one and sets OUTCORE_REQUIRE_PYTHON, so CI fails rather than skips without it);
//! elsewhere, without one, it says loudly that it skipped.

use std::process::Command;

fn python() -> Option<String> {
    let required = std::env::var_os("OUTCORE_REQUIRE_PYTHON").is_some();
    match std::env::var("OUTCORE_PYTHON") {
        Ok(python) => {
            let works = Command::new(&python).args(["-c", "import zarr, numpy"]).status().is_ok_and(|s| s.success());
            assert!(works, "OUTCORE_PYTHON={python} cannot import zarr and numpy");
            Some(python)
        }
        Err(_) => {
            assert!(!required, "OUTCORE_REQUIRE_PYTHON is set but OUTCORE_PYTHON is not: the interop test cannot run");
            None
        }
    }
}

#[test]
fn zarr_python_reads_large_svd_output() {
    let Some(python) = python() else {
        eprintln!("SKIPPED zarr_python interop: set OUTCORE_PYTHON to a Python with zarr>=3 and numpy");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("svd");
    let input = dir.path().join("a.zarr");
    let status = Command::new(env!("CARGO_BIN_EXE_large-svd"))
        .args(["generate", "--rows", "3001", "--cols", "9", "--chunk-rows", "500", "--seed", "5", "--json", "--output"])
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new(env!("CARGO_BIN_EXE_large-svd"))
        .args(["tsqr", "--json", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let script = r#"
import sys, numpy as np, zarr
a = zarr.open_array(sys.argv[1], mode="r")[:]
u = zarr.open_array(sys.argv[2] + "/u.zarr", mode="r")[:]
s = zarr.open_array(sys.argv[2] + "/s.zarr", mode="r")[:]
v = zarr.open_array(sys.argv[2] + "/v.zarr", mode="r")[:]
assert a.shape == (3001, 9) and u.shape == (3001, 9) and s.shape == (9,) and v.shape == (9, 9), (a.shape, u.shape, s.shape, v.shape)
err = np.linalg.norm(a - (u * s) @ v.T) / np.linalg.norm(a)
ref = np.linalg.svd(a, compute_uv=False)
assert err < 1e-13, err
assert np.allclose(s, ref, rtol=1e-12, atol=0), (s, ref)
print("ok", err)
"#;
    let output = Command::new(&python).arg("-c").arg(script).arg(&input).arg(&out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ok"));
}
