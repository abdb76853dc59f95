//! Structural invariants and gradient checks of every built-in layer (f64, random weights).

use nalgebra::DMatrix;
use nct_core::*;
use num_dual::Dual64;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn rng(seed: u64) -> NctRng {
    NctRng::seed_from_u64(seed)
}

/// Initialise, then perturb every parameter so that zero-initialised last layers are not trivial.
fn random_params<P: Parametrised>(p: &P, seed: u64, scale: f64) -> Vec<f64> {
    let mut r = rng(seed);
    let mut theta = p.new_params(&mut r);
    for t in theta.iter_mut() {
        let z: f64 = StandardNormal.sample(&mut r);
        *t += scale * z;
    }
    theta
}

fn random_point<N: Size>(n: N, seed: u64) -> PhasePoint<f64, N> {
    let mut r = rng(seed);
    let mut v = vec![0.0; 2 * n.value()];
    for x in v.iter_mut() {
        *x = StandardNormal.sample(&mut r);
    }
    PhasePoint::from_slice(n, &v)
}

/// Jacobian of a symplectic layer by 2N forward-mode passes.
fn symplectic_jacobian<L: SymplecticLayer<N>, N: Size>(l: &L, theta: &[f64], x: &PhasePoint<f64, N>) -> DMatrix<f64> {
    let xv = x.to_vec();
    let n = x.dim().value();
    let mut m = DMatrix::zeros(2 * n, 2 * n);
    for j in 0..2 * n {
        let xd: Vec<Dual64> = xv.iter().enumerate().map(|(i, &v)| Dual64::new(v, if i == j { 1.0 } else { 0.0 })).collect();
        let (y, _) = l.forward(theta, &PhasePoint::from_slice(x.dim(), &xd));
        for (i, yi) in y.to_vec().iter().enumerate() {
            m[(i, j)] = yi.eps;
        }
    }
    m
}

fn omega(n: usize) -> DMatrix<f64> {
    let mut o = DMatrix::zeros(2 * n, 2 * n);
    for i in 0..n {
        o[(i, n + i)] = 1.0;
        o[(n + i, i)] = -1.0;
    }
    o
}

/// ||M^T Omega M - Omega||_inf, |det M - 1|, round trip and gradient check for one layer.
fn maxdiff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn check_symplectic_layer<L: SymplecticLayer<N>, N: Size>(name: &str, l: &L, seed: u64) {
    let theta = random_params(l, seed, 0.3);
    let n = l.dim().value();
    for k in 0..3 {
        let x = random_point(l.dim(), seed * 10 + k);
        let m = symplectic_jacobian(l, &theta, &x);
        let o = omega(n);
        let err = (m.transpose() * &o * &m - &o).abs().max();
        assert!(err < 1e-10, "{name} (N={n}): ||M^T Omega M - Omega|| = {err:e}");
        let det = m.determinant();
        assert!((det - 1.0).abs() < 1e-9, "{name} (N={n}): det M = {det}");
        let (y, _) = l.forward(&theta, &x);
        let back = l.inverse(&theta, &y);
        let rt = maxdiff(&back.q, &x.q).max(maxdiff(&back.p, &x.p));
        assert!(rt < 1e-12, "{name} (N={n}): round trip error {rt:e}");
    }
    let report = check_symplectic(l, &theta, &GradCheckConfig { seed, ..Default::default() });
    eprintln!("{name} (N={n}, {} params): {report}", l.n_params());
    assert!(report.passed(1e-6, 1e-12), "{name} (N={n}): {report}");
}

fn check_bijector_layer<B: Bijector<N>, N: Size>(name: &str, b: &B, seed: u64) {
    let theta = random_params(b, seed, 0.3);
    let n = b.dim().value();
    for k in 0..3 {
        let x = random_point(b.dim(), seed * 10 + k).q;
        let (y, ld, _) = b.forward(&theta, &x);
        let (back, ld_inv) = b.inverse(&theta, &y);
        let rt = maxdiff(&back, &x);
        assert!(rt < 1e-12, "{name}: round trip error {rt:e}");
        assert!((ld + ld_inv).abs() < 1e-12, "{name}: inverse log-det {ld_inv} != -{ld}");
        // log|det J| from the num-dual Jacobian.
        let mut j = DMatrix::zeros(n, n);
        for c in 0..n {
            let xd: Vector<Dual64, N> = Vector::from_fn(b.dim(), |i| Dual64::new(x[i], if i == c { 1.0 } else { 0.0 }));
            let (yd, _, _) = b.forward(&theta, &xd);
            for i in 0..n {
                j[(i, c)] = yd[i].eps;
            }
        }
        let ld_ref = j.determinant().abs().ln();
        assert!((ld - ld_ref).abs() < 1e-12, "{name}: log-det {ld} vs Jacobian {ld_ref}");
    }
    let report = check_bijector(b, &theta, &GradCheckConfig { seed, ..Default::default() });
    eprintln!("{name} (N={n}, {} params): {report}", b.n_params());
    assert!(report.passed(1e-6, 1e-12), "{name}: {report}");
}

fn nvp<N: Size>(n: N, couplings: usize, masks: MaskScheme, seed: u64) -> RealNvp<N> {
    real_nvp(n, couplings, &[6, 5], Activation::Tanh, masks, &mut rng(seed)).unwrap()
}

#[test]
fn coupling_and_realnvp_bijectors() {
    check_bijector_layer("coupling", &AffineCoupling::new(Const::<2>, vec![1], &[4], Activation::Tanh).unwrap(), 1);
    check_bijector_layer("coupling softplus", &AffineCoupling::new(Const::<5>, vec![0, 3], &[7], Activation::Softplus).unwrap(), 2);
    check_bijector_layer("realnvp halves", &nvp(Const::<4>, 4, MaskScheme::AlternatingHalves, 3), 3);
    check_bijector_layer("realnvp even/odd", &nvp(Const::<3>, 3, MaskScheme::EvenOdd, 4), 4);
    check_bijector_layer("realnvp random", &nvp(Const::<8>, 4, MaskScheme::RandomPermutation, 5), 5);
    let chain = Chain::new(nvp(Const::<4>, 2, MaskScheme::EvenOdd, 6), AffineCoupling::new(Const::<4>, vec![2, 3], &[3], Activation::Tanh).unwrap());
    check_bijector_layer("chain of bijectors", &chain, 6);
}

#[test]
fn coupling_rejects_bad_masks() {
    assert!(AffineCoupling::new(Const::<1>, vec![0], &[4], Activation::Tanh).is_err());
    assert!(AffineCoupling::new(Const::<3>, vec![0, 1, 2], &[4], Activation::Tanh).is_err());
    assert!(AffineCoupling::new(Const::<3>, vec![0, 0], &[4], Activation::Tanh).is_err());
    assert!(AffineCoupling::new(Const::<3>, vec![5], &[4], Activation::Tanh).is_err());
    assert!(real_nvp(Const::<4>, 0, &[4], Activation::Tanh, MaskScheme::EvenOdd, &mut rng(0)).is_err());
}

#[test]
fn symplectic_layers_n1() {
    check_symplectic_layer("linear", &LinearSymplectic::new(Const::<1>), 11);
    check_symplectic_layer("scaling", &SymplecticScaling::new(Const::<1>), 12);
    check_symplectic_layer("kick", &GradientShear::kick(Const::<1>, &[5], Activation::Tanh), 13);
    check_symplectic_layer("drift", &GradientShear::drift(Const::<1>, &[5], Activation::Softplus), 14);
    check_symplectic_layer("leapfrog", &HamiltonianFlow::new(Const::<1>, &[5], Activation::Tanh, 3, 0.7).unwrap(), 15);
}

#[test]
fn symplectic_layers_n2() {
    check_symplectic_layer("linear", &LinearSymplectic::new(Const::<2>), 21);
    check_symplectic_layer("scaling", &SymplecticScaling::new(Const::<2>), 22);
    check_symplectic_layer("point(coupling)", &PointTransform::new(AffineCoupling::new(Const::<2>, vec![0], &[6], Activation::Tanh).unwrap()), 23);
    check_symplectic_layer("point(realnvp)", &PointTransform::new(nvp(Const::<2>, 3, MaskScheme::AlternatingHalves, 24)), 24);
    check_symplectic_layer("kick", &GradientShear::kick(Const::<2>, &[5], Activation::Tanh), 25);
    check_symplectic_layer("leapfrog", &HamiltonianFlow::new(Const::<2>, &[5, 4], Activation::Tanh, 2, 0.5).unwrap(), 26);
}

#[test]
fn symplectic_layers_n8_and_mixed_stack() {
    check_symplectic_layer("linear", &LinearSymplectic::new(Const::<8>), 31);
    check_symplectic_layer("scaling", &SymplecticScaling::new(Const::<8>), 32);
    check_symplectic_layer("point(realnvp)", &PointTransform::new(nvp(Const::<8>, 4, MaskScheme::RandomPermutation, 33)), 33);
    check_symplectic_layer("leapfrog", &HamiltonianFlow::new(Const::<8>, &[6], Activation::Tanh, 2, 0.5).unwrap(), 34);
    let mixed = Chain::new(
        Chain::new(PointTransform::new(nvp(Const::<8>, 2, MaskScheme::EvenOdd, 35)), LinearSymplectic::new(Const::<8>)),
        Chain::new(Chain::new(SymplecticScaling::new(Const::<8>), GradientShear::drift(Const::<8>, &[4], Activation::Tanh)), HamiltonianFlow::new(Const::<8>, &[4], Activation::Softplus, 2, 0.3).unwrap()),
    );
    check_symplectic_layer("mixed stack", &mixed, 36);
    let mixed2 = Chain::new(Chain::new(LinearSymplectic::new(Const::<2>), PointTransform::new(nvp(Const::<2>, 2, MaskScheme::EvenOdd, 37))), GradientShear::kick(Const::<2>, &[3], Activation::Tanh));
    check_symplectic_layer("mixed stack", &mixed2, 37);
    let stack = Stack::new(vec![GradientShear::kick(Const::<8>, &[3], Activation::Tanh), GradientShear::drift(Const::<8>, &[3], Activation::Tanh)]);
    check_symplectic_layer("stack of shears", &stack, 38);
}

#[test]
fn point_transform_momentum_is_inverse_transpose_jacobian() {
    let b = nvp(Const::<3>, 3, MaskScheme::EvenOdd, 41);
    let theta = random_params(&b, 41, 0.3);
    let x = random_point(Const::<3>, 42);
    let pt = PointTransform::new(b.clone());
    let (y, _) = SymplecticLayer::forward(&pt, &theta, &x);
    let mut j = DMatrix::zeros(3, 3);
    for c in 0..3 {
        let xd: Vector<Dual64, Const<3>> = Vector::from_fn(Const, |i| Dual64::new(x.q[i], if i == c { 1.0 } else { 0.0 }));
        let (yd, _, _) = Bijector::forward(&b, &theta, &xd);
        for i in 0..3 {
            j[(i, c)] = yd[i].eps;
            assert!((yd[i].re - y.q[i]).abs() < 1e-14);
        }
    }
    let p_ref = j.transpose().lu().solve(&DMatrix::from_column_slice(3, 1, x.p.as_slice())).unwrap();
    for i in 0..3 {
        assert!((p_ref[i] - y.p[i]).abs() < 1e-12, "P = J^-T p: {} vs {}", y.p[i], p_ref[i]);
    }
}

#[test]
fn dense_layer_gradients() {
    let mlp = Mlp::new(Const::<3>, Const::<2>, &[7, 5], Activation::Tanh, 1.0);
    let theta = random_params(&mlp, 51, 0.2);
    let r = check_gradients(&AsLayer::<_, Const<3>, Const<2>>::new(&mlp), &theta, &GradCheckConfig::default());
    assert!(r.passed(1e-6, 1e-12), "{r}");
    let mlp = Mlp::new(Const::<4>, Const::<1>, &[6], Activation::Softplus, 1.0);
    let theta = random_params(&mlp, 52, 0.2);
    let r = check_gradients(&AsLayer::<_, Const<4>, Const<1>>::new(&mlp), &theta, &GradCheckConfig::default());
    assert!(r.passed(1e-6, 1e-12), "{r}");
}

#[test]
fn identity_at_initialisation() {
    let flow = Chain::new(PointTransform::new(nvp(Const::<4>, 2, MaskScheme::EvenOdd, 61)), Chain::new(LinearSymplectic::new(Const::<4>), HamiltonianFlow::new(Const::<4>, &[4], Activation::Tanh, 2, 1.0).unwrap()));
    let theta = flow.new_params(&mut rng(61));
    let x = random_point(Const::<4>, 62);
    let (y, _) = flow.forward(&theta, &x);
    assert_eq!(y, x, "zero-initialised last layers make the flow the identity");
}

#[test]
fn gradient_checker_catches_a_wrong_vjp() {
    /// A coupling whose VJP drops the log-det term: the checker must flag it.
    struct Broken(AffineCoupling<Const<2>>);
    impl Parametrised for Broken {
        fn n_params(&self) -> usize {
            self.0.n_params()
        }
        fn init_params(&self, r: &mut dyn rand::Rng, t: &mut [f64]) {
            self.0.init_params(r, t)
        }
    }
    impl Bijector<Const<2>> for Broken {
        type Cache<D: Scalar> = <AffineCoupling<Const<2>> as Bijector<Const<2>>>::Cache<D>;
        fn dim(&self) -> Const<2> {
            Const
        }
        fn forward<D: Scalar>(&self, th: &[f64], x: &Vector<D, Const<2>>) -> (Vector<D, Const<2>>, D, Self::Cache<D>) {
            self.0.forward(th, x)
        }
        fn inverse<D: Scalar>(&self, th: &[f64], y: &Vector<D, Const<2>>) -> (Vector<D, Const<2>>, D) {
            self.0.inverse(th, y)
        }
        fn vjp<D: Scalar>(&self, th: &[f64], c: &Self::Cache<D>, yb: &Vector<D, Const<2>>, _ld: D, g: &mut [D]) -> Vector<D, Const<2>> {
            self.0.vjp(th, c, yb, D::zero(), g)
        }
    }
    let b = Broken(AffineCoupling::new(Const, vec![0], &[4], Activation::Tanh).unwrap());
    let theta = random_params(&b, 71, 0.3);
    let r = check_bijector(&b, &theta, &GradCheckConfig::default());
    assert!(!r.passed(1e-6, 1e-12), "a VJP without the log-det term must fail: {r}");
}

#[test]
fn cpu_backend_is_bitwise_deterministic_and_matches_per_sample_path() {
    let net = DenseNet::new(&[6, 32, 32, 4], Activation::Tanh, 1.0);
    let theta = random_params(&net, 81, 0.1);
    let b = 37;
    let x = nalgebra::DMatrix::<f64>::from_fn(6, b, |i, j| ((i * 13 + j * 7) as f64 * 0.113).sin());
    let ybar = nalgebra::DMatrix::<f64>::from_fn(4, b, |i, j| ((i * 5 + j * 3) as f64 * 0.29).cos());
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
            let be = CpuBackend::new(8);
            let acts = be.dense_forward(&net, &theta, &x);
            let mut g = vec![0.0; net.n_params()];
            let xbar = be.dense_vjp(&net, &theta, &acts, &ybar, &mut g);
            (acts.last().unwrap().clone(), xbar, g)
        })
    };
    let (y1, xb1, g1) = run(1);
    let (y2, xb2, g2) = run(2);
    assert!(y1.iter().zip(y2.iter()).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(xb1.iter().zip(xb2.iter()).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(g1.iter().zip(&g2).all(|(a, b)| a.to_bits() == b.to_bits()));
    // Same numbers as the scalar-generic per-sample path.
    let mut g_ref = vec![0.0; net.n_params()];
    for s in 0..b {
        let xs: Vec<f64> = x.column(s).iter().copied().collect();
        let a = net.forward(&theta, &xs);
        let ys: Vec<f64> = ybar.column(s).iter().copied().collect();
        net.backprop(&theta, &a, &ys, Some(&mut g_ref));
        for i in 0..4 {
            assert!((net.output(&a)[i] - y1[(i, s)]).abs() < 1e-13);
        }
    }
    for (a, r) in g1.iter().zip(&g_ref) {
        assert!((a - r).abs() < 1e-11 * (1.0 + r.abs()));
    }
}

#[test]
fn backend_energies_and_gradients_match_hamiltonian() {
    struct Quartic;
    impl Separable<Const<3>> for Quartic {
        fn dim(&self) -> Const<3> {
            Const
        }
        fn potential<D: Scalar>(&self, q: &Vector<D, Const<3>>) -> D {
            q[0].powi(4) * 0.25 + q[1] * q[2] * 0.5 + q[2] * q[2]
        }
    }
    let pts: Vec<PhasePoint<f64, Const<3>>> = (0..20).map(|s| random_point(Const::<3>, s)).collect();
    let out = CpuBackend::default().energies_and_gradients(&Quartic, &pts);
    for (x, (e, g)) in pts.iter().zip(&out) {
        let v = x.q[0].powi(4) * 0.25 + x.q[1] * x.q[2] * 0.5 + x.q[2] * x.q[2] + x.p.norm_squared() / 2.0;
        assert!((e - v).abs() < 1e-14);
        let dq = [x.q[0].powi(3), 0.5 * x.q[2], 0.5 * x.q[1] + 2.0 * x.q[2]];
        for i in 0..3 {
            assert!((g.q[i] - dq[i]).abs() < 1e-14 && (g.p[i] - x.p[i]).abs() < 1e-15);
        }
    }
}

#[test]
fn linear_bijector() {
    check_bijector_layer("linear bijector N=1", &LinearBijector::new(Const::<1>), 91);
    check_bijector_layer("linear bijector N=4", &LinearBijector::new(Const::<4>), 92);
    check_bijector_layer("linear + realnvp", &Chain::new(LinearBijector::new(Const::<3>), nvp(Const::<3>, 2, MaskScheme::EvenOdd, 93)), 93);
}
