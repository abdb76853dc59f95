//! The examples at sizes chosen on the command line (runtime dimensions), run as a user would:
//! the release binaries that `cargo test` builds beside the test executables.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target profile directory");
    let p = dir.join("examples").join(name);
    assert!(p.exists(), "{} is missing: `cargo test` builds the examples before the tests", p.display());
    p
}

fn run(name: &str, args: &[&str], cwd: &std::path::Path) -> Value {
    let out = Command::new(example(name)).args(args).current_dir(cwd).output().expect("example runs");
    assert!(out.status.success(), "{name} {args:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let i = args.iter().position(|a| *a == "--out").expect("--out given");
    let text = std::fs::read_to_string(cwd.join(args[i + 1]).join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json parses")
}

#[test]
fn harmonic_chain_of_any_length() {
    let dir = tempfile::tempdir().unwrap();
    let s = run("harmonic_chain", &["--n", "12", "--kappa", "2.5", "--model", "linear", "--quiet", "--out", "chain12"], dir.path());
    // Closed form: F = -sum_k ln(2 pi / (beta omega_k)) / beta, omega_k = 2 sqrt(kappa) sin(k pi / (2 (n + 1))).
    let (n, kappa) = (12.0f64, 2.5f64);
    let exact: f64 = -(1..=12).map(|k| (2.0 * std::f64::consts::PI / (2.0 * kappa.sqrt() * (k as f64 * std::f64::consts::PI / (2.0 * (n + 1.0))).sin())).ln()).sum::<f64>();
    assert!((exact - (-15.274306)).abs() < 1e-6, "{exact}");
    let f_var = s["F_var"].as_f64().unwrap();
    assert!((f_var - exact).abs() < 0.02, "F_var = {f_var}, exact {exact}");
    assert_eq!(s["n"], 12);
    // Sizes that cannot work are refused with the flag named.
    let out = Command::new(example("harmonic_chain")).args(["--n", "0", "--quiet"]).current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--n"));
}

#[test]
fn vibrational_force_field_file_equals_builtin_molecule() {
    // From a directory without any data folder: the molecules ship with the crate.
    let dir = tempfile::tempdir().unwrap();
    let args = ["--states", "2", "--couplings", "2", "--hidden", "8", "--steps", "15", "--batch", "64", "--eval-samples", "400", "--quiet"];
    let builtin = run("vibrational", &[&["--system", "h2o", "--out", "builtin"][..], &args[..]].concat(), dir.path());
    let copy = dir.path().join("water.json");
    std::fs::write(&copy, include_str!("../ncT-models/data/vibrational/h2o.json")).unwrap();
    let file = run("vibrational", &[&["--force-field", copy.to_str().unwrap(), "--system", "h2o", "--out", "file"][..], &args[..]].concat(), dir.path());
    for key in ["energies", "energies_err", "kinetic", "potential"] {
        assert_eq!(builtin[key], file[key], "{key}");
        assert!(builtin[key].as_array().is_some_and(|a| a.len() == 2), "{key}: {}", builtin[key]);
    }
    // A force field of another size (any number of modes) runs the same way.
    let two = dir.path().join("two.json");
    std::fs::write(&two, r#"{"molecule": "toy", "n_modes": 5, "harmonic_frequencies_cm": [1000, 1200, 1500, 2000, 3000], "cubic": [[0, 1, 2, 10.0]], "quartic": [[0, 0, 1, 1, 1.0]]}"#).unwrap();
    let toy = run("vibrational", &[&["--force-field", two.to_str().unwrap(), "--out", "toy"][..], &args[..]].concat(), dir.path());
    let zpe = toy["energies"][0].as_f64().unwrap();
    assert!((zpe - 4350.0).abs() < 50.0, "toy ZPE {zpe} (harmonic 4350)");
}

/// Runs an example that must fail; returns its stderr.
fn fails(name: &str, args: &[&str], cwd: &std::path::Path) -> String {
    let out = Command::new(example(name)).args(args).current_dir(cwd).output().expect("example runs");
    assert!(!out.status.success(), "{name} {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `name` with `flags` in full (`--out tag`) and stopped after `stop` steps then resumed
/// (`--out tag-part`); asserts that the two summaries agree in `keys` and returns the full one.
fn resumes_bitwise(name: &str, flags: &[&str], tag: &str, stop: &str, keys: &[&str], cwd: &std::path::Path) -> Value {
    let part = format!("{tag}-part");
    let full = run(name, &[flags, &["--out", tag]].concat(), cwd);
    let out = Command::new(example(name)).args([flags, &["--out", &part, "--stop-at", stop]].concat()).current_dir(cwd).output().unwrap();
    assert!(out.status.success());
    let resumed = run(name, &["--resume", &part, "--quiet", "--out", &part], cwd);
    for key in keys {
        assert_eq!(full[key], resumed[key], "{name} {tag}: {key}");
    }
    full
}

#[test]
fn nonsense_never_ends_as_a_result() {
    let dir = tempfile::tempdir().unwrap();
    // The H2O surface with a far too large step: the energy explodes and the walkers fall into the
    // holes of the surface. A clear stop, no summary.
    let e = fails("vibrational", &["--system", "h2o", "--lr", "0.3", "--steps", "30", "--quiet", "--out", "holes"], dir.path());
    assert!((e.contains("walkers were rejected") || e.contains("exploded")) && e.contains("--lr"), "{e}");
    assert!(!dir.path().join("holes/summary.json").exists());
    // A learning rate that makes the classical loss explode, even with rollbacks.
    let e = fails("harmonic_chain", &["--lr", "50", "--steps", "300", "--on-nan", "rollback", "--quiet", "--out", "boom"], dir.path());
    assert!(e.contains("exploded") || e.contains("non-finite"), "{e}");
    assert!(!dir.path().join("boom/summary.json").exists());
    // Flags that would silently train nothing, and empty statistics.
    let e = fails("vibrational", &["--system", "h2o", "--states", "5", "--batch", "6", "--quiet"], dir.path());
    assert!(e.contains("--batch") && e.contains("2 x --states"), "{e}");
    let e = fails("alanine", &["--stride", "0", "--quiet"], dir.path());
    assert!(e.contains("--stride"), "{e}");
    let e = fails("alanine", &["--valid-fraction", "0", "--quiet"], dir.path());
    assert!(e.contains("--valid-fraction"), "{e}");
    // Sizes that cannot fit are refused with the estimate, not by an aborted allocation.
    let e = fails("vibrational", &["--system", "h2o", "--batch", "1000000000", "--quiet"], dir.path());
    assert!(e.contains("--batch") && e.contains("GiB"), "{e}");
    let e = fails("vibrational", &["--system", "h2o", "--temperature", "100", "--levels", "100000", "--quiet"], dir.path());
    assert!(e.contains("--levels") && e.contains("GiB"), "{e}");
    // Benchmarks refuse zero sizes instead of panicking.
    for (bench, flag) in [("bench_step", "--repeats"), ("bench_laplacian", "--couplings"), ("bench_compare", "--repeats"), ("bench_gemm", "--millis")] {
        let e = fails(bench, &[flag, "0"], dir.path());
        assert!(e.contains(flag) && !e.contains("panicked"), "{e}");
    }
}

#[test]
fn resume_with_the_directory_alone_and_with_a_smaller_learning_rate() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--n", "6", "--model", "realnvp", "--couplings", "2", "--hidden", "8,8", "--steps", "80", "--lr", "0.01", "--quiet"];
    let full = run("harmonic_chain", &[&flags[..], &["--out", "full"]].concat(), dir.path());
    let out = Command::new(example("harmonic_chain")).args([&flags[..], &["--out", "part", "--stop-at", "30"]].concat()).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success());
    // Every model flag comes from the stored config.
    let resumed = run("harmonic_chain", &["--resume", "part", "--quiet", "--out", "part"], dir.path());
    for key in ["F_var", "F_var_err", "F_is", "omega", "steps", "mode_overlap"] {
        assert_eq!(full[key], resumed[key], "{key}");
    }
    // Seconds count the whole run: they never go backwards across the resume.
    let text = std::fs::read_to_string(dir.path().join("part/metrics.jsonl")).unwrap();
    let secs: Vec<f64> = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["seconds"].as_f64().unwrap()).collect();
    assert!(secs.windows(2).all(|w| w[1] >= w[0]) && resumed["seconds"].as_f64().unwrap() >= secs[29]);
    // A model flag that differs is refused; a smaller learning rate is accepted and recorded.
    let out = Command::new(example("harmonic_chain")).args(["--resume", "part", "--n", "7", "--quiet"]).current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("`n`"));
    let out = Command::new(example("harmonic_chain")).args([&flags[..], &["--out", "slow", "--stop-at", "30"]].concat()).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success());
    let out = Command::new(example("harmonic_chain")).args(["--resume", "slow", "--lr", "0.005", "--quiet"]).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--lr changes from 0.01 to 0.005"));
    let text = std::fs::read_to_string(dir.path().join("slow/metrics.jsonl")).unwrap();
    let lr: Vec<f64> = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["lr"].as_f64().unwrap()).collect();
    assert!(lr[29] > lr[30] * 1.8, "the metrics record the rate of every step: {} then {}", lr[29], lr[30]);
}

#[test]
fn quantum_dot_free_fermions_resume_and_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    // kappa = 0, identity flow, Boltzmann start: the free energy of the truncated free system,
    // with zero variance (every state is an eigenstate and every sample has f = F). Adam would turn
    // the round-off gradient of the logits into steps of size lr, hence the tiny rate.
    let flags = ["--particles", "3", "--kappa", "0", "--beta", "1.5", "--delta-e", "2", "--flow", "identity", "--steps", "3", "--lr", "1e-9", "--batch", "64", "--eval-samples", "800", "--report-states", "2", "--quiet"];
    let s = run("quantum_dot", &[&flags[..], &["--out", "free"]].concat(), dir.path());
    let (f, f_free) = (s["F"].as_f64().unwrap(), s["F_free_window"].as_f64().unwrap());
    assert!((f - f_free).abs() < 1e-9 && s["F_err"].as_f64().unwrap() < 1e-9, "F = {f} vs {f_free}");
    assert!((s["S"].as_f64().unwrap() - s["S_free_window"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(s["n_states"], 21);
    assert_eq!(s["most_probable_states"].as_array().unwrap().len(), 2);
    // Interacting, with the backflow: a run stopped after 4 of 8 steps resumes to the same result.
    let flags = ["--particles", "3", "--kappa", "0.5", "--beta", "2", "--delta-e", "1", "--layers", "1", "--steps", "8", "--batch", "32", "--eval-samples", "400", "--report-states", "1", "--quiet"];
    let full = run("quantum_dot", &[&flags[..], &["--out", "full"]].concat(), dir.path());
    let out = Command::new(example("quantum_dot")).args([&flags[..], &["--out", "part", "--stop-at", "4"]].concat()).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success());
    let resumed = run("quantum_dot", &["--resume", "part", "--quiet", "--out", "part"], dir.path());
    for key in ["F", "F_err", "E", "S", "steps", "most_probable_states", "final_loss"] {
        assert_eq!(full[key], resumed[key], "{key}");
    }
    // Bad flags are refused naming the flag; windows too large to list are refused before listing.
    for (args, flag) in [(&["--dim", "4"][..], "--dim"), (&["--spin-up", "9"], "--spin-up"), (&["--beta", "-1"], "--beta"), (&["--bosons", "--beta", "2"], "--beta"), (&["--beta", "1", "--delta-e", "30"], "--delta-e"), (&["--batch", "1000000000"], "GiB"), (&["--beta", "1", "--sampler", "metropolis"], "--sampler"), (&["--flow", "continuous", "--ode-steps", "1"], "--ode-steps")] {
        let e = fails("quantum_dot", &[args, &["--steps", "1", "--quiet"]].concat(), dir.path());
        assert!(e.contains(flag) && !e.contains("panicked"), "{args:?}: {e}");
    }
}

#[test]
fn crystal_harmonic_limit_resume_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // The harmonic crystal with the bare harmonic states: F is the 20-level harmonic free energy
    // (every sample of T ln p_n + E_loc equals -T ln Z).
    let s = run("crystal", &["--model", "harmonic", "--flow", "identity", "--steps", "3", "--lr", "1e-9", "--batch", "32", "--eval-samples", "256", "--quiet", "--out", "harm"], dir.path());
    let (f, fh) = (s["F"].as_f64().unwrap(), s["F_harmonic"].as_f64().unwrap());
    assert!((f - fh).abs() < 1e-5 && s["F_err"].as_f64().unwrap() < 1e-5, "F = {f} vs F_h = {fh}");
    assert!((fh - (-3647.322967414108)).abs() < 1e-6, "F_h + V0 of phonons.json: {fh}");
    assert_eq!(s["num_modes"], 45);
    assert!(s.get("P_GPa").is_none(), "the harmonic expansion has no pressure");
    // The autoregressive occupations start at the same Boltzmann law.
    let van = run("crystal", &["--model", "harmonic", "--flow", "identity", "--occupation", "van", "--steps", "2", "--lr", "1e-9", "--batch", "32", "--eval-samples", "256", "--quiet", "--out", "van"], dir.path());
    assert!((van["F"].as_f64().unwrap() - fh).abs() < 1e-5, "VAN F = {} vs F_h = {fh}", van["F"]);
    // dp4 with a small flow: a run stopped after 3 of 6 steps resumes to the same result.
    let flags = ["--couplings", "2", "--hidden", "8", "--steps", "6", "--batch", "16", "--eval-samples", "64", "--quiet"];
    let full = run("crystal", &[&flags[..], &["--out", "full"]].concat(), dir.path());
    let out = Command::new(example("crystal")).args([&flags[..], &["--out", "part", "--stop-at", "3"]].concat()).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = run("crystal", &["--resume", "part", "--quiet", "--out", "part"], dir.path());
    for key in ["F", "F_err", "E", "K", "V", "S", "P_GPa", "G", "stress_GPa", "final_loss"] {
        assert!(full.get(key).is_some(), "{key} missing");
        assert_eq!(full[key], resumed[key], "{key}");
    }
    // Bad input is refused, naming the flag, file or line.
    let bad = dir.path().join("bad.vasp");
    std::fs::write(&bad, "Li\n1.0\n 3.4 0.1 0\n 0 3.4 0\n 0 0 3.4\n Li\n 2\nDirect\n 0 0 0\n 0.5 0.5 0.5\n").unwrap();
    let missing = dir.path().join("missing.safetensors");
    for (args, needle) in [
        (vec!["--supercell", "0"], "--supercell".to_string()),
        (vec!["--temperature", "-5"], "--temperature".to_string()),
        (vec!["--levels", "0"], "--levels".to_string()),
        (vec!["--volume-per-atom", "0.01"], "--volume-per-atom".to_string()),
        (vec!["--pressure", "500"], "--pressure".to_string()),
        (vec!["--weights", missing.to_str().unwrap()], missing.display().to_string()),
        (vec!["--poscar", bad.to_str().unwrap()], "line 3".to_string()),
        (vec!["--laplacian", "hutchinson", "--probes", "0"], "--probes".to_string()),
        (vec!["--model", "harmonic", "--volume-per-atom", "20.160765"], "imaginary".to_string()),
    ] {
        let e = fails("crystal", &[&args[..], &["--steps", "1", "--quiet"]].concat(), dir.path());
        assert!(e.contains(&needle) && !e.contains("panicked"), "{args:?}: {e}");
    }
    // A file that is not a model is named with the reason.
    let e = fails("crystal", &["--weights", bad.to_str().unwrap(), "--steps", "1", "--quiet"], dir.path());
    assert!(e.contains("bad.vasp") && e.contains("safetensors"), "{e}");
}

#[test]
fn crystal_constant_pressure_relaxes_the_box_and_resumes_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    // bcc 2x2x2 started at the reference's V(P = 0) fit, where dp4 gives about 0.37 GPa: the box
    // must grow, and the pressure fall towards the target.
    let flags = ["--pressure", "0", "--couplings", "2", "--hidden", "8", "--steps", "24", "--batch", "16", "--eval-samples", "128", "--npt-begin", "4", "--npt-every", "4", "--npt-recent", "4", "--quiet"];
    let full = run("crystal", &[&flags[..], &["--out", "full"]].concat(), dir.path());
    let npt = &full["npt"];
    let start = npt["volume_per_atom_start_A3"].as_f64().unwrap();
    let end = npt["volume_per_atom_A3"].as_f64().unwrap();
    let log: Vec<Value> = std::fs::read_to_string(dir.path().join("full/box.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(log.len(), 24);
    let p0 = log[0]["pressure_GPa"].as_f64().unwrap();
    let p1 = log[23]["pressure_GPa"].as_f64().unwrap();
    assert!(p0 > 0.2 && end > start * 1.005 && p1 < p0 - 0.1, "V {start} -> {end}, P {p0} -> {p1}");
    assert_eq!(npt["box_every_update"].as_array().unwrap().len(), 6, "{}", npt["box_every_update"]);
    // Stopped after 10 steps (between two box updates) and resumed: the same boxes and results.
    let out = Command::new(example("crystal")).args([&flags[..], &["--out", "part", "--stop-at", "10"]].concat()).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = run("crystal", &["--resume", "part", "--quiet", "--out", "part"], dir.path());
    for key in ["F", "F_err", "E", "S", "P_GPa", "G", "npt", "final_loss"] {
        assert_eq!(full[key], resumed[key], "{key}");
    }
    // The harmonic expansion has no volume dependence: refused.
    let e = fails("crystal", &["--pressure", "1", "--model", "harmonic", "--steps", "1", "--quiet"], dir.path());
    assert!(e.contains("--pressure"), "{e}");
    let e = fails("crystal", &["--pressure", "1", "--occupation", "van", "--steps", "1", "--quiet"], dir.path());
    assert!(e.contains("--occupation"), "{e}");
}

#[test]
fn quartic_anharmonic_latent_resumes_bitwise_and_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--lambda", "0.5", "--latent", "anharmonic", "--basis", "4", "--path-gradient", "--hidden", "8,8", "--steps", "60", "--batch", "64", "--eval-samples", "2000", "--refine-iterations", "4", "--refine-points", "300", "--refine-held-out", "100", "--quiet"];
    let full = run("quartic", &[&flags[..], &["--out", "full"]].concat(), dir.path());
    let out = Command::new(example("quartic")).args([&flags[..], &["--out", "part", "--stop-at", "25"]].concat()).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = run("quartic", &["--resume", "part", "--quiet", "--out", "part"], dir.path());
    for key in ["F_var", "F_var_err", "F_is", "ess", "omega", "latent_dynamics"] {
        assert_eq!(full[key], resumed[key], "{key}");
    }
    // The conjugacy fit after training is deterministic too, and lowers the residual.
    for key in ["rms_start", "rms", "held_out_rms", "offset", "accepted", "F_var_before"] {
        assert_eq!(full["conjugacy"][key], resumed["conjugacy"][key], "conjugacy {key}");
    }
    assert!(full["conjugacy"]["held_out_rms"].as_f64().unwrap() < full["conjugacy"]["held_out_rms_start"].as_f64().unwrap());
    // The exact F by quadrature, and three amplitudes of latent dynamics with finite phase errors.
    assert!((full["F_exact"].as_f64().unwrap() - (-1.4779511)).abs() < 1e-6, "{}", full["F_exact"]);
    let dynamics = full["latent_dynamics"].as_array().unwrap();
    assert_eq!(dynamics.len(), 3);
    assert!(dynamics.iter().all(|d| d["phase_error_rad"].as_f64().is_some_and(f64::is_finite)));
    for (flag, value) in [("--lambda", "-1"), ("--basis", "0"), ("--basis", "17"), ("--amplitudes", "0.5,nan"), ("--beta", "0")] {
        let e = fails("quartic", &["--latent", "anharmonic", flag, value, "--steps", "2", "--quiet"], dir.path());
        assert!(e.contains(flag) && !e.contains("panicked"), "{flag} {value}: {e}");
    }
    for (flag, value) in [("--refine-spread", "0.5"), ("--refine-points", "0")] {
        let e = fails("quartic", &["--refine-iterations", "3", flag, value, "--steps", "2", "--quiet"], dir.path());
        assert!(e.contains(flag) && !e.contains("panicked"), "{flag} {value}: {e}");
    }
}

#[test]
fn electron_gas_free_limit_resume_and_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    // r_s = 0, identity flow, every pair of the 29 plane waves with |n|^2 <= 9: the Boltzmann
    // start is the exact free-electron density matrix of the basis, with zero variance.
    let flags = ["--particles", "2", "--rs", "0", "--emax", "9", "--window", "1000", "--flow", "identity", "--steps", "2", "--lr", "1e-9", "--batch", "32", "--eval-samples", "2000", "--quiet"];
    let s = run("electron_gas", &[&flags[..], &["--out", "free"]].concat(), dir.path());
    let (f, f_free) = (s["F"].as_f64().unwrap(), s["F_free"].as_f64().unwrap());
    assert!((f - f_free).abs() < 1e-9 && s["F_err"].as_f64().unwrap() < 1e-9, "F = {f} vs {f_free}");
    assert!((s["S"].as_f64().unwrap() - s["S_free"].as_f64().unwrap()).abs() < 1e-9 && (s["m_star_over_m"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(s["occupation_model"], "406 sets");
    assert!(s["F_per_electron_Ry"].is_null(), "no Ry value at r_s = 0");
    // The same in the cubic box (19 plane waves with |n|^2 <= 2, 171 pairs).
    let flags = ["--particles", "2", "--dim", "3", "--twist", "0.25,0.25,0.25", "--rs", "0", "--emax", "2", "--window", "1000", "--flow", "identity", "--steps", "2", "--lr", "1e-9", "--batch", "32", "--eval-samples", "2000", "--quiet"];
    let s = run("electron_gas", &[&flags[..], &["--out", "free3"]].concat(), dir.path());
    assert!((s["F"].as_f64().unwrap() - s["F_free"].as_f64().unwrap()).abs() < 1e-9 && s["F_err"].as_f64().unwrap() < 1e-9 && s["occupation_model"] == "171 sets", "{s}");
    // Interacting, with the backflow: a run stopped after 3 of 6 steps resumes to the same result.
    let flags = ["--particles", "3", "--rs", "2", "--window", "6", "--layers", "1", "--shells", "3", "--steps", "6", "--batch", "32", "--eval-samples", "600", "--quiet"];
    let full = resumes_bitwise("electron_gas", &flags, "full", "3", &["F", "F_err", "E", "S", "steps", "final_loss", "F_first_order", "m_star_over_m"], dir.path());
    assert!(full["F_per_electron_Ry"].as_f64().unwrap().is_finite());
    // The transformer occupations with their pretraining: resumed bitwise too.
    let flags = ["--particles", "3", "--rs", "2", "--occupation", "transformer", "--tf-width", "8", "--tf-heads", "2", "--tf-hidden", "8", "--pretrain-steps", "5", "--layers", "1", "--shells", "2", "--steps", "4", "--batch", "16", "--eval-samples", "256", "--quiet"];
    let full = resumes_bitwise("electron_gas", &flags, "tf", "2", &["F", "F_err", "E", "S", "steps", "final_loss", "m_star_over_m"], dir.path());
    assert!(full["occupation_model"].as_str().unwrap().starts_with("transformer"));
    // The FermiNet-style flow (random output weights, so the flow acts from the start): resumed
    // bitwise, and below the identity flow's first-order value.
    let flags = ["--particles", "3", "--rs", "2", "--window", "6", "--flow", "ferminet", "--layers", "1", "--depth", "1", "--one-body", "4", "--two-body", "4", "--output-scale", "0.3", "--steps", "6", "--batch", "32", "--eval-samples", "600", "--quiet"];
    let full = resumes_bitwise("electron_gas", &flags, "fn", "3", &["F", "F_err", "E", "S", "steps", "final_loss", "m_star_over_m"], dir.path());
    assert!(full["F"].as_f64().unwrap().is_finite());
    // Bad flags are refused naming the flag.
    for (args, flag) in [(&["--dim", "4"][..], "--dim"), (&["--rs", "-1"], "--rs"), (&["--theta", "0"], "--theta"), (&["--twist", "0.25"], "--twist"), (&["--particles", "13", "--window", "60"], "--window"), (&["--shells", "0"], "--shells"), (&["--batch", "1000000000"], "GiB"), (&["--particles", "9", "--emax", "1"], "--emax"), (&["--occupation", "transformer", "--tf-heads", "3"], "--tf-width"), (&["--occupation", "transformer", "--pretrain-lr", "0"], "--pretrain-lr"), (&["--occupation", "transformer", "--pretrain-batch", "0"], "--pretrain-batch"), (&["--optimiser", "sr", "--sr-damping", "0"], "--sr-damping"), (&["--occupation-lr-factor", "0"], "--occupation-lr-factor"), (&["--flow", "ferminet", "--depth", "0"], "--depth"), (&["--flow", "ferminet", "--output-scale", "-1"], "--output-scale"), (&["--flow", "ferminet", "--layers", "0"], "--layers"), (&["--optimiser", "sr", "--occupation", "transformer", "--pretrain-steps", "0", "--batch", "300000"], "GiB of scores")] {
        let e = fails("electron_gas", &[args, &["--steps", "1", "--quiet"]].concat(), dir.path());
        assert!(e.contains(flag) && !e.contains("panicked"), "{args:?}: {e}");
    }
}
