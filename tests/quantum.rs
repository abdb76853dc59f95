//! Quantum NCT: exact checks and small trainings (seconds).

use nct::models::vibrational::{HarmonicModes, Ndco, QuarticForceField};
use nct::quantum::basis::lowest_levels;
use nct::*;
use rand::SeedableRng;
use std::path::Path;

fn rng(s: u64) -> NctRng {
    NctRng::seed_from_u64(s)
}

#[test]
fn identity_flow_on_harmonic_ch3cn_is_exact_with_zero_variance() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("ncT-models/data/vibrational/ch3cn.json");
    let ff = match QuarticForceField::<Const<12>>::load(&p) {
        Ok(f) => f,
        Err(e) => return eprintln!("skipping: {e}"),
    };
    let h = ff.harmonic();
    let model = QuantumNct::new(LinearBijector::new(Const::<12>), ff.omega, h.masses(), 4);
    let theta = vec![0.0; model.n_params()];
    let levels = lowest_levels(ff.omega.as_slice(), 2);
    let e = model.state_energies(&theta, &h, &levels, 200, &BatchEngine::default(), &SeedStream::new(1));
    assert!((e[0].energy - 9905.5).abs() < 1e-10 * 9905.5, "E0 = {}", e[0].energy);
    assert!((e[1].energy - 10266.5).abs() < 1e-10 * 10266.5, "E1 = {}", e[1].energy);
    for s in &e {
        assert!(s.variance.sqrt() < 1e-10 * s.energy, "variance {}", s.variance);
        assert_eq!(s.rejected, 0);
    }
}

fn random_flow(seed: u64) -> (Chain<LinearBijector<Const<2>>, RealNvp<Const<2>>>, Vec<f64>) {
    let mut r = rng(seed);
    let flow = Chain::new(LinearBijector::new(Const::<2>), real_nvp(Const::<2>, 2, &[6], Activation::Tanh, MaskScheme::EvenOdd, &mut r).unwrap());
    let mut theta = flow.new_params(&mut r);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.15 * ((k as f64) * 1.7).sin();
    }
    (flow, theta)
}

#[test]
fn states_are_orthonormal_and_sampling_is_exact() {
    let (flow, theta) = random_flow(3);
    let model = QuantumNct::new(flow, Vector::from([1.0, 1.6]), Vector::from([1.0, 0.7]), 4);
    let (n0, n1) = ([0usize, 0], [1usize, 2]);
    let h = 0.02;
    let (mut s00, mut s11, mut s01, mut mean_x) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..700 {
        for j in 0..700 {
            let x = Vector::<f64, Const<2>>::from([-7.0 + h * i as f64, -7.0 + h * j as f64]);
            let (a, b) = (model.psi(&theta, &n0, &x), model.psi(&theta, &n1, &x));
            s00 += a * a;
            s11 += b * b;
            s01 += a * b;
            mean_x += b * b * x[0];
        }
    }
    let (s00, s11, s01, mean_x) = (s00 * h * h, s11 * h * h, s01 * h * h, mean_x * h * h);
    assert!((s00 - 1.0).abs() < 1e-6 && (s11 - 1.0).abs() < 1e-6 && s01.abs() < 1e-6, "{s00} {s11} {s01}");
    let mut r = rng(4);
    let m = 40000;
    let sx: f64 = (0..m).map(|_| model.sample(&theta, &n1, &mut r).0[0]).sum::<f64>() / m as f64;
    assert!((sx - mean_x).abs() < 0.02, "sample mean {sx} vs quadrature {mean_x}");
}

#[test]
fn local_energy_laplacian_matches_finite_differences() {
    let (flow, theta) = random_flow(5);
    let masses = Vector::from([1.3, 0.6]);
    let model = QuantumNct::new(flow, Vector::from([0.8, 1.9]), masses, 4);
    let h = HarmonicModes::<Const<2>> { omega: Vector::from([0.0, 0.0]) };
    let n = [2usize, 1];
    for x in [Vector::from([0.3, -0.4]), Vector::from([-1.1, 0.7])] {
        let e = model.local_energy(&theta, &h, &n, &x);
        let d = 1e-4;
        let psi = |y: Vector<f64, Const<2>>| model.psi(&theta, &n, &y);
        let mut kin = 0.0;
        for i in 0..2 {
            let mut xp = x;
            xp[i] += d;
            let mut xm = x;
            xm[i] -= d;
            kin += -0.5 / masses[i] * (psi(xp) - 2.0 * psi(x) + psi(xm)) / (d * d) / psi(x);
        }
        assert!((e - kin).abs() < 1e-5 * (1.0 + kin.abs()), "{e} vs {kin}");
    }
}

#[test]
fn ndco_ground_state_from_training() {
    let m = Ndco::new(Const::<4>, 0.1);
    let exact = 2.166531218280;
    let model = QuantumNct::new(LinearBijector::new(Const::<4>), m.w, m.masses(), 4);
    let mut theta = model.new_params(&mut rng(1));
    let labels = lowest_levels(m.w.as_slice(), 1);
    let engine = BatchEngine::new(32);
    let stream = SeedStream::new(7);
    let mut opt = Adam::new(theta.len(), 0.02);
    for step in 0..400 {
        let s = model.ensemble_step(&theta, &m, &labels, &[1.0], 128, &engine, &stream, step);
        opt.set_learning_rate(0.02 * Schedule::Cosine { total: 400, min_factor: 0.01 }.factor(step));
        opt.step(&mut theta, &s.grad);
    }
    let e = model.state_energies(&theta, &m, &labels, 4000, &engine, &SeedStream::new(8));
    eprintln!("NDCO D=4 ground state {} +- {} (exact {exact}), std {}", e[0].energy, e[0].error, e[0].variance.sqrt());
    assert!((e[0].energy - exact).abs() < 1e-5 * exact, "{}", e[0].energy);
}

#[test]
fn ndco_finite_temperature_with_product_occupations() {
    let m = Ndco::new(Const::<3>, 0.1);
    let t = 1.0;
    let exact = m.free_energy(t);
    let states = QuantumNct::new(LinearBijector::new(Const::<3>), m.w, m.masses(), 11);
    let model = ThermalNct::new(states.clone(), ProductOccupation::new(1.0 / t, m.w.as_slice(), 12), Some(m.normal_frequencies())).unwrap();
    assert!(ThermalNct::new(states, ProductOccupation::new(1.0, m.w.as_slice(), 13), None).is_err(), "levels beyond the sampler tables are rejected");
    let mut theta = model.new_params(&mut rng(2));
    let engine = BatchEngine::new(64);
    let stream = SeedStream::new(9);
    let mut opt = Adam::new(theta.len(), 0.02);
    for step in 0..600 {
        let s = model.step(&theta, &m, 512, &engine, &stream, step);
        opt.set_learning_rate(0.02 * Schedule::Cosine { total: 600, min_factor: 0.02 }.factor(step));
        opt.step(&mut theta, &s.grad);
    }
    let est: Vec<_> = (0..8).map(|k| model.step(&theta, &m, 4096, &engine, &SeedStream::new(100 + k), 0)).collect();
    let (f, err) = mean_and_error(&est.iter().map(|s| s.f).collect::<Vec<_>>());
    eprintln!("NDCO D=3 T=1: F = {f} +- {err} (exact {exact})");
    assert!((f - exact).abs() < 3.0 * err + 5e-3, "F {f} +- {err} vs {exact}");
    // Quadratic Hamiltonian: thermal virial theorem <K> = <V>, and E = K + V sample by sample.
    let (k, k_err) = mean_and_error(&est.iter().map(|s| s.k).collect::<Vec<_>>());
    let (v, v_err) = mean_and_error(&est.iter().map(|s| s.v).collect::<Vec<_>>());
    let e = mean_and_error(&est.iter().map(|s| s.e).collect::<Vec<_>>()).0;
    eprintln!("K = {k} +- {k_err}, V = {v} +- {v_err}");
    assert!((k + v - e).abs() < 1e-10 * e.abs());
    assert!((k - v).abs() < 4.0 * (k_err * k_err + v_err * v_err).sqrt() + 5e-3, "K {k} +- {k_err} vs V {v} +- {v_err}");
}

/// The forward-Laplacian jet gives the same local energy as D directional Dual2 passes.
#[test]
fn laplacian_jet_equals_dual2_passes() {
    fn check<const D: usize>(seed: u64) {
        let mut r = rng(seed);
        let flow = Chain::new(LinearBijector::new(Const::<D>), real_nvp(Const::<D>, 3, &[16, 16], Activation::Tanh, MaskScheme::RandomPermutation, &mut r).unwrap());
        let mut theta = flow.new_params(&mut r);
        for (k, t) in theta.iter_mut().enumerate() {
            *t += 0.1 * ((k as f64) * 0.91).sin();
        }
        let omega = Vector::<f64, Const<D>>::from_fn(Const, |i| 0.5 + 0.3 * i as f64);
        let masses = Vector::<f64, Const<D>>::from_fn(Const, |i| 1.0 + 0.2 * i as f64);
        let model = QuantumNct::new(flow, omega, masses, 4);
        let h = HarmonicModes::<Const<D>> { omega };
        let levels = lowest_levels(omega.as_slice(), 4);
        for n in &levels {
            let (x, _) = model.sample(&theta, n, &mut r);
            let a = model.local_energy(&theta, &h, n, &x);
            let b = model.local_energy_jet(&theta, &h, n, &x);
            assert!((a - b).abs() < 1e-12 * (1.0 + a.abs()), "D={D} n={n:?}: {a} vs {b}");
        }
    }
    check::<3>(1);
    check::<12>(2);
}

/// The autoregressive occupation model is normalised, samples its own distribution, and its
/// score gradient matches finite differences.
#[test]
fn autoregressive_occupation_is_exact() {
    for hidden in [0usize, 4] {
        let occ = AutoregressiveOccupation::new(0.7, &[1.0, 1.5, 0.8], 3).with_hidden(hidden);
        let mut theta = occ.new_params(&mut rng(1));
        for (k, t) in theta.iter_mut().enumerate() {
            *t += 0.4 * ((k as f64) * 1.3).sin();
        }
        // Every one of the 27 labels is drawn; their probabilities sum to one and match the frequencies.
        let mut counts = std::collections::HashMap::new();
        let mut r = rng(5);
        let m = 200000;
        let mut lps = std::collections::HashMap::new();
        for _ in 0..m {
            let (n, l) = occ.sample(&theta, &mut r);
            lps.insert(n.clone(), l);
            *counts.entry(n).or_insert(0usize) += 1;
        }
        let total_p: f64 = lps.values().map(|l| l.exp()).sum();
        assert!(lps.len() == 27 && (total_p - 1.0).abs() < 1e-12, "{} labels, sum {total_p}", lps.len());
        for (n, c) in &counts {
            let p = lps[n].exp();
            assert!((occ.log_prob(&theta, n) - lps[n]).abs() < 1e-12);
            let f = *c as f64 / m as f64;
            assert!((f - p).abs() < 5.0 * (p / m as f64).sqrt() + 1e-4, "{n:?}: {f} vs {p}");
        }
        // d ln p / d theta vs central differences, for one label, every parameter.
        let n = vec![2usize, 0, 1];
        let mut g = vec![0.0; theta.len()];
        occ.add_log_prob_grad(&theta, &n, 1.0, &mut g);
        for k in 0..theta.len() {
            let mut tp = theta.clone();
            tp[k] += 1e-6;
            let mut tm = theta.clone();
            tm[k] -= 1e-6;
            let fd = (occ.log_prob(&tp, &n) - occ.log_prob(&tm, &n)) / 2e-6;
            assert!((fd - g[k]).abs() < 1e-7, "hidden {hidden}, param {k}: {fd} vs {}", g[k]);
        }
        if hidden > 0 {
            assert!(g[theta.len() - 1] != 0.0, "the output weights of the hidden layer get gradient");
        }
    }
}

#[test]
fn a_step_whose_walkers_are_rejected_has_no_loss() {
    let m = Ndco::new(Const::<3>, 0.1);
    let mut states = QuantumNct::new(LinearBijector::new(Const::<3>), m.w, m.masses(), 4);
    let theta = vec![0.0; states.n_params()];
    let labels = lowest_levels(m.w.as_slice(), 2);
    let (engine, stream) = (BatchEngine::new(8), SeedStream::new(1));
    let ok = states.ensemble_step(&theta, &m, &labels, &[0.5, 0.5], 32, &engine, &stream, 0);
    assert!(ok.loss.is_finite() && ok.rejected == 0);
    // A guard above every potential value rejects every walker: the loss is NaN, never 0.
    states.v_floor = f64::INFINITY;
    let bad = states.ensemble_step(&theta, &m, &labels, &[0.5, 0.5], 32, &engine, &stream, 0);
    assert_eq!(bad.rejected, 64);
    assert!(bad.loss.is_nan() && bad.energies.iter().all(|e| e.is_nan()));
    assert!(nct::quantum::too_many_rejected(33, 64) && !nct::quantum::too_many_rejected(32, 64));
    assert!(mean_and_error(&[]).0.is_nan());
}

/// The potentials of a thermal training step go through the `Backend` seam: a backend that
/// counts its walkers and evaluates them in reverse order gives the step of the CPU backend bit
/// for bit, which is also the step of the per-walker path (sample, potential, kinetic) it replaced.
#[test]
fn thermal_step_potentials_go_through_the_backend_seam() {
    use nct::{Backend, CpuBackend};
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Reversed {
        cpu: CpuBackend,
        walkers: AtomicUsize,
    }
    impl Backend for Reversed {
        fn name(&self) -> &'static str {
            "reversed"
        }
        fn potentials<H: Separable<N>, N: Size>(&self, h: &H, xs: &[Vector<f64, N>]) -> Vec<f64> {
            self.walkers.fetch_add(xs.len(), Ordering::SeqCst);
            let mut v: Vec<f64> = xs.iter().rev().map(|x| h.potential(x)).collect();
            v.reverse();
            v
        }
        fn energies_and_gradients<H: Hamiltonian<N>, N: Size>(&self, h: &H, points: &[PhasePoint<f64, N>]) -> Vec<(f64, PhasePoint<f64, N>)> {
            self.cpu.energies_and_gradients(h, points)
        }
        fn dense_forward(&self, net: &nct::dense::DenseNet, theta: &[f64], x: &nalgebra::DMatrix<f64>) -> Vec<nalgebra::DMatrix<f64>> {
            self.cpu.dense_forward(net, theta, x)
        }
        fn dense_vjp(&self, net: &nct::dense::DenseNet, theta: &[f64], acts: &[nalgebra::DMatrix<f64>], ybar: &nalgebra::DMatrix<f64>, g: &mut [f64]) -> nalgebra::DMatrix<f64> {
            self.cpu.dense_vjp(net, theta, acts, ybar, g)
        }
    }
    let m = Ndco::new(Const::<3>, 0.1);
    let states = QuantumNct::new(LinearBijector::new(Const::<3>), m.w, m.masses(), 11);
    let model = ThermalNct::new(states, ProductOccupation::new(1.0, m.w.as_slice(), 12), None).unwrap();
    let theta: Vec<f64> = model.new_params(&mut rng(4)).iter().enumerate().map(|(k, t)| t + 0.05 * (k as f64).sin()).collect();
    let engine = BatchEngine::new(16);
    let stream = SeedStream::new(3);
    let backend = Reversed { cpu: CpuBackend { engine }, walkers: AtomicUsize::new(0) };
    let (a, wa) = model.step_with_walkers(&theta, &m, 100, &engine, &stream, 5);
    let (b, wb) = model.step_with_walkers_on(&theta, &m, 100, &engine, &backend, &stream, 5);
    assert_eq!(backend.walkers.load(Ordering::SeqCst), 100);
    assert!(a.f.to_bits() == b.f.to_bits() && a.grad.iter().zip(&b.grad).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(wa.len(), wb.len());
    // The per-walker path: occupation sample, then sample, potential and kinetic of each walker
    // (the step's batched inverse and jet agree with it to rounding).
    let (tf, to) = model.split(&theta);
    let old = engine.map(100, &stream, 5, |_, r| {
        let (n, _) = OccupationModel::sample(&model.occupation, to, r);
        model.states.walker(tf, &m, &n, r)
    });
    let old: Vec<_> = old.into_iter().filter(|w| !w.rejected).collect();
    assert_eq!(old.len(), wa.len());
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
    assert!(old.iter().zip(&wa).all(|(o, w)| o.z == w.z && close(o.e_loc, w.e_loc) && close(o.potential, w.potential)));
    // The driver's objective takes the backend too.
    use nct::driver::{Objective, objective::Thermal};
    let plain = Thermal::new(&model, &m, 64).batch(&theta, 2, &stream);
    let seen = Reversed { cpu: CpuBackend { engine }, walkers: AtomicUsize::new(0) };
    let on = Thermal::new(&model, &m, 64).on(seen);
    let via = on.batch(&theta, 2, &stream);
    assert!(plain.loss.to_bits() == via.loss.to_bits() && plain.grad == via.grad);
}
