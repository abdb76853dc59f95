//! Classical neural canonical transformation end to end (small, seeded versions of the
//! acceptance runs): exact free energies and frequencies of harmonic systems.

use nct::models::{HarmonicChain, HarmonicOscillator};
use nct::*;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};


fn train_variational<F: SymplecticLayer<Const<N>>, H: Hamiltonian<Const<N>>, const N: usize>(model: &ClassicalNct<F, Const<N>>, h: &H, theta: &mut Vec<f64>, steps: u64, batch: usize, lr: f64, seed: u64) {
    let engine = BatchEngine::new(16);
    let stream = SeedStream::new(seed);
    let mut opt = Adam::new(theta.len(), lr);
    run_steps(theta, &mut opt, lr, Schedule::Cosine { total: steps, min_factor: 0.02 }, 0, steps, |th, step| engine.loss_and_grad(batch, th.len(), &stream, step, |_, rng, g| model.variational_sample(th, h, rng, g).loss), |_, _| {}).unwrap();
}

#[test]
fn oscillator_variational_free_energy_and_frequency() {
    let h = HarmonicOscillator::new().with_omega0(2.0);
    let model = ClassicalNct::new(LinearSymplectic::new(Const::<1>), LatentOscillators::new(Const::<1>, 1.0).unwrap());
    let mut theta = model.new_params(&mut NctRng::seed_from_u64(1));
    train_variational(&model, &h, &mut theta, 2000, 64, 0.05, 1);
    let fe = model.free_energy(&theta, &h, 4000, &BatchEngine::default(), &SeedStream::new(99), 0);
    let exact = -std::f64::consts::PI.ln();
    assert!((h.free_energy(1.0) - exact).abs() < 1e-12);
    eprintln!("oscillator: F_var = {:.6} +- {:.1e}, F_is = {:.6}, exact {exact:.6}, omega = {:?}", fe.f_var, fe.f_var_err, fe.f_is, model.frequencies(&theta));
    assert!((fe.f_var - exact).abs() < 1e-3, "F_var {} vs {exact}", fe.f_var);
    let w = model.frequencies(&theta)[0];
    assert!((w - 2.0).abs() / 2.0 < 5e-3, "omega {w}");
    // The learned frequency of the latent oscillator, mapped by the learned linear map, reproduces
    // the physical one: omega_latent * (scale of the map) = 2. The model's own omega is only
    // meaningful together with the map, so compare the composed Hessian instead.
    let x0 = PhasePoint::<f64, Const<1>>::new(Vector::from([0.3]), Vector::from([-0.2]));
    let times: Vec<f64> = (0..50).map(|k| 0.1 * k as f64).collect();
    let traj = model.trajectory(&theta, &x0, &times);
    for (t, x) in times.iter().zip(&traj) {
        let exact_q = 0.3 * (2.0 * t).cos() - 0.2 / 2.0 * (2.0 * t).sin();
        assert!((x.q[0] - exact_q).abs() < 5e-3, "q({t}) = {} vs {exact_q}", x.q[0]);
    }
}

#[test]
fn harmonic_chain_linear_model_reaches_exact_free_energy() {
    const N: usize = 8;
    let h = HarmonicChain::<N>::new().with_kappa(1.0);
    let f_exact = -13.604404;
    assert!((h.free_energy(1.0) - f_exact).abs() < 1e-6);
    let model = ClassicalNct::new(LinearSymplectic::with_shears(Const::<N>, 6).with_init_scale(0.05), LatentOscillators::new(Const::<N>, 1.0).unwrap());
    let mut theta = model.new_params(&mut NctRng::seed_from_u64(2));
    train_variational(&model, &h, &mut theta, 6000, 128, 0.02, 2);
    let fe = model.free_energy(&theta, &h, 20000, &BatchEngine::default(), &SeedStream::new(98), 0);
    let w = model.frequencies(&theta);
    eprintln!("chain: F_var = {:.5} +- {:.1e}, F_is = {:.5}, ess = {:.0}, omega = {:.4?}", fe.f_var, fe.f_var_err, fe.f_is, fe.ess, w);
    assert!((fe.f_var - f_exact).abs() < 0.01, "F_var {}", fe.f_var);
    assert!((fe.f_is - f_exact).abs() < 0.005, "F_is {}", fe.f_is);
    for (k, (wl, we)) in w.iter().zip(h.frequencies()).take(5).enumerate() {
        assert!((wl - we).abs() / we < 0.01, "omega_{}: {wl} vs {we}", k + 1);
    }
    // The learned slowest normal modes are the exact sine modes.
    let modes = model.normal_modes(&theta, &PhasePoint::zeros(Const));
    for k in 0..2 {
        let row: Vec<f64> = modes.row(k).iter().copied().collect();
        let exact = h.mode(k + 1);
        let cos = row.iter().zip(&exact).map(|(a, b)| a * b).sum::<f64>() / row.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!(cos.abs() > 0.97, "mode {k} overlap {cos}");
    }
    // Interpolating along the slowest latent mode moves the chain along the slowest sine mode,
    // linearly in the amplitude (the learned map is linear).
    let path = model.interpolate_mode(&theta, 0, &[-1.0, 0.5, 2.0]);
    let u1 = h.mode(1);
    for x in &path {
        let cos = x.q.iter().zip(&u1).map(|(a, b)| a * b).sum::<f64>() / x.q.norm();
        assert!(cos.abs() > 0.97, "interpolated configuration overlaps mode 1 by {cos}");
    }
    assert!((path[2].q - path[1].q * 4.0).norm() < 1e-10 * path[2].q.norm());
}

/// Exact configurations of the harmonic chain at beta = 1: q = sum_k u_k xi_k / omega_k.
fn chain_samples<const N: usize>(h: &HarmonicChain<N>, n: usize, seed: u64) -> Vec<Vector<f64, Const<N>>> {
    let mut rng = NctRng::seed_from_u64(seed);
    let w = h.frequencies();
    let modes: Vec<Vec<f64>> = (1..=N).map(|k| h.mode(k)).collect();
    (0..n)
        .map(|_| {
            let mut q = Vector::<f64, Const<N>>::zeros(Const);
            for k in 0..N {
                let xi: f64 = StandardNormal.sample(&mut rng);
                for i in 0..N {
                    q[i] += modes[k][i] * xi / w[k];
                }
            }
            q
        })
        .collect()
}

#[test]
fn harmonic_chain_maximum_likelihood_reaches_exact_nll() {
    const N: usize = 8;
    let h = HarmonicChain::<N>::new().with_kappa(1.0);
    let nll_exact = 21.604404; // n + ln Z at beta = 1
    let train = chain_samples(&h, 200_000, 11);
    let valid = chain_samples(&h, 20_000, 12);
    let model = ClassicalNct::new(LinearSymplectic::with_shears(Const::<N>, 6).with_init_scale(0.05), LatentOscillators::new(Const::<N>, 1.0).unwrap());
    let mut theta = model.new_params(&mut NctRng::seed_from_u64(3));
    let masses = Vector::<f64, Const<N>>::from_element(Const, 1.0);
    let engine = BatchEngine::new(16);
    let stream = SeedStream::new(3);
    let steps = 3000;
    let mut opt = Adam::new(theta.len(), 0.02);
    run_steps(&mut theta, &mut opt, 0.02, Schedule::Cosine { total: steps, min_factor: 0.02 }, 0, steps, |th, step| model.mle_batch(th, &train, &masses, 0.0, 128, &engine, &stream, step), |_, _| {}).unwrap();
    let (nll, err) = model.mean_nll(&theta, &valid, &masses, &engine, &SeedStream::new(4));
    eprintln!("chain MLE: held-out NLL = {nll:.4} +- {err:.4} (exact {nll_exact}), omega = {:.4?}", model.frequencies(&theta));
    assert!((nll - nll_exact).abs() < 0.03 + 2.0 * err, "NLL {nll} +- {err}");
    // Paired: KL(p||q) = E_p[-ln q - (beta H + ln Z)] on the same held-out points (low variance).
    let ln_z = nll_exact - N as f64;
    let mut rng = NctRng::seed_from_u64(6);
    let kl: Vec<f64> = valid
        .iter()
        .map(|q| {
            let x = PhasePoint::new(*q, maxwell_boltzmann(&masses, 1.0, &mut rng));
            -model.log_q(&theta, &x) - (h.energy(&x.q, &x.p) + ln_z)
        })
        .collect();
    let (kl, kl_err) = mean_and_error(&kl);
    eprintln!("chain MLE: paired KL(p||q) = {kl:.4} +- {kl_err:.4}");
    assert!(kl > -3.0 * kl_err - 1e-3 && kl < 0.03, "KL {kl} +- {kl_err}");
}

#[test]
fn inverse_vjp_matches_finite_differences() {
    const N: usize = 3;
    let mut rng = NctRng::seed_from_u64(5);
    let flow = Chain::new(PointTransform::new(real_nvp(Const::<N>, 2, &[6], Activation::Tanh, MaskScheme::EvenOdd, &mut rng).unwrap()), LinearSymplectic::new(Const::<N>).with_init_scale(0.2));
    let model = ClassicalNct::new(flow, LatentOscillators::new(Const::<N>, 0.7).unwrap());
    let mut theta = model.new_params(&mut rng);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.2 * ((k as f64) * 1.3).sin();
    }
    let x = PhasePoint::<f64, Const<N>>::new(Vector::from([0.4, -0.3, 0.8]), Vector::from([0.1, 0.5, -0.6]));
    let mut g = vec![0.0; theta.len()];
    let nll = model.nll_sample(&theta, &x, &mut g);
    assert!((nll + model.log_q(&theta, &x)).abs() < 1e-12);
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for k in 0..theta.len() {
        let mut tp = theta.clone();
        tp[k] += h;
        let mut tm = theta.clone();
        tm[k] -= h;
        let fd = (-model.log_q(&tp, &x) + model.log_q(&tm, &x)) / (2.0 * h);
        worst = worst.max((fd - g[k]).abs() / scale);
    }
    assert!(worst < 1e-6, "relative error {worst:e}");
}

/// The batched GEMM path draws the same samples and gives the same loss and gradient as the
/// per-sample scalar-generic path (point transformation of a RealNVP, linear layer, shears).
#[test]
fn batched_path_equals_per_sample_path() {
    const N: usize = 6;
    let h = HarmonicChain::<N>::new().with_kappa(1.3);
    let mut rng = NctRng::seed_from_u64(21);
    let flow = Chain::new(
        Chain::new(PointTransform::new(real_nvp(Const::<N>, 3, &[16, 16], Activation::Tanh, MaskScheme::RandomPermutation, &mut rng).unwrap()), LinearSymplectic::new(Const::<N>).with_init_scale(0.1)),
        Chain::new(SymplecticScaling::new(Const::<N>), GradientShear::kick(Const::<N>, &[8], Activation::Softplus)),
    );
    let model = ClassicalNct::new(flow, LatentOscillators::new(Const::<N>, 0.8).unwrap());
    let mut theta = model.new_params(&mut rng);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.1 * ((k as f64) * 0.77).sin();
    }
    let engine = BatchEngine::new(7);
    let stream = SeedStream::new(5);
    let a = engine.loss_and_grad(30, theta.len(), &stream, 3, |_, rng, g| model.variational_sample(&theta, &h, rng, g).loss);
    let b = model.variational_batch(&theta, &h, 30, &engine, &stream, 3);
    assert!((a.loss - b.loss).abs() < 1e-11 * a.loss.abs(), "{} vs {}", a.loss, b.loss);
    let scale = a.grad.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = a.grad.iter().zip(&b.grad).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale;
    assert!(worst < 1e-11, "relative gradient difference {worst:e}");
}
