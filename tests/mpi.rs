//! Data-parallel training over MPI ranks (feature `mpi`): the examples launched with `mpirun -n R`
//! give bitwise the parameters and metrics of one process, resume on another number of ranks, and
//! end the job with a message naming the rank when one rank fails or dies. Covered: the classical
//! chain, the vibrational ensemble (with a resume on fewer ranks), the quantum dot, the electron
//! gas and the lithium crystal.
//!
//! Needs an MPI implementation (`mpirun` on the PATH) and the examples built with the feature:
//! `.ci/run` installs OpenMPI when it is missing and runs
//! `cargo build --release --features mpi --examples && cargo test --release --features mpi --test mpi`.
#![cfg(feature = "mpi")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target profile directory");
    let p = dir.join("examples").join(name);
    assert!(p.exists(), "{} is missing: build the examples with `cargo build --release --features mpi --examples` first", p.display());
    p
}

/// `mpirun -n ranks EXAMPLE args` (OpenMPI: as root and oversubscribed, allowed through its
/// environment variables, which MPICH ignores).
fn mpirun(ranks: usize, name: &str, args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-n", &ranks.to_string()]).arg(example(name)).args(args).current_dir(cwd);
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1").env("OMPI_MCA_rmaps_base_oversubscribe", "1");
    c
}

fn check(out: Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed ({}):\n{}\n{err}", out.status, String::from_utf8_lossy(&out.stdout));
    err
}

/// One process, no launcher.
fn single(name: &str, args: &[&str], out: &str, cwd: &Path) {
    check(Command::new(example(name)).args(args).args(["--out", out]).current_dir(cwd).output().unwrap(), &format!("{name} (one process)"));
}

/// `ranks` ranks; returns rank 0's standard error.
fn parallel(ranks: usize, name: &str, args: &[&str], cwd: &Path) -> String {
    let err = check(mpirun(ranks, name, args, cwd).output().expect("mpirun starts (is an MPI implementation installed?)"), &format!("{name} on {ranks} ranks"));
    if ranks > 1 {
        assert!(err.contains(&format!("ncT: {ranks} MPI ranks")), "the example did not join an MPI job of {ranks} ranks (built without --features mpi?):\n{err}");
    }
    err
}

/// A JSON value without its wall-clock fields (`seconds`, `eval_seconds`, ...) and `resumed_from`.
fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.ends_with("seconds") && k != "resumed_from");
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

fn json(p: &Path) -> Value {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap();
    strip(&mut v);
    v
}

/// A safetensors checkpoint as (header, tensor bytes): its metadata map is written in hash order,
/// so the header is compared as JSON and the tensor data byte for byte.
fn checkpoint(p: &Path) -> (Value, Vec<u8>) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&b[8..8 + n]).unwrap(), b[8 + n..].to_vec())
}

fn metrics(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| {
        let mut v: Value = serde_json::from_str(l).unwrap();
        strip(&mut v);
        v
    }).collect()
}

/// Summary, checkpoint and metrics of two run directories are the same bit for bit (wall-clock
/// times aside).
fn assert_same_run(a: &Path, b: &Path) {
    assert_eq!(json(&a.join("summary.json")), json(&b.join("summary.json")), "summary.json of {} and {}", a.display(), b.display());
    assert!(checkpoint(&a.join("checkpoint.safetensors")) == checkpoint(&b.join("checkpoint.safetensors")), "checkpoints of {} and {} differ", a.display(), b.display());
    assert_eq!(metrics(&a.join("metrics.jsonl")), metrics(&b.join("metrics.jsonl")), "metrics of {} and {}", a.display(), b.display());
}

#[test]
fn classical_variational_run_is_bitwise_independent_of_the_number_of_ranks() {
    let dir = tempfile::tempdir().unwrap();
    // 160 samples in 10 chunks of 16: shares of 10, 5 + 5 and 4 + 3 + 3 chunks.
    let flags = ["--n", "6", "--model", "realnvp", "--couplings", "2", "--hidden", "16,16", "--steps", "40", "--batch", "160", "--eval-samples", "500", "--checkpoint-every", "10", "--quiet"];
    single("harmonic_chain", &flags, "one", dir.path());
    for ranks in [1, 2, 3] {
        let out = format!("r{ranks}");
        let err = parallel(ranks, "harmonic_chain", &[&flags[..], &["--out", &out]].concat(), dir.path());
        assert_same_run(&dir.path().join("one"), &dir.path().join(&out));
        if ranks > 1 {
            assert!(err.contains("all-gathers"), "rank 0 reports the communication time:\n{err}");
        }
    }
    // Only rank 0 writes: the run directory holds what one process writes.
    let names = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(dir.path().join(d)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names("r3"), names("one"));
}

#[test]
fn vibrational_ensemble_is_bitwise_independent_of_ranks_and_resumes_on_fewer() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--system", "h2o", "--states", "2", "--couplings", "2", "--hidden", "8", "--steps", "12", "--batch", "64", "--eval-samples", "400", "--quiet"];
    single("vibrational", &flags, "one", dir.path());
    for ranks in [1, 2, 3] {
        let out = format!("r{ranks}");
        parallel(ranks, "vibrational", &[&flags[..], &["--out", &out]].concat(), dir.path());
        assert_same_run(&dir.path().join("one"), &dir.path().join(&out));
    }
    // Started on 3 ranks, stopped after 5 steps, resumed on 2: the uninterrupted run's result.
    single("vibrational", &[&flags[..], &["--stop-at", "5"]].concat(), "one_part", dir.path());
    check(Command::new(example("vibrational")).args(["--resume", "one_part", "--quiet"]).current_dir(dir.path()).output().unwrap(), "one-process resume");
    parallel(3, "vibrational", &[&flags[..], &["--out", "part", "--stop-at", "5"]].concat(), dir.path());
    parallel(2, "vibrational", &["--resume", "part", "--quiet"], dir.path());
    assert_same_run(&dir.path().join("one_part"), &dir.path().join("part"));
    assert_eq!(json(&dir.path().join("part/summary.json")), json(&dir.path().join("one/summary.json")), "the resumed run equals the uninterrupted one");
}

#[test]
fn quantum_thermal_drivers_are_bitwise_independent_of_the_number_of_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let dot = ["--particles", "3", "--kappa", "0.5", "--beta", "2", "--delta-e", "1", "--layers", "1", "--steps", "6", "--batch", "32", "--eval-samples", "400", "--report-states", "1", "--quiet"];
    let gas = ["--particles", "2", "--rs", "1", "--emax", "9", "--steps", "4", "--batch", "32", "--eval-samples", "400", "--quiet"];
    // Lithium with DeepPot-SE: the potentials of the batch go through the backend's shares.
    let crystal = ["--couplings", "2", "--hidden", "8", "--steps", "4", "--batch", "32", "--eval-samples", "64", "--quiet"];
    for (name, flags) in [("quantum_dot", &dot[..]), ("electron_gas", &gas[..]), ("crystal", &crystal[..])] {
        let one = format!("{name}_one");
        single(name, flags, &one, dir.path());
        let two = format!("{name}_two");
        parallel(2, name, &[flags, &["--out", &two]].concat(), dir.path());
        assert_same_run(&dir.path().join(&one), &dir.path().join(&two));
    }
}

fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    None
}

/// The process of rank `rank` among the descendants of `launcher` (OpenMPI and MPICH put the
/// rank in the environment of every rank).
fn rank_pid(launcher: u32, rank: usize) -> Option<u32> {
    let parent = |pid: u32| -> Option<u32> { std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok() };
    let mut pids: Vec<u32> = std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    pids.sort();
    pids.into_iter().find(|&pid| {
        let mut p = pid;
        let mut below = false;
        for _ in 0..8 {
            match parent(p) {
                Some(q) if q == launcher => {
                    below = true;
                    break;
                }
                Some(q) if q > 1 => p = q,
                _ => break,
            }
        }
        below
            && std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|&b| b == 0).any(|kv| kv == format!("OMPI_COMM_WORLD_RANK={rank}").as_bytes() || kv == format!("PMI_RANK={rank}").as_bytes())
            })
    })
}

#[test]
fn a_rank_that_dies_ends_the_job_with_its_rank_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = mpirun(2, "harmonic_chain", &["--n", "8", "--steps", "1000000", "--batch", "256", "--quiet", "--out", "long"], dir.path()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("mpirun starts");
    // Wait until the job is training (its first checkpoint exists), then kill rank 1.
    let t0 = Instant::now();
    let victim = loop {
        assert!(t0.elapsed() < Duration::from_secs(60), "the job did not start within 60 s");
        if dir.path().join("long/checkpoint.safetensors").exists() {
            if let Some(pid) = rank_pid(child.id(), 1) {
                break pid;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap().success());
    let status = wait_for(&mut child, Duration::from_secs(60)).expect("the surviving rank exits within 60 s of rank 1's death (no hang)");
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("rank 1"), "the launcher names the dead rank:\n{err}");
}

#[test]
fn an_error_on_any_rank_ends_the_job_naming_the_rank() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("busy")).unwrap();
    std::fs::write(dir.path().join("busy/notes.txt"), "not a run").unwrap();
    // Rank 0 refuses the non-empty directory; rank 1 would go on to train and wait for it.
    let mut child = mpirun(2, "harmonic_chain", &["--n", "4", "--steps", "1000000", "--quiet", "--out", "busy"], dir.path()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let status = wait_for(&mut child, Duration::from_secs(60)).expect("the job ends within 60 s (no hang)");
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("rank 0 of 2") && err.contains("is not empty"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("busy/notes.txt")).unwrap(), "not a run");
}
