//! A new model in a few lines: a 2D anharmonic classical system and a 2D anharmonic quantum system
//! declared with the DSL and trained by the driver, each checked against an exact value computed
//! here (a quadrature; a sinc-DVR diagonalisation). Also the standard summary and `nct-report`.

use nalgebra::DMatrix;
use nct::driver::{Driver, Ensemble, Observable, SCHEMA, Variational};
use nct::run::RunArgs;
use nct::*;

// ---- the classical user model: 33 lines from declaration to checked result ----
nct::hamiltonian! {
    /// Two oscillators with a quartic coupling.
    pub struct Coupled2 { g: f64 = 0.3 }
    dof = 2;
    potential(q) = 0.5 * (q[0] * q[0] + q[1] * q[1]) + g * q[0] * q[0] * q[1] * q[1];
}

nct::flow! {
    pub struct Coupled2Flow: Symplectic<2> {
        point: PointTransform<RealNvp> { couplings: 4, hidden: [16] },
        mix: LinearSymplectic { shears: 2 },
    }
}

#[test]
fn classical_model_in_a_few_lines_reaches_the_exact_free_energy() {
    let h = Coupled2::new();
    let model = ClassicalNct::new(Coupled2Flow::new(1), LatentOscillators::new(Const::<2>, 1.0).unwrap());
    let args = RunArgs { steps: 600, batch: 256, lr: 0.01, seed: 1, quiet: true, ..Default::default() };
    let trained = Driver::new("coupled2", Variational::new(&model, &h, args.batch)).run(&args, &args).unwrap();
    let fe = trained.objective.free_energy(&trained.theta, 40_000, args.seed);
    // Exact: F = -ln(Z_q Z_p), Z_p = 2 pi (two unit-mass momenta), Z_q by the trapezoid rule.
    let (n, l) = (401, 8.0);
    let dx = 2.0 * l / (n - 1) as f64;
    let grid = |i: usize| -l + dx * i as f64;
    let zq: f64 = (0..n).flat_map(|i| (0..n).map(move |j| (grid(i), grid(j)))).map(|(x, y)| (-h.potential(&Vector::from([x, y]))).exp()).sum::<f64>() * dx * dx;
    let f_exact = -(zq * 2.0 * std::f64::consts::PI).ln();
    assert!(fe.f_var > f_exact - 4.0 * fe.f_var_err, "variational bound: {} +- {} vs {f_exact}", fe.f_var, fe.f_var_err);
    // Measured: gap 0.019 (the flow's capacity; it does not close with 1500 steps), F_is off by 1e-3.
    assert!(fe.f_var - f_exact < 0.03, "F_var {} +- {} vs exact {f_exact}", fe.f_var, fe.f_var_err);
    assert!((fe.f_is - f_exact).abs() < 0.005, "F_is {} vs exact {f_exact}", fe.f_is);
    // Equipartition: <p_i^2> = 1/beta per unit-mass momentum, so <K> = 1.
    let obs = trained.objective.observe(&trained.theta, &[Observable::kinetic(&h), Observable::potential(&h), Observable::virial(&h)], 20_000, 7);
    assert!((obs[0].mean - 1.0).abs() < 4.0 * obs[0].error + 0.02, "K = {} +- {}", obs[0].mean, obs[0].error);
    // Classical virial theorem in the canonical ensemble: <q . grad V> = d k_B T = 2.
    assert!((obs[2].mean - 2.0).abs() < 4.0 * obs[2].error + 0.05, "virial = {} +- {}", obs[2].mean, obs[2].error);
}

// ---- the quantum user model: 30 lines from declaration to checked result ----
nct::hamiltonian! {
    /// Two quantum oscillators with a quartic coupling (hbar = m = omega = 1).
    pub struct Coupled2Q { g: f64 = 0.3 }
    dof = 2;
    potential(q) = 0.5 * (q[0] * q[0] + q[1] * q[1]) + g * q[0] * q[0] * q[1] * q[1];
}

nct::flow! {
    pub struct Coupled2QFlow: Unitary<2> { lu: LinearBijector, nvp: RealNvp { couplings: 4, hidden: [16] } }
}

#[test]
fn quantum_model_in_a_few_lines_reaches_the_exact_ground_state() {
    let h = Coupled2Q::new();
    let states = QuantumNct::new(Coupled2QFlow::new(2), Vector::from([1.0, 1.0]), h.masses(), 2);
    let args = RunArgs { steps: 400, batch: 256, lr: 0.005, seed: 2, quiet: true, ..Default::default() };
    let trained = Driver::new("coupled2q", Ensemble::new(&states, &h, vec![vec![0, 0]], Weights::Equal, args.batch)).run(&args, &args).unwrap();
    let e = &trained.objective.energies(&trained.theta, 40_000, args.seed, &NoProgress)[0];
    let exact = sinc_dvr_ground_state(&h, 36, 6.0);
    assert!(e.energy > exact - 4.0 * e.error, "variational: {} +- {} vs {exact}", e.energy, e.error);
    assert!(e.energy - exact < 5e-3, "E_0 = {} +- {} vs exact {exact}", e.energy, e.error);
    // Quantum virial theorem for an eigenstate: 2<K> = <x . grad V>.
    let obs = trained.objective.observe(&trained.theta, &[0, 0], &[Observable::virial_of(&h)], 40_000, 5);
    assert!((obs[0].mean - 2.0 * e.kinetic).abs() < 0.03, "virial {} +- {} vs 2K = {}", obs[0].mean, obs[0].error, 2.0 * e.kinetic);
}

/// Colbert–Miller sinc-DVR on $[-L, L]^2$ (an independent oracle: a grid diagonalisation).
fn sinc_dvr_ground_state(h: &Coupled2Q, m: usize, l: f64) -> f64 {
    let dx = 2.0 * l / (m - 1) as f64;
    let x = |i: usize| -l + dx * i as f64;
    let t = |i: usize, j: usize| {
        let s = if (i + j) % 2 == 0 { 1.0 } else { -1.0 };
        s / (2.0 * dx * dx) * if i == j { std::f64::consts::PI.powi(2) / 3.0 } else { 2.0 / ((i as f64 - j as f64).powi(2)) }
    };
    let hm = DMatrix::from_fn(m * m, m * m, |a, b| {
        let (ia, ja, ib, jb) = (a / m, a % m, b / m, b % m);
        (if ja == jb { t(ia, ib) } else { 0.0 }) + (if ia == ib { t(ja, jb) } else { 0.0 }) + if a == b { h.potential(&Vector::from([x(ia), x(ja)])) } else { 0.0 }
    });
    hm.symmetric_eigen().eigenvalues.iter().copied().fold(f64::INFINITY, f64::min)
}

#[test]
fn summaries_follow_the_schema_and_nct_report_compares_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Coupled2::new();
    let model = ClassicalNct::new(Coupled2Flow::new(1), LatentOscillators::new(Const::<2>, 1.0).unwrap());
    let mut dirs = Vec::new();
    for (k, lr) in [0.01, 0.003].into_iter().enumerate() {
        let out = tmp.path().join(format!("run{k}"));
        let args = RunArgs { steps: 30, batch: 64, lr, seed: 1, quiet: true, out: Some(out.clone()), ..Default::default() };
        let trained = Driver::new("coupled2", Variational::new(&model, &h, args.batch)).run(&args, &args).unwrap();
        let fe = trained.objective.free_energy(&trained.theta, 2000, 1);
        let written = trained.summary().free_energy(&fe).insert("not_a_number", f64::NAN).write().unwrap();
        let on_disk: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(written, on_disk);
        assert_eq!(on_disk["schema"], SCHEMA);
        assert_eq!((on_disk["kind"].as_str(), on_disk["model"].as_str(), on_disk["steps"].as_u64()), (Some("classical"), Some("coupled2"), Some(30)));
        assert_eq!(on_disk["final_loss"].as_f64(), Some(trained.outcome.losses.last().unwrap().1));
        assert!(on_disk["not_a_number"].is_null(), "non-finite numbers are never written as results");
        assert_eq!(on_disk["F_var"].as_f64(), Some(fe.f_var));
        dirs.push((out, fe.f_var));
    }
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_nct-report")).args([dirs[0].0.as_os_str(), dirs[1].0.as_os_str(), "--plot".as_ref(), tmp.path().join("cmp").as_os_str()]).output().unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{text}{}", String::from_utf8_lossy(&report.stderr));
    for (d, f) in &dirs {
        let row = text.lines().find(|l| l.starts_with(&d.display().to_string())).unwrap_or_else(|| panic!("no row for {}: {text}", d.display()));
        assert!(row.contains(&format!("F_var = {f:.6}")), "{row}");
    }
    assert!(tmp.path().join("cmp.png").exists() && tmp.path().join("cmp.svg").exists());
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_nct-report")).arg(tmp.path().join("nope")).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope"), "the error names the directory");
}

#[test]
fn observables_are_logged_while_training_and_resume_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Coupled2::new();
    let model = ClassicalNct::new(Coupled2Flow::new(1), LatentOscillators::new(Const::<2>, 1.0).unwrap());
    let train = |out: &std::path::Path, stop_at: Option<u64>, resume: bool| {
        let dir = Some(out.to_path_buf());
        let args = RunArgs { steps: 30, batch: 64, seed: 4, quiet: true, stop_at, out: if resume { None } else { dir.clone() }, resume: if resume { dir } else { None }, ..Default::default() };
        Driver::new("coupled2", Variational::new(&model, &h, args.batch))
            .log_observables(10, |o, th| o.observe(th, &[Observable::kinetic(&h), Observable::virial(&h)], 500, 9))
            .run(&args, &args)
            .unwrap()
            .outcome
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    train(&a, None, false);
    assert!(train(&b, Some(15), false).interrupted);
    assert_eq!(train(&b, None, true).steps_done, 30);
    let read = |d: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(d.join("metrics.jsonl")).unwrap().lines().map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        }).collect()
    };
    let (ma, mb) = (read(&a), read(&b));
    assert_eq!(ma, mb, "a resumed run logs the same observables");
    for (step, rec) in ma.iter().enumerate() {
        assert_eq!(rec.get("K").is_some(), step % 10 == 0, "step {step}: {rec}");
        if let (Some(k), Some(err)) = (rec["K"].as_f64(), rec.get("K_err").and_then(|e| e.as_f64())) {
            // Equipartition, loosely: the flow is still far from trained after a few steps.
            assert!(k > 0.5 && k < 2.0 && err > 0.0 && err < 0.2, "step {step}: K = {k} +- {err}");
        }
    }
}

#[test]
fn the_optimiser_is_a_value_checkpointed_and_resumed_bit_for_bit() {
    use nct::driver::Optimiser;
    let tmp = tempfile::tempdir().unwrap();
    let h = Coupled2::new();
    let model = ClassicalNct::new(Coupled2Flow::new(1), LatentOscillators::new(Const::<2>, 1.0).unwrap());
    let run = |dir: &std::path::Path, opt: Optimiser, stop_at: Option<u64>, resume: bool| {
        let d = Some(dir.to_path_buf());
        let args = RunArgs { steps: 40, batch: 64, lr: 0.002, seed: 5, quiet: true, stop_at, out: if resume { None } else { d.clone() }, resume: if resume { d } else { None }, ..Default::default() };
        Driver::new("coupled2", Variational::new(&model, &h, args.batch)).optimiser(opt).run(&args, &args)
    };
    let sgd = Optimiser::Sgd { momentum: 0.9 };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let full = run(&a, sgd, None, false).unwrap();
    assert!(run(&b, sgd, Some(13), false).unwrap().outcome.interrupted);
    let resumed = run(&b, sgd, None, true).unwrap();
    assert_eq!(full.theta, resumed.theta, "SGD with momentum resumes bit for bit");
    drop(resumed); // releases the run directory's lock
    assert!(full.outcome.losses.last().unwrap().1 < full.outcome.losses[0].1, "SGD lowers the loss");
    // Adam and SGD give different runs; a checkpoint of one is refused by the other.
    let adam = run(&tmp.path().join("c"), Optimiser::default(), None, false).unwrap();
    assert_ne!(adam.theta, full.theta);
    let err = match run(&b, Optimiser::default(), None, true) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("an SGD checkpoint resumed with Adam"),
    };
    assert!(err.contains("`sgd`") && err.contains("`adam`"), "{err}");
}
