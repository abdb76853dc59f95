//! The anharmonic latent (oscillators whose frequency depends on their action) end to end:
//! reduction to the harmonic latent bit for bit, and the variational gap it closes on the quartic
//! oscillator against an exact bound on what any harmonic latent can reach.

use nct::latent::quadrature::integrate;
use nct::models::{OneDofFlow, QuarticOscillator, Ring2d};
use nct::*;
use rand::SeedableRng;

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
    for lambda in [0.1, 0.5] {
        let gap = best_harmonic_free_energy(lambda) - QuarticOscillator::new().with_lambda(lambda).free_energy(1.0);
        eprintln!("lambda = {lambda}: best harmonic-latent F_var - F = {gap:.6}");
        assert!(gap > 0.0);
    }
}


/// Variational training on the batched path (Adam, cosine decay to 2%, as the driver does).
fn train<B: Latent<Const<1>>>(model: &ClassicalNct<OneDofFlow, Const<1>, B>, h: &QuarticOscillator, steps: u64, seed: u64) -> Vec<f64> {
    let mut theta = model.new_params(&mut NctRng::seed_from_u64(seed));
    let (engine, stream) = (BatchEngine::new(64), SeedStream::new(seed));
    let lr = 0.01;
    let mut opt = Adam::new(theta.len(), lr);
    run_steps(&mut theta, &mut opt, lr, Schedule::Cosine { total: steps, min_factor: 0.02 }, 0, steps, |th, step| model.variational_batch(th, h, 256, &engine, &stream, step), |_, _| {}).unwrap();
    theta
}

/// The exact angular frequency dE/dJ of the orbit through (q0, 0).
fn orbit_frequency(lambda: f64, q0: f64) -> f64 {
    let e = 0.5 * q0 * q0 + lambda * q0.powi(4);
    let d = 1e-4 * e;
    2.0 * d / (orbit_action(lambda, e + d) - orbit_action(lambda, e - d))
}

/// Phase difference in rad over ten periods between the latent dynamics of `model` and leapfrog
/// integration of `h`, from (q0, 0).
fn phase_error<B: Latent<Const<1>>>(model: &ClassicalNct<OneDofFlow, Const<1>, B>, theta: &[f64], h: &QuarticOscillator, lambda: f64, q0: f64) -> f64 {
    let x0 = PhasePoint::<f64, Const<1>>::new(Vector::from([q0]), Vector::from([0.0]));
    let (samples, per) = (400, 50);
    let dt = 10.0 * 2.0 * std::f64::consts::PI / orbit_frequency(lambda, q0) / (samples * per) as f64;
    let reference = nct::dynamics::leapfrog(h, &x0, dt, per, samples);
    let times: Vec<f64> = (1..=samples).map(|i| (i * per) as f64 * dt).collect();
    nct::dynamics::phase_difference(&model.trajectory(theta, &x0, &times), &reference, 0, 1.0)
}

fn quartic_case(lambda: f64) {
    let h = QuarticOscillator::new().with_lambda(lambda);
    let f = h.free_energy(1.0);
    let bound = best_harmonic_free_energy(lambda);
    let flow = OneDofFlow::new(1);
    let harmonic = ClassicalNct::new(flow.clone(), LatentOscillators::new(Const::<1>, 1.0).unwrap()).with_path_gradient(true);
    let anharmonic = ClassicalNct::new(flow, AnharmonicOscillators::new(Const::<1>, 1.0, 8).unwrap()).with_path_gradient(true);
    let (th_h, th_a) = (train(&harmonic, &h, 1500, 1), train(&anharmonic, &h, 1500, 1));
    let (engine, stream) = (BatchEngine::new(1000), SeedStream::new(77));
    let (fe_h, fe_a) = (harmonic.free_energy(&th_h, &h, 40_000, &engine, &stream, 0), anharmonic.free_energy(&th_a, &h, 40_000, &engine, &stream, 0));
    eprintln!("lambda = {lambda}: exact F = {f:.5}, best harmonic latent {bound:.5}; harmonic F_var = {:.5} +- {:.5} (F_is {:.5}, ESS {:.0}); anharmonic F_var = {:.5} +- {:.5} (F_is {:.5}, ESS {:.0})", fe_h.f_var, fe_h.f_var_err, fe_h.f_is, fe_h.ess, fe_a.f_var, fe_a.f_var_err, fe_a.f_is, fe_a.ess);
    // Both are upper bounds of F; no harmonic latent gets below its exact bound.
    assert!(fe_h.f_var > bound - 3.0 * fe_h.f_var_err && fe_a.f_var > f - 3.0 * fe_a.f_var_err);
    // The anharmonic latent closes the gap to 2e-3, below what any harmonic latent can reach.
    assert!(fe_a.f_var - f < 2e-3, "anharmonic F_var - F = {}", fe_a.f_var - f);
    assert!(fe_a.f_var < bound - 3.0 * fe_a.f_var_err);
    // Latent dynamics against the exact orbit frequency and against leapfrog over ten periods.
    let (mut worst_h, mut worst_a) = (0.0f64, 0.0f64);
    for q0 in [0.5, 1.0, 1.5] {
        let x0 = PhasePoint::<f64, Const<1>>::new(Vector::from([q0]), Vector::from([0.0]));
        let exact = orbit_frequency(lambda, q0);
        let (wh, wa) = (harmonic.latent_frequency_at(&th_h, &x0)[0], anharmonic.latent_frequency_at(&th_a, &x0)[0]);
        let (phase_h, phase_a) = (phase_error(&harmonic, &th_h, &h, lambda, q0), phase_error(&anharmonic, &th_a, &h, lambda, q0));
        eprintln!("  q0 = {q0}: orbit frequency {exact:.5}; harmonic latent {wh:.5} (phase error over ten periods {phase_h:.3} rad), anharmonic {wa:.5} ({phase_a:.3} rad)");
        assert!((wa / exact - 1.0).abs() < 0.1, "q0 = {q0}: {wa} vs {exact}");
        worst_h = worst_h.max((wh / exact - 1.0).abs());
        worst_a = worst_a.max((wa / exact - 1.0).abs());
    }
    // One frequency cannot follow the orbits; the anharmonic latent's worst error is smaller.
    assert!(worst_a < 0.5 * worst_h, "worst relative frequency error: anharmonic {worst_a}, harmonic {worst_h}");
}

#[test]
fn quartic_oscillator_lambda_0_1_anharmonic_latent_closes_the_variational_gap() {
    quartic_case(0.1);
}

#[test]
fn quartic_oscillator_lambda_0_5_anharmonic_latent_closes_the_variational_gap() {
    quartic_case(0.5);
}

#[test]
fn conjugacy_fit_sharpens_the_latent_dynamics_of_the_quartic_oscillator() {
    // A small flow (2 x 8 tanh per generator, 790 parameters) trained variationally, then the
    // Levenberg-Marquardt fit of H(T(z)) = K(z) + c on 4000 latent points, each residual divided
    // by K(z) + 0.3 <K> (relative accuracy at every amplitude) and the points spread into the
    // thermal tail by up to 1.5 (400 steps; the best held-out residual comes at about 220).
    let lambda = 0.5;
    let h = QuarticOscillator::new().with_lambda(lambda);
    let w = [8, 8];
    let flow = OneDofFlow::builder().k1_hidden(&w).d1_hidden(&w).k2_hidden(&w).d2_hidden(&w).k3_hidden(&w).d3_hidden(&w).k4_hidden(&w).d4_hidden(&w).build(1).unwrap();
    let model = ClassicalNct::new(flow, AnharmonicOscillators::new(Const::<1>, 1.0, 8).unwrap()).with_path_gradient(true);
    let trained = train(&model, &h, 1500, 1);
    let fit = ConjugacyFit { points: 4000, held_out: 1000, iterations: 400, seed: 3, spread: 1.5, relative_floor: Some(0.3), redraw_every: 0 };
    let (refined, report) = model.refine_conjugacy(&trained, &h, &fit, &BatchEngine::new(64)).unwrap();
    eprintln!("conjugacy fit: rms {:.3e} -> {:.3e}, held out {:.3e} -> {:.3e}, {} accepted, best {}", report.rms_start, report.rms, report.held_out_rms_start, report.held_out_rms, report.accepted, report.best_iteration);
    assert!(report.held_out_rms < 0.1 * report.held_out_rms_start, "{report:?}");
    let (engine, stream) = (BatchEngine::new(1000), SeedStream::new(77));
    let (before, after) = (model.free_energy(&trained, &h, 40_000, &engine, &stream, 0), model.free_energy(&refined, &h, 40_000, &engine, &stream, 0));
    let f = h.free_energy(1.0);
    eprintln!("F_var - F: {:.3e} +- {:.3e} before, {:.3e} +- {:.3e} after", before.f_var - f, before.f_var_err, after.f_var - f, after.f_var_err);
    // Still a variational bound, and no worse a density.
    assert!(after.f_var > f - 3.0 * after.f_var_err && after.f_var - f < 2e-3);
    // Orbits through (q0, 0) at energies 0.16 to 3.7 kT. The unweighted fit of the same start
    // (4000 points, 150 steps) leaves 0.22 rad at q0 = 1.5; the weighted one sharpens every
    // amplitude by more than an order of magnitude, to 0.005-0.07 rad. (The 1e-2 rad goal at
    // every amplitude is not reached from this start: see the README.)
    for q0 in [0.5, 0.75, 1.0, 1.25, 1.5] {
        let (p0, p1) = (phase_error(&model, &trained, &h, lambda, q0), phase_error(&model, &refined, &h, lambda, q0));
        let exact = orbit_frequency(lambda, q0);
        let x0 = PhasePoint::<f64, Const<1>>::new(Vector::from([q0]), Vector::from([0.0]));
        let (w0, w1) = (model.latent_frequency_at(&trained, &x0)[0], model.latent_frequency_at(&refined, &x0)[0]);
        eprintln!("  q0 = {q0}: orbit frequency {exact:.6}; latent {w0:.6} -> {w1:.6}; phase error over ten periods {p0:.3e} -> {p1:.3e} rad");
        assert!(p1 < 0.1 * p0 && p1 < 0.1, "q0 = {q0}: phase error {p0} -> {p1}");
        assert!((w1 / exact - 1.0).abs() < 0.3 * (w0 / exact - 1.0).abs().max(1e-4) && (w1 / exact - 1.0).abs() < 1e-3, "q0 = {q0}: frequency {w0} -> {w1} (exact {exact})");
    }
}

#[test]
fn path_gradient_vanishes_per_sample_at_the_exact_model_and_is_unbiased() {
    use nct::models::HarmonicOscillator;
    // Exact model: identity map onto a latent oscillator at the physical frequency.
    let h = HarmonicOscillator::new().with_omega0(1.3);
    let base = LatentOscillators::new(Const::<1>, 0.7).unwrap().with_initial_frequencies(&[1.3]).unwrap();
    let exact = ClassicalNct::new(LinearSymplectic::new(Const::<1>), base);
    let theta = exact.new_params(&mut NctRng::seed_from_u64(1));
    let z = exact.latent_sample(&theta, &mut NctRng::seed_from_u64(2));
    assert_eq!(exact.flow.forward(exact.split(&theta).0, &z).0, z, "the linear map starts at the identity");
    let path = exact.clone().with_path_gradient(true);
    for seed in 0..5 {
        let (mut gr, mut gp) = (vec![0.0; theta.len()], vec![0.0; theta.len()]);
        exact.variational_sample(&theta, &h, &mut NctRng::seed_from_u64(seed), &mut gr);
        path.variational_sample(&theta, &h, &mut NctRng::seed_from_u64(seed), &mut gp);
        assert!(gp.iter().all(|g| g.abs() < 1e-12), "path gradient at the exact model: {gp:?}");
        assert!(gr.iter().any(|g| g.abs() > 1e-3), "the reparameterised estimate is noisy there: {gr:?}");
    }
    // Away from it (a kick, a linear map, the anharmonic latent on the quartic oscillator) both
    // estimators have the same mean: their difference, the zero-mean score term, averages out.
    let h = QuarticOscillator::new().with_lambda(0.5);
    let flow = Chain::new(GradientShear::kick(Const::<1>, &[4], Activation::Tanh), LinearSymplectic::new(Const::<1>));
    let model = ClassicalNct::new(flow, AnharmonicOscillators::new(Const::<1>, 1.0, 3).unwrap());
    let mut theta = model.new_params(&mut NctRng::seed_from_u64(3));
    theta.iter_mut().enumerate().for_each(|(k, t)| *t += 0.3 * (1.7 * k as f64).sin());
    let path = model.clone().with_path_gradient(true);
    let n = 20_000;
    let diffs: Vec<Vec<f64>> = (0..n)
        .map(|s| {
            let (mut gr, mut gp) = (vec![0.0; theta.len()], vec![0.0; theta.len()]);
            model.variational_sample(&theta, &h, &mut NctRng::seed_from_u64(100 + s), &mut gr);
            path.variational_sample(&theta, &h, &mut NctRng::seed_from_u64(100 + s), &mut gp);
            gr.iter().zip(&gp).map(|(a, b)| a - b).collect()
        })
        .collect();
    let mut nonzero = 0;
    for i in 0..theta.len() {
        let m = diffs.iter().map(|d| d[i]).sum::<f64>() / n as f64;
        let sd = (diffs.iter().map(|d| (d[i] - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        nonzero += usize::from(sd > 1e-6);
        assert!(m.abs() <= 5.0 * sd / (n as f64).sqrt() + 1e-12, "parameter {i}: mean difference {m}, sd {sd}");
    }
    assert!(nonzero > theta.len() / 2, "the estimators must differ sample by sample");
}

