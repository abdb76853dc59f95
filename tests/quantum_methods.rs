//! Quantum NCT estimators beyond exact sampling: Hutchinson Laplacian, kinetic/potential split,
//! Metropolis sampling with blocking errors, and Ritz diagonalisation in the flow basis.

use nalgebra::DMatrix;
use nct::models::vibrational::{HarmonicModes, Ndco};
use nct::quantum::metropolis::Metropolis;
use nct::*;
use rand::SeedableRng;

fn rng(s: u64) -> NctRng {
    NctRng::seed_from_u64(s)
}

fn random_flow<const D: usize>(seed: u64) -> (Chain<LinearBijector<Const<D>>, RealNvp<Const<D>>>, Vec<f64>) {
    let mut r = rng(seed);
    let flow = Chain::new(LinearBijector::new(Const::<D>), real_nvp(Const::<D>, 2, &[6], Activation::Tanh, MaskScheme::EvenOdd, &mut r).unwrap());
    let mut theta = flow.new_params(&mut r);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.15 * ((k as f64) * 1.7).sin();
    }
    (flow, theta)
}

#[test]
fn hutchinson_laplacian_is_unbiased_and_exact_for_diagonal_hessians() {
    // Identity flow on uncoupled modes: the Hessian of ln psi is diagonal, so every probe is exact.
    let h = HarmonicModes::<Const<3>> { omega: Vector::from([0.7, 1.1, 1.9]) };
    let model = QuantumNct::new(LinearBijector::new(Const::<3>), h.omega, h.masses(), 3);
    let theta = vec![0.0; model.n_params()];
    let mut r = rng(1);
    for n in [[0usize, 0, 0], [1, 0, 2]] {
        let x = Vector::from([0.3, -0.8, 0.45]);
        let exact = model.kinetic_jet(&theta, &n, &x);
        let one = model.kinetic_hutchinson(&theta, &n, &x, 1, &mut r);
        assert!((one - exact).abs() < 1e-12 * exact.abs().max(1.0), "{one} vs {exact}");
    }
    // Random flow, unequal masses: the probe average converges to the exact Laplacian.
    let (flow, theta) = random_flow::<3>(5);
    let model = QuantumNct::new(flow, Vector::from([1.0, 1.4, 0.8]), Vector::from([1.0, 0.6, 2.0]), 3);
    let n = [1usize, 0, 1];
    let x = Vector::from([0.2, -0.5, 0.9]);
    let exact = model.kinetic_jet(&theta, &n, &x);
    let draws: Vec<f64> = (0..4000).map(|_| model.kinetic_hutchinson(&theta, &n, &x, 1, &mut r)).collect();
    let (m, err) = mean_and_error(&draws);
    assert!(err > 1e-6, "off-diagonal Hessian terms must make single probes noisy");
    assert!((m - exact).abs() < 4.0 * err, "Hutchinson {m} +- {err} vs exact {exact}");
    // Walkers use the configured method.
    let hm = Ndco::new(Const::<3>, 0.1);
    let model = model.with_laplacian(LaplacianMethod::Hutchinson { probes: 2 });
    let w = model.walker(&theta, &hm, &n, &mut r);
    assert!(!w.rejected && (w.e_loc - w.kinetic - w.potential).abs() < 1e-12);
}

#[test]
fn kinetic_and_potential_split_obeys_the_virial_theorem() {
    // Harmonic eigenstates: <K> = <V> = E/2 (virial theorem), with per-sample E_loc = K_loc + V.
    let h = HarmonicModes::<Const<2>> { omega: Vector::from([0.8, 1.3]) };
    let model = QuantumNct::new(LinearBijector::new(Const::<2>), h.omega, h.masses(), 3);
    let theta = vec![0.0; model.n_params()];
    let labels = vec![vec![0, 0], vec![2, 1]];
    let e = model.state_energies(&theta, &h, &labels, 20000, &BatchEngine::default(), &SeedStream::new(3));
    for (s, n) in e.iter().zip(&labels) {
        let exact = 0.8 * (n[0] as f64 + 0.5) + 1.3 * (n[1] as f64 + 0.5);
        assert!((s.energy - exact).abs() < 1e-10);
        assert!((s.kinetic + s.potential - s.energy).abs() < 1e-10);
        assert!((s.kinetic - exact / 2.0).abs() < 4.0 * s.kinetic_error, "K = {} +- {} vs {}", s.kinetic, s.kinetic_error, exact / 2.0);
        assert!((s.potential - exact / 2.0).abs() < 4.0 * s.potential_error, "V = {} +- {}", s.potential, s.potential_error);
        assert!(s.kinetic_error > 0.0 && s.kinetic_error < 0.02);
    }
}

#[test]
fn metropolis_agrees_with_exact_sampling_and_is_thread_independent() {
    let (flow, theta) = random_flow::<2>(11);
    let h = Ndco::new(Const::<2>, 0.2);
    let model = QuantumNct::new(flow, h.w, h.masses(), 4);
    let engine = BatchEngine::new(16);
    for n in [vec![0usize, 0], vec![1, 0]] {
        let exact = &model.state_energies(&theta, &h, std::slice::from_ref(&n), 40000, &engine, &SeedStream::new(21))[0];
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let stream = SeedStream::new(22);
                let mut chain = Metropolis::new(model.omega(), &h.masses(), &n, 200, &stream);
                model.metropolis_energy(&theta, &h, &n, &mut chain, 200, 2000, 5, &engine, &stream)
            })
        };
        let (mc, stats) = run(1);
        let (mc2, _) = run(2);
        assert_eq!(mc, mc2, "the chains must not depend on the thread count");
        let sigma = (mc.error.powi(2) + exact.error.powi(2)).sqrt();
        assert!((mc.energy - exact.energy).abs() < 4.0 * sigma, "state {n:?}: Metropolis {} +- {} vs exact sampling {} +- {}", mc.energy, mc.error, exact.energy, exact.error);
        assert!((mc.kinetic - exact.kinetic).abs() < 4.0 * (mc.kinetic_error.powi(2) + exact.kinetic_error.powi(2)).sqrt());
        assert!((0.3..0.7).contains(&stats.acceptance), "acceptance {}", stats.acceptance);
        assert!(stats.tau >= 1.0, "consecutive recorded sweeps are correlated (tau = {})", stats.tau);
    }
}

/// Harmonic basis matrix of NDCO, exactly: diagonal sum_i w_i (n_i + 1/2) plus the coupling
/// a sqrt(w_i w_j) x_i x_j with <n|x|n+1> = sqrt((n+1)/(2w)).
fn ndco_matrix<const D: usize>(h: &Ndco<Const<D>>, basis: &[Vec<usize>]) -> DMatrix<f64> {
    let x = |w: f64, m: usize, n: usize| -> f64 {
        if m == n + 1 {
            (m as f64 / (2.0 * w)).sqrt()
        } else if n == m + 1 {
            (n as f64 / (2.0 * w)).sqrt()
        } else {
            0.0
        }
    };
    DMatrix::from_fn(basis.len(), basis.len(), |p, q| {
        let (m, n) = (&basis[p], &basis[q]);
        let mut v = if m == n { (0..D).map(|i| h.w[i] * (n[i] as f64 + 0.5)).sum() } else { 0.0 };
        for i in 0..D {
            for j in 0..i {
                let others = (0..D).filter(|&k| k != i && k != j).all(|k| m[k] == n[k]);
                if others {
                    v += h.coupling * (h.w[i] * h.w[j]).sqrt() * x(h.w[i], m[i], n[i]) * x(h.w[j], m[j], n[j]);
                }
            }
        }
        v
    })
}

#[test]
fn ritz_in_the_harmonic_basis_matches_the_exact_basis_matrix() {
    let h = Ndco::new(Const::<3>, 0.3);
    let model = QuantumNct::new(LinearBijector::new(Const::<3>), h.w, h.masses(), 4);
    let theta = vec![0.0; model.n_params()];
    let basis: Vec<Vec<usize>> = (0..=2usize).flat_map(|a| (0..=2usize).flat_map(move |b| (0..=2usize).map(move |c| vec![a, b, c]))).filter(|n| n.iter().sum::<usize>() <= 2).collect();
    assert_eq!(basis.len(), 10);
    let mut exact: Vec<f64> = ndco_matrix(&h, &basis).symmetric_eigen().eigenvalues.iter().copied().collect();
    exact.sort_by(f64::total_cmp);
    let ritz = model.ritz(&theta, &h, &basis, 40000, 10, &BatchEngine::default(), &SeedStream::new(5)).unwrap();
    assert_eq!(ritz.rejected, 0);
    for (l, e) in ritz.levels.iter().zip(&exact) {
        assert!((l.energy - e).abs() < 5.0 * l.error + 1e-9, "Ritz {} +- {} vs basis-exact {e}", l.energy, l.error);
        assert!(l.error < 3e-3 * e.abs(), "error {} at {e}", l.error);
        let (dx, dx_exact) = (l.energy - ritz.levels[0].energy, e - exact[0]);
        assert!((dx - dx_exact).abs() < 5.0 * l.excitation_error + 1e-9, "excitation {dx} +- {} vs {dx_exact}", l.excitation_error);
    }
    // The basis-exact levels are upper bounds of the true levels, and the Ritz ground state improves
    // on the diagonal element by the coupling.
    let mut levels: Vec<f64> = nct::quantum::basis::lowest_levels(&h.normal_frequencies(), 3).iter().map(|n| nct::quantum::basis::harmonic_energy(&h.normal_frequencies(), n)).collect();
    levels.sort_by(f64::total_cmp);
    assert!(exact[0] >= levels[0] - 1e-12 && exact[0] < ndco_matrix(&h, &basis)[(0, 0)] - 1e-3);
    assert!((ritz.levels[0].energy - levels[0]).abs() < 2e-3, "{} vs {}", ritz.levels[0].energy, levels[0]);
    assert_eq!(ritz.levels[0].label, vec![0, 0, 0]);
}

#[test]
fn ritz_rows_equal_local_energies_and_are_exact_for_eigenstates() {
    // Rows: (H psi_k) / |det f'|^1/2 divided by phi_k is the local energy of state k.
    let (flow, theta) = random_flow::<3>(8);
    let h = Ndco::new(Const::<3>, 0.1);
    let model = QuantumNct::new(flow, h.w, h.masses(), 3);
    let basis = vec![vec![0usize, 0, 0], vec![1, 0, 0], vec![0, 2, 1]];
    let x = Vector::from([0.4, -0.3, 0.7]);
    let (phi, hphi) = model.basis_rows(&theta, &h, &basis, &x).unwrap();
    for (k, n) in basis.iter().enumerate() {
        let e = model.local_energy(&theta, &h, n, &x);
        assert!((hphi[k] / phi[k] - e).abs() < 1e-9 * e.abs().max(1.0), "{} vs {e}", hphi[k] / phi[k]);
    }
    // Zero-variance principle: a basis of exact eigenstates gives exact levels from few samples.
    let hm = HarmonicModes::<Const<3>> { omega: Vector::from([0.7, 1.1, 1.9]) };
    let exact_model = QuantumNct::new(LinearBijector::new(Const::<3>), hm.omega, hm.masses(), 3);
    let t0 = vec![0.0; exact_model.n_params()];
    let r = exact_model.ritz(&t0, &hm, &basis, 60, 3, &BatchEngine::default(), &SeedStream::new(2)).unwrap();
    let mut want: Vec<f64> = basis.iter().map(|n| (0..3).map(|i| hm.omega[i] * (n[i] as f64 + 0.5)).sum()).collect();
    want.sort_by(f64::total_cmp);
    for (l, w) in r.levels.iter().zip(&want) {
        assert!((l.energy - w).abs() < 1e-10 && l.error < 1e-10, "{} +- {} vs {w}", l.energy, l.error);
    }
    // Bad input is an error, not a panic.
    assert!(matches!(exact_model.ritz(&t0, &hm, &[vec![0, 0]], 100, 4, &BatchEngine::default(), &SeedStream::new(2)), Err(nct::quantum::ritz::RitzError::LabelLength { .. })));
    assert!(exact_model.ritz(&t0, &hm, &basis, 100, 1, &BatchEngine::default(), &SeedStream::new(2)).is_err());
}

/// VCI matrix of a quartic force field in the harmonic product basis (dimensionless normal
/// coordinates, unit width): exact matrix elements from powers of the 1D position matrix
/// $\langle m|q|n\rangle = \sqrt{(n+1)/2}\,\delta_{m,n+1} + \sqrt{n/2}\,\delta_{m,n-1}$.
fn vci_matrix<const D: usize>(ff: &nct::models::vibrational::QuarticForceField<Const<D>>, basis: &[Vec<usize>]) -> DMatrix<f64> {
    let size = basis.iter().flatten().copied().max().unwrap_or(0) + 6;
    let q = DMatrix::from_fn(size, size, |m, n| if m == n + 1 { (m as f64 / 2.0).sqrt() } else if n == m + 1 { (n as f64 / 2.0).sqrt() } else { 0.0 });
    let mut powers = vec![DMatrix::identity(size, size)];
    for a in 1..=4 {
        powers.push(&powers[a - 1] * &q);
    }
    let monomial = |m: &[usize], n: &[usize], ix: &[usize]| -> f64 {
        (0..D).map(|d| powers[ix.iter().filter(|&&i| i == d).count()][(m[d], n[d])]).product()
    };
    DMatrix::from_fn(basis.len(), basis.len(), |a, b| {
        let (m, n) = (&basis[a], &basis[b]);
        let mut v = if m == n { (0..D).map(|i| ff.omega[i] * (n[i] as f64 + 0.5)).sum() } else { 0.0 };
        v += ff.cubic.iter().map(|(ix, c)| c * monomial(m, n, ix)).sum::<f64>();
        v += ff.quartic.iter().map(|(ix, c)| c * monomial(m, n, ix)).sum::<f64>();
        v
    })
}

#[test]
fn ritz_on_the_h2o_force_field_matches_vci_in_the_same_basis() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ncT-models/data/vibrational/h2o.json");
    let ff = match nct::models::vibrational::QuarticForceField::<Const<3>>::load(&p) {
        Ok(f) => f,
        Err(e) => return eprintln!("skipping: {e}"),
    };
    let basis = nct::quantum::basis::lowest_levels(ff.omega.as_slice(), 84);
    let mut vci: Vec<f64> = vci_matrix(&ff, &basis).symmetric_eigen().eigenvalues.iter().copied().collect();
    vci.sort_by(f64::total_cmp);
    // A finite basis bounds the converged ZPE (4635.1104 cm^-1, data README) from above.
    eprintln!("VCI({}) levels {:?}", basis.len(), &vci[..6]);
    assert!(vci[0] > 4635.1104 && vci[0] < 4700.0, "VCI ZPE {}", vci[0]);
    // Identity flow: the flow basis is the harmonic basis, so Monte Carlo Ritz must reproduce VCI.
    let model = QuantumNct::new(LinearBijector::new(Const::<3>), ff.omega, ff.masses(), 8);
    let theta = vec![0.0; model.n_params()];
    let ritz = model.ritz(&theta, &ff, &basis, 40_000, 20, &BatchEngine::default(), &SeedStream::new(3)).unwrap();
    for (k, (l, e)) in ritz.levels.iter().zip(&vci).take(6).enumerate() {
        eprintln!("level {k}: Ritz {:.4} +- {:.4}, VCI {e:.4}", l.energy, l.error);
        assert!((l.energy - e).abs() < 5.0 * l.error + 1e-6, "level {k}: Ritz {} +- {} vs VCI {e}", l.energy, l.error);
        assert!(l.error < 4.0, "level {k}: error {}", l.error);
    }
}

/// Records the phases a long computation reports.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(String, u64, u64, bool)>>);

impl Progress for Recorder {
    fn start(&self, what: &str, total: u64) {
        self.0.lock().unwrap().push((what.into(), total, 0, false));
    }
    fn advance(&self, n: u64) {
        self.0.lock().unwrap().last_mut().unwrap().2 += n;
    }
    fn finish(&self) {
        self.0.lock().unwrap().last_mut().unwrap().3 = true;
    }
}

#[test]
fn long_phases_report_all_their_work_and_progress_changes_no_result() {
    let h = Ndco::new(Const::<3>, 0.3);
    let (flow, theta) = random_flow::<3>(3);
    let model = QuantumNct::new(flow, h.w, h.masses(), 4);
    let basis = nct::quantum::basis::lowest_levels(&h.w, 6);
    let (engine, stream) = (BatchEngine::new(16), SeedStream::new(9));
    let rec = Recorder::default();
    let with = model.ritz_with(&theta, &h, &basis, 1200, 10, &engine, &stream, &rec).unwrap();
    let without = model.ritz(&theta, &h, &basis, 1200, 10, &engine, &stream).unwrap();
    assert_eq!(format!("{with:?}"), format!("{without:?}"));
    let phases = rec.0.lock().unwrap().clone();
    assert_eq!(phases.len(), 2, "{phases:?}");
    assert_eq!((phases[0].1, phases[0].2, phases[0].3), (1200, 1200, true), "{phases:?}");
    assert_eq!((phases[1].1, phases[1].2, phases[1].3), (11, 11, true), "{phases:?}");
    let rec = Recorder::default();
    let a = model.state_energies_with(&theta, &h, &basis, 300, &engine, &stream, &rec);
    let b = model.state_energies(&theta, &h, &basis, 300, &engine, &stream);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(rec.0.lock().unwrap().iter().map(|p| (p.1, p.2, p.3)).collect::<Vec<_>>(), vec![(6, 6, true)]);
}

nct::flow! {
    /// The vibrational example's flow at runtime dimension: LU map then RealNVP.
    pub struct LuNvp: Unitary<Dyn> { lu: LinearBijector, nvp: RealNvp { couplings: 3, hidden: [7, 5], masks: halves } }
}

/// The vibrational example's flow shape at D = 6 with perturbed parameters, unequal masses.
fn lu_nvp_model(seed: u64) -> (QuantumNct<LuNvp, Dyn>, Vec<f64>) {
    let d = Dyn(6);
    let mut r = rng(seed);
    let flow = LuNvp::new(d, seed).unwrap();
    let mut theta = flow.new_params(&mut r);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.1 * ((k as f64) * 0.37 + seed as f64).cos();
    }
    let omega = Vector::from_fn(d, |i| 0.5 + 0.3 * i as f64);
    (QuantumNct::new(flow, omega.clone(), omega.map(|w| 0.5 + w), 3), theta)
}

/// The largest relative deviation of the batched jet from the per-walker jet over `xs`.
fn batched_vs_walker<B: Bijector<N>, N: Size>(model: &QuantumNct<B, N>, theta: &[f64], labels: &[Vec<usize>], xs: &[Vector<f64, N>]) -> f64 {
    let ls: Vec<&[usize]> = (0..xs.len()).map(|j| labels[j % labels.len()].as_slice()).collect();
    let refs: Vec<&Vector<f64, N>> = xs.iter().collect();
    let batched = model.kinetic_jets(theta, &ls, &refs).expect("these flows have batched kernels");
    assert_eq!(batched.len(), xs.len());
    batched
        .iter()
        .zip(xs)
        .zip(&ls)
        .map(|((b, x), n)| {
            let k = model.kinetic_jet(theta, n, x);
            assert!(k.is_finite() && b.is_finite());
            (b - k).abs() / k.abs().max(1.0)
        })
        .fold(0.0, f64::max)
}

#[test]
fn batched_laplacian_jet_equals_the_per_walker_jet() {
    // Compile-time dimension, linear + RealNVP, unequal masses, ground and excited states mixed in
    // one chunk.
    let (flow, theta) = random_flow::<4>(11);
    let model = QuantumNct::new(flow, Vector::from([1.0, 1.4, 0.8, 2.1]), Vector::from([1.0, 0.6, 2.0, 1.3]), 3);
    let mut r = rng(3);
    let labels = vec![vec![0, 0, 0, 0], vec![1, 0, 2, 0], vec![0, 3, 1, 1]];
    let xs: Vec<_> = (0..9).map(|j| model.sample(&theta, &labels[j % 3], &mut r).0).collect();
    let dev = batched_vs_walker(&model, &theta, &labels, &xs);
    assert!(dev < 1e-12, "Const<4>: batched jet deviates by {dev:e}");
    // A flow!-declared model at runtime dimension (the vibrational example's shape, D = 6).
    let d = Dyn(6);
    let (model, theta) = lu_nvp_model(4);
    let labels = vec![vec![0; 6], vec![1, 0, 0, 2, 0, 1]];
    let xs: Vec<_> = (0..7).map(|j| model.sample(&theta, &labels[j % 2], &mut r).0).collect();
    let dev = batched_vs_walker(&model, &theta, &labels, &xs);
    assert!(dev < 1e-12, "Dyn(6) flow!: batched jet deviates by {dev:e}");
    // A chunk of walkers: the same latent points as walker by walker (bitwise), configurations
    // (batched inverse) and energies to rounding.
    let h = Ndco::new(d, 0.05);
    let (s1, s2) = (SeedStream::new(9), SeedStream::new(9));
    let chunk = model.chunk_walkers(&theta, &h, &labels, |i| i % 2, 0..8, &mut s1.rng(0, 0));
    let mut one = s2.rng(0, 0);
    for (i, w) in chunk.iter().enumerate() {
        let v = model.walker(&theta, &h, &labels[i % 2], &mut one);
        assert_eq!((&w.z, w.rejected), (&v.z, v.rejected));
        assert!((&w.x - &v.x).amax() < 1e-13 * v.x.amax().max(1.0), "walker {i}: x {:?} vs {:?}", w.x, v.x);
        for (a, b) in [(w.e_loc, v.e_loc), (w.potential, v.potential)] {
            assert!((a - b).abs() < 1e-12 * b.abs().max(1.0), "walker {i}: {a} vs {b}");
        }
    }
    // The batched inverse inverts the forward map.
    let zs: Vec<&[usize]> = (0..4).map(|j| labels[j % 2].as_slice()).collect();
    for (x, z) in model.samples(&theta, &zs, &mut rng(10)) {
        let (fz, _, _) = model.flow.forward(&theta, &x);
        assert!((&fz - &z).amax() < 1e-12 * z.amax().max(1.0), "f(f^-1(z)) = {fz:?} vs {z:?}");
    }
}

/// Largest deviation of the batched parameter gradient from the per-walker one, relative to the
/// largest gradient component.
fn batched_grad_vs_walker<B: Bijector<N>, N: Size>(model: &QuantumNct<B, N>, theta: &[f64], labels: &[Vec<usize>], xs: &[Vector<f64, N>]) -> f64 {
    let ls: Vec<&[usize]> = (0..xs.len()).map(|j| labels[j % labels.len()].as_slice()).collect();
    let refs: Vec<&Vector<f64, N>> = xs.iter().collect();
    let coefs: Vec<f64> = (0..xs.len()).map(|j| 0.3 - 0.17 * j as f64).collect();
    assert!(model.flow.forward_tape(theta, &DMatrix::zeros(xs[0].len(), 1)).is_some(), "these flows have batched kernels");
    let mut batched = vec![0.0; theta.len()];
    model.add_log_psi_grads(theta, &ls, &refs, &coefs, &mut batched);
    let mut one = vec![0.0; theta.len()];
    for j in 0..xs.len() {
        model.add_log_psi_grad(theta, ls[j], &xs[j], coefs[j], &mut one);
    }
    let scale = one.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "a non-trivial gradient");
    batched.iter().zip(&one).map(|(a, b)| (a - b).abs() / scale).fold(0.0, f64::max)
}

#[test]
fn batched_log_psi_gradient_equals_the_per_walker_vjp() {
    let (flow, theta) = random_flow::<4>(12);
    let model = QuantumNct::new(flow, Vector::from([1.0, 1.4, 0.8, 2.1]), Vector::from([1.0, 0.6, 2.0, 1.3]), 3);
    let mut r = rng(5);
    let labels = vec![vec![0, 0, 0, 0], vec![1, 0, 2, 0]];
    let xs: Vec<_> = (0..6).map(|j| model.sample(&theta, &labels[j % 2], &mut r).0).collect();
    let dev = batched_grad_vs_walker(&model, &theta, &labels, &xs);
    assert!(dev < 1e-12, "Const<4>: batched gradient deviates by {dev:e}");
    let (model, theta) = lu_nvp_model(6);
    let labels = vec![vec![0; 6], vec![0, 1, 0, 0, 2, 0]];
    let xs: Vec<_> = (0..5).map(|j| model.sample(&theta, &labels[j % 2], &mut r).0).collect();
    let dev = batched_grad_vs_walker(&model, &theta, &labels, &xs);
    assert!(dev < 1e-12, "Dyn(6) flow!: batched gradient deviates by {dev:e}");
}
