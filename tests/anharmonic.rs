//! The anharmonic latent (oscillators whose frequency depends on their action) end to end:
//! reduction to the harmonic latent bit for bit, and the variational gap it closes on the quartic
//! oscillator against an exact bound on what any harmonic latent can reach.

use nct::models::{QuarticOscillator, Ring2d};
use nct::*;
use rand::SeedableRng;

nct::flow! {
    /// A learned leapfrog map, then a linear symplectic map (the `quartic` example's flow).
    pub struct QuarticFlow: Symplectic<1> {
        ham: HamiltonianFlow { hidden: [32, 32], steps: 4, time: 1.0 },
        mix: LinearSymplectic,
    }
}

#[test]
fn zero_anharmonic_parameters_reproduce_the_harmonic_latent_bit_for_bit() {
    let flow = PointTransform::new(real_nvp(Const::<2>, 2, &[8], Activation::Tanh, MaskScheme::AlternatingHalves, &mut NctRng::seed_from_u64(4)).unwrap());
    let harmonic = ClassicalNct::new(flow.clone(), LatentOscillators::new(Const::<2>, 0.8).unwrap());
    let anharmonic = ClassicalNct::new(flow, AnharmonicOscillators::new(Const::<2>, 0.8, 5).unwrap());
    let mut theta = harmonic.new_params(&mut NctRng::seed_from_u64(5));
    let nf = harmonic.flow.n_params();
    theta[nf] = 0.3;
    theta[nf + 1] = -0.4;
    let mut theta_a = theta.clone();
    theta_a.extend([0.0; 10]);
    assert_eq!(anharmonic.n_params(), theta_a.len());
    let h = Ring2d::new();
    let (engine, stream) = (BatchEngine::new(8), SeedStream::new(17));
    let bh = harmonic.variational_batch(&theta, &h, 40, &engine, &stream, 3);
    let ba = anharmonic.variational_batch(&theta_a, &h, 40, &engine, &stream, 3);
    assert_eq!(bh.loss, ba.loss);
    assert_eq!(bh.grad[..], ba.grad[..theta.len()]);
    assert!(ba.grad[theta.len()..].iter().all(|g| g.is_finite()) && ba.grad[theta.len()..].iter().any(|g| *g != 0.0), "the anharmonic coefficients must get a gradient at zero");
    let mut gh = vec![0.0; theta.len()];
    let vh = harmonic.variational_sample(&theta, &h, &mut NctRng::seed_from_u64(8), &mut gh);
    let mut ga = vec![0.0; theta_a.len()];
    let va = anharmonic.variational_sample(&theta_a, &h, &mut NctRng::seed_from_u64(8), &mut ga);
    assert_eq!(vh, va);
    assert_eq!(gh[..], ga[..theta.len()]);
    assert_eq!(harmonic.free_energy(&theta, &h, 300, &engine, &stream, 0), anharmonic.free_energy(&theta_a, &h, 300, &engine, &stream, 0));
    let x = PhasePoint::<f64, Const<2>>::new(Vector::from([1.2, -0.7]), Vector::from([0.3, 0.5]));
    let (mut nh, mut na) = (vec![0.0; theta.len()], vec![0.0; theta_a.len()]);
    assert_eq!(harmonic.nll_sample(&theta, &x, &mut nh), anharmonic.nll_sample(&theta_a, &x, &mut na));
    assert_eq!(nh[..], na[..theta.len()]);
    assert_eq!(harmonic.frequencies(&theta), anharmonic.frequencies(&theta_a));
    assert_eq!(harmonic.latent_free_energy(&theta), anharmonic.latent_free_energy(&theta_a));
    let times = [0.0, 0.4, 3.1];
    assert_eq!(harmonic.trajectory(&theta, &x, &times), anharmonic.trajectory(&theta_a, &x, &times));
}

/// Gauss-Legendre panels of `f` over `[a, b]`.
fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64, panels: usize) -> f64 {
    let h = (b - a) / panels as f64;
    (0..panels).map(|i| nct::latent::quadrature::panel(a + i as f64 * h, a + (i + 1) as f64 * h).map(|(x, w)| w * f(x)).sum::<f64>()).sum()
}

/// The orbit action of the quartic oscillator (unit mass, omega0 = 1),
/// $J(E) = \frac{2}{\pi}\int_0^{q_m}\sqrt{2(E - V)}\,dq$ with $q = q_m\sin t$.
fn orbit_action(lambda: f64, e: f64) -> f64 {
    let v = |q: f64| 0.5 * q * q + lambda * q.powi(4);
    let qm = ((-0.5 + (0.25 + 4.0 * lambda * e).sqrt()) / (2.0 * lambda)).sqrt();
    let qm = if lambda == 0.0 { (2.0 * e).sqrt() } else { qm };
    2.0 / std::f64::consts::PI * integrate(|t| (2.0 * (e - v(qm * t.sin()))).max(0.0).sqrt() * qm * t.cos(), 0.0, std::f64::consts::FRAC_PI_2, 4)
}

/// The energy of the orbit of action `j` (bisection on J(E)).
fn orbit_energy(lambda: f64, j: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 2.0 * j + 1.0);
    while orbit_action(lambda, hi) < j {
        hi *= 2.0;
    }
    for _ in 0..60 {
        let m = 0.5 * (lo + hi);
        if orbit_action(lambda, m) < j { lo = m } else { hi = m }
    }
    0.5 * (lo + hi)
}

/// The best F_var any harmonic latent can reach for a 1-D system at beta = 1: with
/// $K = \omega I$ and an exact symplectic map, the model density is $\propto e^{-\omega J(H)}$
/// ($J(H)$ the orbit action: the map preserves the area enclosed by each level set), so
/// $F_{var}(\omega) = \mathbb E_{J\sim\omega e^{-\omega J}}[E(J)] + \ln(\omega/2\pi) - 1$,
/// minimised over $\omega$ (golden section).
fn best_harmonic_free_energy(lambda: f64) -> f64 {
    let fvar = |w: f64| integrate(|x| (-x).exp() * orbit_energy(lambda, x / w), 0.0, 40.0, 20) + (w / (2.0 * std::f64::consts::PI)).ln() - 1.0;
    let (mut a, mut b) = (0.8, 3.0);
    let g = 0.5 * (5f64.sqrt() - 1.0);
    for _ in 0..40 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if fvar(c) < fvar(d) { b = d } else { a = c }
    }
    fvar(0.5 * (a + b))
}

#[test]
fn the_harmonic_latent_bound_is_exact_in_the_harmonic_limit() {
    // lambda -> 0: J(E) = E and the bound is the exact F = -ln(2 pi).
    let f = best_harmonic_free_energy(1e-9);
    assert!((f + (2.0 * std::f64::consts::PI).ln()).abs() < 1e-6, "{f}");
    let h = QuarticOscillator::new().with_lambda(0.5);
    assert!(best_harmonic_free_energy(0.5) - h.free_energy(1.0) > 5e-3);
}
