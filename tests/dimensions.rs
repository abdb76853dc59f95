//! One code path for compile-time (`Const<D>`) and runtime (`Dyn`) dimensions: every layer, model,
//! and quantum estimator built both ways from the same seed must agree (they run the same
//! arithmetic, so the tolerance 1e-12 is met with room), and large runtime systems work without
//! stack overflow.

use nct::models::vibrational::{HarmonicModes, Ndco};
use nct::models::{DynHarmonicChain, HarmonicChain};
use nct::*;
use num_dual::Dual64;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn rng(seed: u64) -> NctRng {
    NctRng::seed_from_u64(seed)
}

fn maxdiff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn params<P: Parametrised>(p: &P, seed: u64) -> Vec<f64> {
    let mut r = rng(seed);
    let mut theta = p.new_params(&mut r);
    for t in theta.iter_mut() {
        let z: f64 = StandardNormal.sample(&mut r);
        *t += 0.2 * z;
    }
    theta
}

fn point(d: usize, seed: u64) -> Vec<f64> {
    let mut r = rng(seed);
    (0..2 * d).map(|_| StandardNormal.sample(&mut r)).collect()
}

/// Forward, inverse, VJP and the mixed forward-over-reverse terms of a symplectic layer, as flat
/// vectors (for comparison across dimension types).
fn symplectic_outputs<L: SymplecticLayer<N>, N: Size>(l: &L, theta: &[f64], v: &[f64]) -> Vec<f64> {
    let n = l.dim();
    let x = PhasePoint::from_slice(n, v);
    let (y, cache) = l.forward(theta, &x);
    let back = l.inverse(theta, &y);
    let ybar = PhasePoint::from_slice(n, &v.iter().map(|t| t.sin()).collect::<Vec<_>>());
    let mut g = vec![0.0; l.n_params()];
    let xbar = l.vjp(theta, &cache, &ybar, &mut g);
    // Mixed term: VJP on Dual64 inputs with tangent v.
    let xd = PhasePoint::from_slice(n, &v.iter().map(|&t| Dual64::new(t, t.cos())).collect::<Vec<_>>());
    let (_, cd) = l.forward(theta, &xd);
    let mut gd = vec![Dual64::from(0.0); l.n_params()];
    let xbar_d = l.vjp(theta, &cd, &ybar.map(Dual64::from), &mut gd);
    let mut out = y.to_vec();
    out.extend(back.to_vec());
    out.extend(xbar.to_vec());
    out.extend(g);
    out.extend(xbar_d.to_vec().iter().map(|d| d.eps));
    out.extend(gd.iter().map(|d| d.eps));
    out
}

fn bijector_outputs<B: Bijector<N>, N: Size>(b: &B, theta: &[f64], v: &[f64]) -> Vec<f64> {
    let n = b.dim();
    let x = Vector::from_fn(n, |i| v[i]);
    let (y, ld, cache) = b.forward(theta, &x);
    let (back, ldi) = b.inverse(theta, &y);
    let ybar = Vector::from_fn(n, |i| v[i].sin());
    let mut g = vec![0.0; b.n_params()];
    let xbar = b.vjp(theta, &cache, &ybar, 0.7, &mut g);
    let xd = Vector::from_fn(n, |i| Dual64::new(v[i], v[i].cos()));
    let (_, _, cd) = b.forward(theta, &xd);
    let mut gd = vec![Dual64::from(0.0); b.n_params()];
    let xbar_d = b.vjp(theta, &cd, &ybar.map(Dual64::from), Dual64::from(0.7), &mut gd);
    let mut out = y.to_vec();
    out.extend([ld, ldi]);
    out.extend(back.iter());
    out.extend(xbar.iter());
    out.extend(g);
    out.extend(xbar_d.iter().map(|d| d.eps));
    out.extend(gd.iter().map(|d| d.eps));
    out
}

fn lift_outputs<B: CotangentLift<N> + Clone, N: Size>(b: &B, theta: &[f64], v: &[f64]) -> Vec<f64> {
    symplectic_outputs(&PointTransform::new(b.clone()), theta, v)
}

macro_rules! compare_dims {
    ($($d:literal),*) => {$(
        {
            const D: usize = $d;
            let (s, y) = (Const::<D>, Dyn(D));
            let v = point(D, 100 + D as u64);
            let check = |name: &str, a: Vec<f64>, b: Vec<f64>| {
                let e = maxdiff(&a, &b);
                assert!(e <= 1e-12, "{name}, D = {D}: static and runtime paths differ by {e:e}");
            };
            // Symplectic layers.
            let (ls, ly) = (LinearSymplectic::with_shears(s, 4), LinearSymplectic::with_shears(y, 4));
            let th = params(&ls, 1);
            check("LinearSymplectic", symplectic_outputs(&ls, &th, &v), symplectic_outputs(&ly, &th, &v));
            let th = params(&SymplecticScaling::new(s), 2);
            check("SymplecticScaling", symplectic_outputs(&SymplecticScaling::new(s), &th, &v), symplectic_outputs(&SymplecticScaling::new(y), &th, &v));
            let (ks, ky) = (GradientShear::kick(s, &[5], Activation::Tanh), GradientShear::kick(y, &[5], Activation::Tanh));
            let th = params(&ks, 3);
            check("Kick", symplectic_outputs(&ks, &th, &v), symplectic_outputs(&ky, &th, &v));
            let (ds, dy) = (GradientShear::drift(s, &[5], Activation::Softplus), GradientShear::drift(y, &[5], Activation::Softplus));
            check("Drift", symplectic_outputs(&ds, &th, &v), symplectic_outputs(&dy, &th, &v));
            let (hs, hy) = (HamiltonianFlow::new(s, &[4], Activation::Tanh, 2, 0.5).unwrap(), HamiltonianFlow::new(y, &[4], Activation::Tanh, 2, 0.5).unwrap());
            let th = params(&hs, 4);
            check("HamiltonianFlow", symplectic_outputs(&hs, &th, &v), symplectic_outputs(&hy, &th, &v));
            // Configuration-space layers and their cotangent lifts.
            let (us, uy) = (LinearBijector::new(s), LinearBijector::new(y));
            let th = params(&us, 5);
            check("LinearBijector", bijector_outputs(&us, &th, &v), bijector_outputs(&uy, &th, &v));
            if D >= 2 {
                for masks in [MaskScheme::AlternatingHalves, MaskScheme::EvenOdd, MaskScheme::RandomPermutation] {
                    let ns = real_nvp(s, 3, &[6, 5], Activation::Tanh, masks, &mut rng(6)).unwrap();
                    let ny = real_nvp(y, 3, &[6, 5], Activation::Tanh, masks, &mut rng(6)).unwrap();
                    let th = params(&ns, 7);
                    check("RealNvp", bijector_outputs(&ns, &th, &v), bijector_outputs(&ny, &th, &v));
                    check("PointTransform<RealNvp>", lift_outputs(&ns, &th, &v), lift_outputs(&ny, &th, &v));
                    // Batched GEMM path.
                    let (ps, py) = (PointTransform::new(ns.clone()), PointTransform::new(ny.clone()));
                    let pts_s: Vec<PhasePoint<f64, Const<D>>> = (0..5).map(|k| PhasePoint::from_slice(s, &point(D, k))).collect();
                    let pts_y: Vec<PhasePoint<f64, Dyn>> = (0..5).map(|k| PhasePoint::from_slice(y, &point(D, k))).collect();
                    let (bs, cs) = ps.forward_batch(&th, &PhaseBatch::from_points(&pts_s));
                    let (by, cy) = py.forward_batch(&th, &PhaseBatch::from_points(&pts_y));
                    assert_eq!(bs, by);
                    let (mut gs, mut gy) = (vec![0.0; th.len()], vec![0.0; th.len()]);
                    let xs = ps.vjp_batch(&th, &cs, &bs, &mut gs);
                    let xy = py.vjp_batch(&th, &cy, &by, &mut gy);
                    assert_eq!(xs, xy);
                    check("batched VJP", gs, gy);
                }
                // Gradient checker on the runtime layer.
                let ny = real_nvp(y, 2, &[4], Activation::Tanh, MaskScheme::EvenOdd, &mut rng(8)).unwrap();
                let th = params(&ny, 9);
                let report = check_symplectic(&PointTransform::new(ny), &th, &GradCheckConfig::default());
                assert!(report.passed(1e-6, 1e-12), "runtime PointTransform<RealNvp>, D = {D}: {report}");
            }
            // Models: Hamiltonian gradients and Hessians, latent oscillators.
            let (hs, hy) = (Ndco::new(s, 0.2), Ndco::new(y, 0.2));
            let qs = Vector::from_fn(s, |i| v[i]);
            let qy = Vector::from_fn(y, |i| v[i]);
            let (vs, gs, hess_s) = hs.potential_hessian(&qs);
            let (vy, gy, hess_y) = hy.potential_hessian(&qy);
            assert!((vs - vy).abs() <= 1e-12 && maxdiff(&gs, &gy) <= 1e-12 && (hess_s - hess_y).abs().max() <= 1e-12);
            let (lats, laty) = (LatentOscillators::new(s, 1.3).unwrap(), LatentOscillators::new(y, 1.3).unwrap());
            let th: Vec<f64> = (0..D).map(|k| 0.1 * k as f64).collect();
            let (zs, zy) = (lats.sample(&th, &mut rng(10)), laty.sample(&th, &mut rng(10)));
            assert_eq!(zs.to_vec(), zy.to_vec());
            assert_eq!(lats.log_prob(&th, &zs), laty.log_prob(&th, &zy));
            // Quantum: local energies (jet, Dual2, Hutchinson), sampling and Ritz rows.
            if D >= 2 {
                let fs = Chain::new(LinearBijector::new(s), real_nvp(s, 2, &[6], Activation::Tanh, MaskScheme::EvenOdd, &mut rng(11)).unwrap());
                let fy = Chain::new(LinearBijector::new(y), real_nvp(y, 2, &[6], Activation::Tanh, MaskScheme::EvenOdd, &mut rng(11)).unwrap());
                let th = params(&fs, 12);
                let omega: Vec<f64> = (0..D).map(|i| 0.6 + 0.2 * i as f64).collect();
                let masses: Vec<f64> = (0..D).map(|i| 1.0 + 0.1 * i as f64).collect();
                let ms = QuantumNct::new(fs, Vector::from_fn(s, |i| omega[i]), Vector::from_fn(s, |i| masses[i]), 4);
                let my = QuantumNct::new(fy, Vector::from_fn(y, |i| omega[i]), Vector::from_fn(y, |i| masses[i]), 4);
                let n: Vec<usize> = (0..D).map(|i| i % 2).collect();
                let (xs, _) = ms.sample(&th, &n, &mut rng(13));
                let (xy, _) = my.sample(&th, &n, &mut rng(13));
                assert_eq!(xs.as_slice(), xy.as_slice());
                let (hs, hy) = (Ndco::new(s, 0.1), Ndco::new(y, 0.1));
                let (es, ey) = (ms.local_energy_jet(&th, &hs, &n, &xs), my.local_energy_jet(&th, &hy, &n, &xy));
                assert!((es - ey).abs() <= 1e-12 * (1.0 + es.abs()), "jet D = {D}: {es} vs {ey}");
                let (e2s, e2y) = (ms.local_energy(&th, &hs, &n, &xs), my.local_energy(&th, &hy, &n, &xy));
                assert!((e2s - e2y).abs() <= 1e-12 * (1.0 + e2s.abs()) && (e2s - es).abs() <= 1e-9 * (1.0 + es.abs()), "Dual2 D = {D}: {e2s} {e2y} jet {es}");
                let (hus, huy) = (ms.kinetic_hutchinson(&th, &n, &xs, 3, &mut rng(14)), my.kinetic_hutchinson(&th, &n, &xy, 3, &mut rng(14)));
                assert!((hus - huy).abs() <= 1e-12 * (1.0 + hus.abs()));
                let mut gs = vec![0.0; th.len()];
                let mut gy = vec![0.0; th.len()];
                ms.add_log_psi_grad(&th, &n, &xs, 0.9, &mut gs);
                my.add_log_psi_grad(&th, &n, &xy, 0.9, &mut gy);
                check("d ln psi / d theta", gs, gy);
                let basis = nct::quantum::basis::lowest_levels(&omega, 4);
                let (ps, rs) = ms.basis_rows(&th, &hs, &basis, &xs).unwrap();
                let (py, ry) = my.basis_rows(&th, &hy, &basis, &xy).unwrap();
                check("Ritz phi", ps, py);
                check("Ritz H phi", rs, ry);
            }
        }
    )*};
}

#[test]
fn static_and_runtime_paths_agree() {
    compare_dims!(1, 2, 3, 8, 12);
}

#[test]
fn runtime_chain_equals_static_chain_in_training() {
    // Same seed, same flow, same batches: the variational batch sum agrees for n = 8.
    let hs = HarmonicChain::<8>::new().with_kappa(1.3);
    let hy = DynHarmonicChain::new().with_n(8).with_kappa(1.3);
    let ms = ClassicalNct::new(PointTransform::new(real_nvp(Const::<8>, 2, &[16], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng(1)).unwrap()), LatentOscillators::new(Const::<8>, 1.0).unwrap());
    let my = ClassicalNct::new(PointTransform::new(real_nvp(Dyn(8), 2, &[16], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng(1)).unwrap()), LatentOscillators::new(Dyn(8), 1.0).unwrap());
    let th = params(&ms, 2);
    let engine = BatchEngine::new(8);
    let stream = SeedStream::new(5);
    let a = ms.variational_batch(&th, &hs, 32, &engine, &stream, 0);
    let b = my.variational_batch(&th, &hy, 32, &engine, &stream, 0);
    assert!((a.loss - b.loss).abs() <= 1e-12 * a.loss.abs());
    assert!(maxdiff(&a.grad, &b.grad) <= 1e-12);
    // A runtime flow bound to a latent of another runtime dimension is an error, not a panic.
    let err = ClassicalNct::try_new(LinearSymplectic::new(Dyn(3)), LatentOscillators::new(Dyn(4), 1.0).unwrap()).unwrap_err();
    assert!(err.to_string().contains('4') && err.to_string().contains('3'), "{err}");
}

/// Runs `f` on a thread with rayon's default worker stack (2 MiB), where a D^2 array on the stack
/// would overflow.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap().join().unwrap();
}

#[test]
fn identity_flow_is_exact_at_d747() {
    on_small_stack(|| {
        let d = Dyn(747);
        let omega = Vector::from_fn(d, |i| 0.5 + (i as f64 * 0.37).sin().abs());
        let h = HarmonicModes { omega: omega.clone() };
        let model = QuantumNct::new(LinearBijector::new(d), omega.clone(), h.masses(), 2);
        let theta = vec![0.0; model.n_params()];
        let n = vec![0usize; 747];
        let exact: f64 = omega.iter().sum::<f64>() / 2.0;
        let mut r = rng(3);
        for _ in 0..3 {
            let (x, _) = model.sample(&theta, &n, &mut r);
            let e = model.local_energy_jet(&theta, &h, &n, &x);
            assert!((e - exact).abs() < 1e-10 * exact, "E_loc = {e}, exact {exact}");
            // Hutchinson is exact for product states.
            let k = model.kinetic_hutchinson(&theta, &n, &x, 1, &mut r);
            assert!((k + h.potential(&x) - exact).abs() < 1e-10 * exact);
        }
    });
}

#[test]
fn realnvp_at_d747_jet_against_hutchinson() {
    on_small_stack(|| {
        let d = Dyn(747);
        let flow = real_nvp(d, 6, &[128, 128], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng(4)).unwrap();
        let mut theta = flow.new_params(&mut rng(5));
        for (k, t) in theta.iter_mut().enumerate() {
            *t += 0.02 * ((k as f64) * 0.61).sin();
        }
        let omega = Vector::from_fn(d, |i| 0.8 + 0.001 * i as f64);
        let masses = omega.map(|w| 1.0 / w);
        let model = QuantumNct::new(flow, omega, masses, 2);
        let n = vec![0usize; 747];
        let (x, _) = model.sample(&theta, &n, &mut rng(6));
        let exact = model.kinetic_jet(&theta, &n, &x);
        assert!(exact.is_finite());
        // Many independent probes (each one unbiased) average to the exact kinetic energy.
        let mut r = rng(7);
        let est: Vec<f64> = (0..48).map(|_| model.kinetic_hutchinson(&theta, &n, &x, 4, &mut r)).collect();
        let (m, err) = mean_and_error(&est);
        assert!(err > 0.0 && (m - exact).abs() < 4.0 * err, "Hutchinson {m} +- {err} vs jet {exact}");
    });
}
