//! Fermions in the trap without a flow: the exact DPP sampler against exact one-body and pair
//! densities (chi-squared at the 1% level), the zero-variance local energy of Slater eigenstates,
//! and the Monte Carlo free energy of six free fermions at beta = 3 against the exact truncated
//! value (acceptance rung 1 of the quantum-dot issue).

use nct::fermion::{DppSampler, FreeFermions, HoOrbitals, enumerate_states, local_kinetic, trap_potential};
use nct::*;
use rand::{RngExt, SeedableRng};

/// 99% quantiles of the chi-squared distribution (df = 11, 15).
const CHI2_99_DF11: f64 = 24.725;
const CHI2_99_DF15: f64 = 30.578;

fn density(o: &HoOrbitals, occ: &[usize], r: &[f64]) -> f64 {
    o.values(occ, r).iter().map(|v| v * v).sum()
}

#[test]
fn dpp_one_body_density_matches_the_exact_radial_distribution() {
    // N = 3 in 2D, the ground state: orbitals 0, 1, 2 (shells 0 and 1).
    let o = HoOrbitals::shells(2, 1);
    let occ = [0usize, 1, 2];
    let sampler = DppSampler::new(o.clone());
    let mut rng = NctRng::seed_from_u64(11);
    let samples = 6000;
    let edges: Vec<f64> = (0..=15).map(|k| 0.22 * k as f64).collect();
    let mut counts = vec![0usize; 16];
    for _ in 0..samples {
        let (x, _) = sampler.sample(&occ, &mut rng).unwrap();
        for i in 0..3 {
            let r = (x[2 * i].powi(2) + x[2 * i + 1].powi(2)).sqrt();
            counts[edges.iter().filter(|&&e| e <= r).count().min(16) - 1] += 1;
        }
    }
    // Exact bin probabilities: integral of rho(r)/N over annuli, by polar quadrature.
    let bin_prob = |a: f64, b: f64| -> f64 {
        let (nr, nt) = (200, 64);
        let mut s = 0.0;
        for i in 0..nr {
            let r = a + (b - a) * (i as f64 + 0.5) / nr as f64;
            for t in 0..nt {
                let th = 2.0 * std::f64::consts::PI * (t as f64 + 0.5) / nt as f64;
                s += density(&o, &occ, &[r * th.cos(), r * th.sin()]) * r;
            }
        }
        s * (b - a) / nr as f64 * 2.0 * std::f64::consts::PI / nt as f64 / 3.0
    };
    let mut p: Vec<f64> = edges.windows(2).map(|w| bin_prob(w[0], w[1])).collect();
    p.push(1.0 - p.iter().sum::<f64>());
    let n = (3 * samples) as f64;
    let chi2: f64 = counts.iter().zip(&p).map(|(&c, &q)| (c as f64 - n * q).powi(2) / (n * q)).sum();
    assert!(chi2 < CHI2_99_DF15, "chi2 = {chi2} over 16 bins; counts {counts:?}, expected {:?}", p.iter().map(|q| q * n).collect::<Vec<_>>());
}

#[test]
fn dpp_pair_distances_match_an_independent_importance_sampled_reference() {
    let o = HoOrbitals::shells(2, 1);
    let occ = [0usize, 1, 2];
    let sampler = DppSampler::new(o.clone());
    let mut rng = NctRng::seed_from_u64(12);
    let bins = 12;
    let width = 0.35;
    let bin = |s: f64| ((s / width) as usize).min(bins - 1);
    // DPP: all three pair distances of each sample.
    let samples = 6000;
    let mut counts = vec![0.0; bins];
    for _ in 0..samples {
        let (x, _) = sampler.sample(&occ, &mut rng).unwrap();
        for (i, j) in [(0, 1), (0, 2), (1, 2)] {
            counts[bin(((x[2 * i] - x[2 * j]).powi(2) + (x[2 * i + 1] - x[2 * j + 1]).powi(2)).sqrt())] += 1.0;
        }
    }
    let n_dpp = (3 * samples) as f64;
    // Reference: the pair density rho2(r, r') = K(r,r)K(r',r') - K(r,r')^2 over N(N-1), by
    // importance sampling of r, r' independently from K(r,r)/N (exact Hermite mixtures).
    let hermite = nct::quantum::hermite::HermiteSampler::new(1);
    let draw = |rng: &mut NctRng| -> Vec<f64> {
        let j = occ[rng.random_range(0..3)];
        o.labels[j].iter().map(|&na| hermite.sample_with(na, rng.random::<f64>())).collect()
    };
    let n_ref = 400_000;
    let (mut sum, mut sum2) = (vec![0.0; bins], vec![0.0; bins]);
    for _ in 0..n_ref {
        let (r, s) = (draw(&mut rng), draw(&mut rng));
        let (vr, vs) = (o.values(&occ, &r), o.values(&occ, &s));
        let (krr, kss, krs): (f64, f64, f64) = (vr.iter().map(|a| a * a).sum(), vs.iter().map(|a| a * a).sum(), vr.iter().zip(&vs).map(|(a, b)| a * b).sum());
        let w = (krr * kss - krs * krs) / (krr * kss) * 9.0 / 6.0;
        let b = bin(((r[0] - s[0]).powi(2) + (r[1] - s[1]).powi(2)).sqrt());
        sum[b] += w;
        sum2[b] += w * w;
    }
    let mut chi2 = 0.0;
    for b in 0..bins {
        let p_ref = sum[b] / n_ref as f64;
        let var_ref = (sum2[b] / n_ref as f64 - p_ref * p_ref) / n_ref as f64;
        let p_dpp = counts[b] / n_dpp;
        // Pairs of one sample are correlated; three pairs per sample: inflate the DPP variance by 3.
        let var_dpp = 3.0 * p_ref * (1.0 - p_ref) / n_dpp;
        chi2 += (p_dpp - p_ref).powi(2) / (var_dpp + var_ref);
    }
    assert!(chi2 < CHI2_99_DF11, "chi2 = {chi2} over {bins} bins");
}

#[test]
fn local_energy_of_free_slater_states_is_their_energy_everywhere() {
    let (o, states) = enumerate_states(2, 6, 0, 4);
    let sampler = DppSampler::new(o.clone());
    let mut rng = NctRng::seed_from_u64(3);
    for st in states.iter().step_by(37) {
        let (x, _) = sampler.sample(&st.up, &mut rng).unwrap();
        let e = local_kinetic(&o, st, &x).unwrap() + trap_potential(&x);
        assert!((e - st.energy(&o)).abs() < 1e-8, "{st:?}: E_loc = {e}, E = {}", st.energy(&o));
    }
    // Spinful: 2 up + 2 down in 3D.
    let (o, states) = enumerate_states(3, 2, 2, 1);
    let sampler = DppSampler::new(o.clone());
    for st in &states {
        let (mut x, _) = sampler.sample(&st.up, &mut rng).unwrap();
        x.extend(sampler.sample(&st.down, &mut rng).unwrap().0);
        let e = local_kinetic(&o, st, &x).unwrap() + trap_potential(&x);
        assert!((e - st.energy(&o)).abs() < 1e-8, "{st:?}: {e}");
    }
}

#[test]
fn monte_carlo_free_energy_of_six_free_fermions_matches_the_truncated_value() {
    // kappa = 0, identity flow, Boltzmann occupations over the dE = 4 space, beta = 3.
    let beta = 3.0;
    let free = FreeFermions { dim: 2, n_up: 6, n_down: 0 };
    let exact = free.truncated_thermo(beta, 4);
    let (o, states) = enumerate_states(2, 6, 0, 4);
    let p = free.boltzmann_weights(beta, 4);
    let cdf: Vec<f64> = p.iter().scan(0.0, |c, x| {
        *c += x;
        Some(*c)
    }).collect();
    let sampler = DppSampler::new(o.clone());
    let mut rng = NctRng::seed_from_u64(7);
    let draws = 3000;
    let (mut f, mut e) = (Vec::new(), Vec::new());
    for _ in 0..draws {
        let u: f64 = rng.random();
        let n = cdf.partition_point(|&c| c < u).min(states.len() - 1);
        let (x, _) = sampler.sample(&states[n].up, &mut rng).unwrap();
        let e_loc = local_kinetic(&o, &states[n], &x).unwrap() + trap_potential(&x);
        e.push(e_loc);
        f.push(p[n].ln() / beta + e_loc);
    }
    let (fm, fe) = mean_and_error(&f);
    let (em, ee) = mean_and_error(&e);
    assert!((fm - exact.f).abs() < 3.0 * fe + 1e-8, "F = {fm} +- {fe} vs {}", exact.f);
    assert!((em - exact.e).abs() < 3.0 * ee, "E = {em} +- {ee} vs {}", exact.e);
    assert!(fe < 1e-9, "with exact eigenstates and the Boltzmann law, F has zero variance: {fe}");
}

#[test]
fn metropolis_agrees_with_the_exact_sampler_and_the_virial_theorem() {
    // For an eigenstate of the free trap, <sum r_i^2> = 2 <V> = E (virial theorem).
    let (o, states) = enumerate_states(2, 3, 0, 2);
    let sampler = DppSampler::new(o.clone());
    let mut rng = NctRng::seed_from_u64(21);
    let r2 = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>();
    for st in [&states[0], &states[states.len() - 1]] {
        let exact = st.energy(&o);
        let m = 20_000;
        let dpp: Vec<f64> = (0..m).map(|_| r2(&sampler.sample(&st.up, &mut rng).unwrap().0)).collect();
        let (dm, de) = mean_and_error(&dpp);
        assert!((dm - exact).abs() < 4.0 * de, "DPP {dm} +- {de} vs {exact}");
        // Metropolis from non-nodal starts (a grid of distinct points), not from the DPP.
        let starts: Vec<Vec<f64>> = (0..64).map(|w| (0..6).map(|k| 0.4 * (((w * 6 + k) * 37 % 17) as f64 - 8.0) / 8.0 + 0.3 * k as f64).collect()).collect();
        let mut chain = nct::fermion::SlaterMetropolis::new(&o, st, starts);
        let b = chain.estimate(&o, st, 200, 2000, r2, &mut rng);
        assert!((b.mean - exact).abs() < 4.0 * b.error, "Metropolis {} +- {} vs {exact}", b.mean, b.error);
        assert!((b.mean - dm).abs() < 4.0 * (b.error.powi(2) + de * de).sqrt());
        assert!((0.3..0.7).contains(&chain.acceptance()), "acceptance {}", chain.acceptance());
    }
}

mod flows {
    use nct::driver::Driver;
    use nct::fermion::{FermiState, FermiThermal, FreeFermions, GroundState, PairBackflow, RadialScaling, ThermalFermions, enumerate_states};
    use nct::models::quantum_dot::QuantumDot;
    use nct::run::RunArgs;
    use nct::*;
    use rand::SeedableRng;

    /// $-\tfrac12\nabla^2\psi/\psi$ by central second differences (step 1e-4).
    fn kinetic_by_differences(psi: impl Fn(&Vector<f64, Dyn>) -> f64, x: &Vector<f64, Dyn>) -> f64 {
        let (h, p0) = (1e-4, psi(x));
        let lap: f64 = (0..x.len())
            .map(|c| {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[c] += h;
                xm[c] -= h;
                (psi(&xp) - 2.0 * p0 + psi(&xm)) / (h * h)
            })
            .sum();
        -0.5 * lap / p0
    }

    #[test]
    fn jet_kinetic_energy_through_an_equivariant_flow_matches_finite_differences() {
        let (o, states) = enumerate_states(2, 3, 0, 0);
        let occ = states[0].clone();
        let state = FermiState::new(RadialScaling::new(3, 2), o);
        let theta = vec![0.3, -0.8, 1.1, 0.5];
        let mut rng = NctRng::seed_from_u64(2);
        for _ in 0..3 {
            let x = state.sample(&theta, &occ, &mut rng).unwrap();
            let k = state.kinetic(&theta, &occ, &x);
            let fd = kinetic_by_differences(|y| state.psi(&theta, &occ, y), &x);
            assert!((k - fd).abs() < 1e-5 * (1.0 + k.abs()), "jet {k} vs differences {fd}");
        }
    }

    /// Train the radial flow from `init` for `steps` steps; the energy (20000 exact samples) after.
    fn train(kappa: f64, init: &[f64], steps: u64) -> (f64, f64, Vec<f64>) {
        let (o, states) = enumerate_states(2, 3, 0, 0);
        let state = FermiState::new(RadialScaling::new(3, 2).with_initial(init), o);
        let h = QuantumDot::new().with_n(3).with_d(2).with_kappa(kappa);
        let objective = GroundState::new(&state, &h, states[0].clone(), 256);
        let theta = if steps == 0 {
            init.to_vec()
        } else {
            let args = RunArgs { steps, lr: 0.03, seed: 3, quiet: true, ..Default::default() };
            Driver::new("dot3", objective).run(&args, &args).unwrap().theta
        };
        let objective = GroundState::new(&state, &h, states[0].clone(), 256);
        let es: Vec<f64> = objective.local_energies(&theta, 20_000, &SeedStream::new(99), 0).into_iter().flatten().map(|w| w.1).collect();
        let (e, err) = mean_and_error(&es);
        (e, err, theta)
    }

    #[test]
    fn ground_state_training_recovers_the_free_state_and_lowers_the_interacting_energy() {
        // kappa = 0 from a distorted start: the identity (the exact eigenstate, E = 1 + 2 + 2 = 5) is
        // recovered, with vanishing variance.
        let start = [0.4, 1.0, -1.0, 0.8];
        let (e_start, _, _) = train(0.0, &start, 0);
        let (e, err, theta) = train(0.0, &start, 1500);
        eprintln!("kappa = 0: start {e_start:.5}, trained {e:.6} +- {err:.1e}, theta {theta:?}");
        assert!(e_start > 5.05, "the distorted start is not an eigenstate: {e_start}");
        assert!((e - 5.0).abs() < 5e-3 && err < 2e-3, "E = {e} +- {err}");
        // kappa = 0.5: the trained flow improves on the bare Slater determinant.
        let (e_bare, eb, _) = train(0.5, &[0.0; 4], 0);
        let (e_flow, ef, _) = train(0.5, &[0.0; 4], 1500);
        assert!(e_flow < e_bare - 5.0 * (eb * eb + ef * ef).sqrt(), "flow {e_flow} +- {ef} vs bare {e_bare} +- {eb}");
        eprintln!("N = 3, kappa = 0.5: bare Slater {e_bare:.5} +- {eb:.5}, radial flow {e_flow:.5} +- {ef:.5}");
    }

    /// A spinful (2 up + 1 down) state through two pair-backflow layers and a radial scaling,
    /// at parameters away from the identity.
    fn backflow_state() -> (FermiState<Chain<Stack<PairBackflow>, RadialScaling>>, nct::fermion::ManyBodyState, Vec<f64>) {
        let (o, states) = enumerate_states(2, 2, 1, 1);
        let flow = Chain::new(Stack::new(vec![PairBackflow::new(3, 2); 2]), RadialScaling::new(3, 2));
        let theta: Vec<f64> = (0..flow.n_params()).map(|k| 1.3 * ((k as f64) * 1.7 + 0.4).sin()).collect();
        (FermiState::new(flow, o), states[states.len() - 1].clone(), theta)
    }

    #[test]
    fn backflow_kinetic_energy_and_exact_samples_match_differences_and_metropolis() {
        let (state, st, theta) = backflow_state();
        assert_eq!((st.up.len(), st.down.len()), (2, 1));
        let mut rng = NctRng::seed_from_u64(5);
        // Laplacian of psi: jet against central differences.
        for _ in 0..3 {
            let x = state.sample(&theta, &st, &mut rng).unwrap();
            let k = state.kinetic(&theta, &st, &x);
            let fd = kinetic_by_differences(|y| state.psi(&theta, &st, y), &x);
            assert!((k - fd).abs() < 1e-5 * (1.0 + k.abs()), "jet {k} vs differences {fd}");
            // Hutchinson: unbiased, its mean over many probes is the exact value.
            let hs: Vec<f64> = (0..4000).map(|_| state.kinetic_hutchinson(&theta, &st, &x, 1, &mut rng)).collect();
            let (hm, he) = mean_and_error(&hs);
            assert!((hm - k).abs() < 4.0 * he && he > 0.0, "Hutchinson {hm} +- {he} vs exact {k}");
            // The amplitude of Metropolis is ln|psi|.
            assert!((state.log_abs_psi(&theta, &st, x.as_slice()).unwrap() - state.psi(&theta, &st, &x).abs().ln()).abs() < 1e-12);
        }
        // Exact samples (DPP, then the inverse flow) and Metropolis on |psi|^2 from the flow's
        // forward map agree on <sum r^2> and on the local energy.
        let h = QuantumDot::new().with_n(3).with_d(2).with_kappa(1.0);
        let r2 = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>();
        let e_loc = |x: &[f64]| {
            let v = Vector::from(x.to_vec());
            state.kinetic(&theta, &st, &v) + h.potential(&v)
        };
        let exact: Vec<(f64, f64)> = (0..20_000)
            .map(|_| {
                let x = state.sample(&theta, &st, &mut rng).unwrap();
                (r2(x.as_slice()), e_loc(x.as_slice()))
            })
            .collect();
        let (rm, re) = mean_and_error(&exact.iter().map(|p| p.0).collect::<Vec<_>>());
        let (em, ee) = mean_and_error(&exact.iter().map(|p| p.1).collect::<Vec<_>>());
        let starts: Vec<Vec<f64>> = (0..64).map(|w| (0..6).map(|k| 0.4 * (((w * 6 + k) * 37 % 17) as f64 - 8.0) / 8.0 + 0.3 * k as f64).collect()).collect();
        let amp = |x: &[f64]| state.log_abs_psi(&theta, &st, x);
        let mut chain = nct::fermion::SlaterMetropolis::with_amplitude(&amp, starts);
        let b = chain.estimate_with(&amp, 2, 300, 1500, r2, &mut rng);
        assert!((b.mean - rm).abs() < 4.0 * (b.error.powi(2) + re * re).sqrt(), "<r^2>: Metropolis {} +- {} vs exact sampler {rm} +- {re}", b.mean, b.error);
        let be = chain.estimate_with(&amp, 2, 0, 1500, e_loc, &mut rng);
        assert!((be.mean - em).abs() < 4.0 * (be.error.powi(2) + ee * ee).sqrt(), "E: Metropolis {} +- {} vs exact sampler {em} +- {ee}", be.mean, be.error);
        eprintln!("backflow state: <r^2> exact {rm:.4} +- {re:.4}, Metropolis {:.4} +- {:.4}; E exact {em:.4} +- {ee:.4}, Metropolis {:.4} +- {:.4}", b.mean, b.error, be.mean, be.error);
    }

    /// Lowest eigenvalue of the relative motion of two electrons in the 2D trap with angular
    /// momentum m: -u'' + ((m^2 - 1/4)/r^2 + r^2/4 + kappa/r) u = e u on (0, 20], by second-order
    /// differences (n points) and Sturm-sequence bisection.
    fn relative_energy(kappa: f64, m: f64, n: usize) -> f64 {
        let h = 20.0 / n as f64;
        let diag: Vec<f64> = (1..=n).map(|i| { let r = h * i as f64; 2.0 / (h * h) + (m * m - 0.25) / (r * r) + r * r / 4.0 + kappa / r }).collect();
        let off2 = 1.0 / h.powi(4);
        let below = |x: f64| {
            let (mut q, mut c) = (1.0f64, 0);
            for (i, d) in diag.iter().enumerate() {
                q = d - x - if i > 0 { off2 / q } else { 0.0 };
                if q == 0.0 { q = 1e-300 }
                if q < 0.0 { c += 1 }
            }
            c
        };
        let (mut lo, mut hi) = (0.0, 20.0);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if below(mid) >= 1 { hi = mid } else { lo = mid }
        }
        0.5 * (lo + hi)
    }

    #[test]
    fn two_polarised_electrons_reach_the_exact_ground_state_from_above() {
        // Exact: centre of mass (E = 1) + relative motion with |m| = 1 (odd, antisymmetric),
        // Richardson-extrapolated from two grids.
        let kappa = 1.0;
        let (e1, e2) = (relative_energy(kappa, 1.0, 2000), relative_energy(kappa, 1.0, 4000));
        let exact = 1.0 + e2 + (e2 - e1) / 3.0;
        let free = 1.0 + relative_energy(0.0, 1.0, 4000);
        assert!((free - 3.0).abs() < 1e-4, "oracle at kappa = 0: {free}");
        let (o, states) = enumerate_states(2, 2, 0, 0);
        let h = QuantumDot::new().with_n(2).with_d(2).with_kappa(kappa);
        let energy = |layers: usize| {
            let radial = RadialScaling::new(2, 2);
            let state = FermiState::new(Chain::new(Stack::new(vec![PairBackflow::new(2, 2); layers.max(1)]), radial), o.clone());
            let args = RunArgs { steps: 400, lr: 0.02, seed: 4, batch: 256, quiet: true, ..Default::default() };
            let mut driver = Driver::new("dot2", GroundState::new(&state, &h, states[0].clone(), 256));
            if layers == 0 {
                driver = driver.group_rate("0", 0.0);
            }
            let trained = driver.run(&args, &args).unwrap();
            let es: Vec<f64> = trained.objective.local_energies(&trained.theta, 40_000, &SeedStream::new(8), 0).into_iter().flatten().map(|w| w.1).collect();
            mean_and_error(&es)
        };
        let (e_bf, err_bf) = energy(3);
        let (e_rad, err_rad) = energy(0);
        eprintln!("N = 2, kappa = {kappa}: exact {exact:.5}, radial {e_rad:.5} +- {err_rad:.5}, backflow {e_bf:.5} +- {err_bf:.5}");
        assert!(e_bf > exact - 3.0 * err_bf, "below the exact ground state: {e_bf} +- {err_bf} vs {exact}");
        assert!(e_bf - exact < 0.01, "backflow {e_bf} vs exact {exact}");
        assert!(e_bf < e_rad - 5.0 * (err_bf.powi(2) + err_rad.powi(2)).sqrt(), "backflow {e_bf} +- {err_bf} vs radial {e_rad} +- {err_rad}");
    }

    #[test]
    fn thermal_occupations_learn_the_free_fermion_free_energy() {
        // kappa = 0 with the identity flow: the states are exact eigenstates, so the variational
        // minimum over p is the truncated -ln Z / beta. Start from random logits.
        let (beta, de) = (1.0, 2);
        let (o, states) = enumerate_states(2, 3, 0, de);
        let exact = FreeFermions { dim: 2, n_up: 3, n_down: 0 }.truncated_thermo(beta, de);
        let h = QuantumDot::new().with_n(3).with_d(2).with_kappa(0.0);
        let mut model = ThermalFermions::new(FermiState::new(RadialScaling::new(3, 2), o), states, beta);
        model.occupation = model.occupation.clone().with_random_init(1.5);
        let args = RunArgs { steps: 300, lr: 0.05, seed: 6, batch: 512, quiet: true, ..Default::default() };
        let start = {
            let th = model.new_params(&mut SeedStream::new(args.seed).named("init"));
            FermiThermal::new(&model, &h, 512).estimate(&th, 16_000, 1).unwrap()
        };
        let trained = Driver::new("dot3-thermal", FermiThermal::new(&model, &h, 512)).group_rate("flow", 0.0).run(&args, &args).unwrap();
        let est = trained.objective.estimate(&trained.theta, 16_000, 2).unwrap();
        eprintln!("free fermions N = 3, beta = 1, dE = 2: exact F {:.5} E {:.5} S {:.5}; start F {:.5}; trained F {:.5} +- {:.5}, E {:.5} +- {:.5}, S {:.5}", exact.f, exact.e, exact.s, start.f.0, est.f.0, est.f.1, est.e.0, est.e.1, est.s);
        assert!(start.f.0 > exact.f + 0.05, "the random start is not optimal: {}", start.f.0);
        assert!(est.f.0 > exact.f - 3.0 * est.f.1 - 1e-9, "below the minimum: {} +- {}", est.f.0, est.f.1);
        assert!(est.f.0 - exact.f < 0.01 && (est.s - exact.s).abs() < 0.05 && (est.e.0 - exact.e).abs() < 0.05, "F {} S {} E {}", est.f.0, est.s, est.e.0);
    }

    #[test]
    fn four_bosons_with_a_gaussian_interaction_are_symmetric_and_reach_the_reference_window() {
        // Condensate base state through the equivariant flow: psi is symmetric; at g = 0 the
        // identity is exact (E = 4, zero variance). Reference window: exact diagonalisation 4.7179
        // (PRA 96, 043614) to FermiFlow's 4.7335.
        use nct::models::quantum_dot::GaussianBosons;
        let (o, _) = enumerate_states(2, 1, 0, 0);
        let condensate = nct::fermion::ManyBodyState { excitation: 0, up: vec![0; 4], down: vec![] };
        let flow = Chain::new(Stack::new(vec![PairBackflow::new(4, 2); 2]), RadialScaling::new(4, 2));
        let state = FermiState::new(flow, o).bosonic();
        let theta: Vec<f64> = (0..state.n_params()).map(|k| 0.9 * (k as f64 * 1.3).cos()).collect();
        let x = Vector::from_fn(Dyn(8), |k| ((k * 5 % 7) as f64 - 3.0) * 0.4);
        let px = Vector::from_fn(Dyn(8), |k| x[[3usize, 0, 2, 1][k / 2] * 2 + k % 2]);
        let (a, b) = (state.psi(&theta, &condensate, &x), state.psi(&theta, &condensate, &px));
        assert!(a > 0.0 && (a - b).abs() < 1e-12 * a, "{a} vs {b}");
        let free = GaussianBosons::new().with_n(4).with_d(2).with_g(0.0);
        let zero = vec![0.0; state.n_params()];
        let es: Vec<f64> = GroundState::new(&state, &free, condensate.clone(), 1).local_energies(&zero, 200, &SeedStream::new(3), 0).into_iter().flatten().map(|w| w.1).collect();
        assert!(es.len() == 200 && es.iter().all(|e| (e - 4.0).abs() < 1e-9));
        let h = GaussianBosons::new().with_n(4).with_d(2).with_g(1.0).with_s(0.5);
        let args = RunArgs { steps: 300, lr: 0.02, seed: 4, batch: 256, quiet: true, ..Default::default() };
        let trained = Driver::new("bosons4", GroundState::new(&state, &h, condensate.clone(), 256)).run(&args, &args).unwrap();
        let es: Vec<f64> = trained.objective.local_energies(&trained.theta, 20_000, &SeedStream::new(8), 0).into_iter().flatten().map(|w| w.1).collect();
        let (e, err) = mean_and_error(&es);
        eprintln!("4 bosons, g = 1, s = 0.5: E = {e:.5} +- {err:.5}");
        assert!(e > 4.7179 - 3.0 * err && e < 4.7335 + 3.0 * err, "E = {e} +- {err}");
    }
}
