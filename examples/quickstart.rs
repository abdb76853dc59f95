//! Quickstart (foundation version): evaluates a harmonic chain, its forces and Hessian through
//! num-dual, builds a mixed symplectic flow (point transformation of a RealNVP, linear symplectic
//! shears, a leapfrog Hamiltonian flow), and verifies symplecticity, invertibility and the
//! hand-written gradients.

use nct::models::HarmonicChain;
use nct::*;
use nalgebra::{DMatrix, SVector};
use num_dual::Dual64;
use rand::SeedableRng;

const N: usize = 8;

fn main() {
    let chain = HarmonicChain::<N>::new(1.0);
    let q = SVector::<f64, N>::from_fn(|i, _| (0.7 * i as f64).sin());
    let p = SVector::<f64, N>::from_fn(|i, _| (0.3 * i as f64).cos());
    println!("Harmonic chain n = {N}: H = {:.6}", chain.energy(&q, &p));
    println!("forces -dH/dq = {:.4?}", chain.forces(&q, &p).as_slice());
    let hess = chain.hessian(&q, &p);
    let mut w: Vec<f64> = hess.view((0, 0), (N, N)).into_owned().symmetric_eigen().eigenvalues.iter().map(|e| e.sqrt()).collect();
    w.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("normal-mode frequencies from the num-dual Hessian: {:.6?}", w);
    println!("exact 2 sin(k pi / 18):                         {:.6?}", chain.frequencies());

    let mut rng = NctRng::seed_from_u64(2026);
    let flow = Chain::new(
        PointTransform::new(real_nvp::<N>(4, &[32, 32], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng).expect("valid RealNVP")),
        Chain::new(LinearSymplectic::<N>::new().with_init_scale(0.1), HamiltonianFlow::<N>::new(&[16], Activation::Tanh, 2, 0.5).expect("valid flow")),
    );
    let mut theta = flow.new_params(&mut rng);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.05 * ((k as f64) * 0.731).sin();
    }
    println!("\nflow: {} parameters", flow.n_params());
    let x = PhasePoint::new(q, p);
    let mut m = DMatrix::zeros(2 * N, 2 * N);
    for j in 0..2 * N {
        let xv: Vec<Dual64> = x.to_vec().iter().enumerate().map(|(i, &v)| Dual64::new(v, if i == j { 1.0 } else { 0.0 })).collect();
        let (y, _) = flow.forward(&theta, &PhasePoint::from_slice(&xv));
        for (i, yi) in y.to_vec().iter().enumerate() {
            m[(i, j)] = yi.eps;
        }
    }
    let mut omega = DMatrix::zeros(2 * N, 2 * N);
    for i in 0..N {
        omega[(i, N + i)] = 1.0;
        omega[(N + i, i)] = -1.0;
    }
    println!("symplecticity ||M^T Omega M - Omega||_inf = {:.2e}", (m.transpose() * &omega * &m - &omega).abs().max());
    let (y, _) = flow.forward(&theta, &x);
    let back = flow.inverse(&theta, &y);
    println!("round trip |T^-1(T(x)) - x|_inf = {:.2e}", (back.q - x.q).abs().max().max((back.p - x.p).abs().max()));
    let report = check_symplectic(&flow, &theta, &GradCheckConfig::default());
    println!("{report}");
}
