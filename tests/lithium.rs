//! DeepPot-SE lithium against the reference's golden numbers (copied from the project's data folder
//! `../shared/data/lithium` into `ncT-models/data/lithium`; produced
//! by the reference JAX code and cross-checked by finite differences and an independent
//! implementation), supercells, harmonic phonons and the mode coordinates.

use nct_models::solid::{DeepPot, HarmonicModes, Isotope, Supercell, structure::UnitCell};
use serde_json::Value;
use std::path::PathBuf;

fn shared(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/lithium").join(name)
}
fn bundled(name: &str) -> PathBuf {
    nct_models::solid::data_dir().join(name)
}
fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(bundled(name)).expect("reference numbers bundled in ncT-models/data/lithium")).unwrap()
}
fn vec3(v: &Value) -> [f64; 3] {
    std::array::from_fn(|k| v[k].as_f64().unwrap())
}
fn rows(v: &Value) -> Vec<[f64; 3]> {
    v.as_array().unwrap().iter().map(vec3).collect()
}

#[test]
fn bundled_data_equal_the_shared_data() {
    // The bundled copies are those of the project's data folder (when it is beside the checkout).
    if !shared("README.md").exists() {
        eprintln!("skipping: {} not present", shared("").display());
        return;
    }
    for m in ["dp4.safetensors", "dp0.safetensors", "golden.json", "phonons.json", "supercells.json", "LICENSE.lithium", "structures/bcc.vasp", "structures/fcc.vasp", "structures/cI16.vasp"] {
        assert_eq!(std::fs::read(bundled(m)).unwrap(), std::fs::read(shared(m)).unwrap(), "{m}");
    }
}

#[test]
fn golden_energies_forces_and_virials() {
    let golden = json("golden.json");
    let models = [("dp4", DeepPot::load(bundled("dp4.safetensors")).unwrap()), ("dp0", DeepPot::load(bundled("dp0.safetensors")).unwrap())];
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for case in golden["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let dp = &models.iter().find(|(n, _)| *n == case["model"].as_str().unwrap()).unwrap().1;
        let l = vec3(&case["box_lengths_A"]);
        let pos = rows(&case["positions_A"]);
        let images = dp.images(l).unwrap();
        let out = dp.energy_forces_virial(&images, &pos, l);
        let e_ref = case["energy_eV"].as_f64().unwrap();
        let rel = ((out.energy - e_ref) / e_ref).abs();
        assert!(rel < 1e-13, "{id}: E = {} vs {e_ref} (rel {rel:.1e})", out.energy);
        // The energy-only path is the same function.
        assert_eq!(dp.energy(&images, &pos, l), out.energy, "{id}");
        let f_ref = rows(&case["forces_eV_per_A"]);
        let f_tol = if id.contains("random32") { 1e-10 } else { 1e-11 };
        let df = out.forces.iter().zip(&f_ref).flat_map(|(a, b)| (0..3).map(move |k| (a[k] - b[k]).abs())).fold(0.0, f64::max);
        assert!(df < f_tol, "{id}: max force deviation {df:.2e} eV/Å");
        let w_diag = vec3(&case["virial_diag_eV"]);
        let w_full = &case["independent_check"]["virial_full_eV"];
        let mut dw = 0.0f64;
        for a in 0..3 {
            dw = dw.max((out.virial[a][a] - w_diag[a]).abs());
            for b in 0..3 {
                dw = dw.max((out.virial[a][b] - w_full[a][b].as_f64().unwrap()).abs());
            }
        }
        assert!(dw < 1e-10, "{id}: max virial deviation {dw:.2e} eV");
        worst = (worst.0.max(rel), worst.1.max(df), worst.2.max(dw));
    }
    eprintln!("worst: energy rel {:.1e}, force {:.1e} eV/Å, virial {:.1e} eV", worst.0, worst.1, worst.2);
}

fn cell(name: &str, lattice: &str, cells: usize, v: f64) -> Supercell {
    let unit = UnitCell::read_poscar(bundled(&format!("structures/{lattice}.vasp"))).unwrap();
    let sc = Supercell::new(&unit, [cells; 3], v, true).unwrap();
    let reference = &json("supercells.json")["supercells"][name];
    let l = vec3(&reference["box_lengths_A"]);
    let pos = rows(&reference["positions_A"]);
    for k in 0..3 {
        assert!((sc.lengths[k] - l[k]).abs() < 1e-12, "{name}: L = {:?} vs {l:?}", sc.lengths);
    }
    assert_eq!(sc.positions.len(), pos.len());
    for (a, b) in sc.positions.iter().zip(&pos) {
        assert!((0..3).all(|k| (a[k] - b[k]).abs() < 1e-12), "{name}: {a:?} vs {b:?}");
    }
    sc
}

#[test]
fn supercells_equal_the_reference_construction() {
    cell("bcc_2x2x2", "bcc", 2, 19.515776);
    cell("fcc_2x2x2", "fcc", 2, 19.542997);
    cell("cI16_1x1x1_v7.2", "cI16", 1, 7.2);
}

#[test]
fn effective_mass_in_the_reference_units() {
    let p = json("phonons.json");
    assert_eq!(Isotope::Natural.h2_over_2m(), p["h2_over_2m_K_A2"].as_f64().unwrap());
    assert!((Isotope::Natural.effective_mass() - p["effective_mass_per_K_A2"].as_f64().unwrap()).abs() < 1e-16);
}

#[test]
fn harmonic_phonons_of_bcc_and_fcc_and_the_mode_coordinates() {
    let dp = DeepPot::load(bundled("dp4.safetensors")).unwrap();
    let reference = json("phonons.json");
    let m_eff = Isotope::Natural.effective_mass();
    for (name, lattice, v) in [("bcc_2x2x2", "bcc", 19.515776), ("fcc_2x2x2", "fcc", 19.542997)] {
        let sc = cell(name, lattice, 2, v);
        let images = dp.images(sc.lengths).unwrap();
        let modes = HarmonicModes::new(&dp, &images, &sc, m_eff).unwrap();
        let r = &reference["cells"][name];
        let w_ref: Vec<f64> = r["w_code"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(modes.w.len(), w_ref.len());
        let dev = modes.w.iter().zip(&w_ref).map(|(a, b)| ((a - b) / b).abs()).fold(0.0, f64::max);
        assert!(dev < 1e-8, "{name}: frequencies deviate by {dev:.1e} relative");
        eprintln!("{name}: frequencies within {dev:.1e} relative of phonons.json");
        assert!(modes.zero_eigenvalues.iter().all(|z| z.abs() < 1e-6), "{:?}", modes.zero_eigenvalues);
        let v0 = r["V0_K_total"].as_f64().unwrap();
        assert!(((modes.v0 - v0) / v0).abs() < 1e-13);
        // Harmonic free energy at 50 K (K per atom) against the 50-digit reference.
        let n = sc.num_atoms() as f64;
        let (full, trunc) = modes.harmonic_free_energy(50.0, 20);
        let fh = r["free_energy"]["T50"]["F_h_K_per_atom"].as_f64().unwrap();
        assert!((full / n - fh).abs() < 1e-6 && (trunc / n - fh).abs() < 1e-6, "{} {} {fh}", full / n, trunc / n);
        // Round trip Q -> R -> Q, with atom 0 pinned and R wrapped into the box.
        let q: Vec<f64> = (0..modes.modes()).map(|k| 0.05 * ((k * 7 % 11) as f64 - 5.0) / 5.0).collect();
        let pos: Vec<[f64; 3]> = modes.positions(&q).iter().map(|p| std::array::from_fn(|a| p[a] - sc.lengths[a] * (p[a] / sc.lengths[a]).floor())).collect();
        assert_eq!(pos[0], sc.positions[0]);
        let back = modes.amplitudes(&pos);
        let err = back.iter().zip(&q).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-12, "{name}: round trip error {err:.1e}");
    }
}

use nct::driver::{Driver, Thermal};
use nct::models::solid::thermal::estimate;
use nct::models::solid::{CrystalModes, CrystalPotential, K_TO_MEV};
use nct::quantum::occupation::ThermalNct;
use nct::run::RunArgs;
use nct::*;
use std::sync::Arc;

fn bcc222(harmonic: bool) -> (CrystalModes, Arc<DeepPot>) {
    let dp = Arc::new(DeepPot::load(bundled("dp4.safetensors")).unwrap());
    let unit = UnitCell::read_poscar(bundled("structures/bcc.vasp")).unwrap();
    let sc = Supercell::new(&unit, [2; 3], 19.515776, true).unwrap();
    let images = dp.images(sc.lengths).unwrap();
    let modes = HarmonicModes::new(&dp, &images, &sc, Isotope::Natural.effective_mass()).unwrap();
    let potential = if harmonic { CrystalPotential::Harmonic } else { CrystalPotential::DeepPot { model: dp.clone(), images } };
    (CrystalModes::new(modes, potential), dp)
}

fn thermal_model<B: Bijector<Dyn>>(h: &CrystalModes, flow: B, t: f64) -> ThermalNct<B, ProductOccupation, Dyn> {
    nct::models::solid::thermal::thermal_model(h, flow, t, 20, LaplacianMethod::Jet).unwrap()
}

#[test]
fn mode_potential_is_the_deeppot_energy_with_the_harmonic_curvature() {
    // Independent of the forward-over-reverse Hessian: forward-mode Dual2 through the mode
    // transform and the whole DeepPot energy along a direction u gives d2V/ds2 = sum_k u_k^2 lambda_k / m.
    let (h, _) = bcc222(false);
    let d = h.modes.modes();
    let zero = Vector::from_element(Dyn(d), 0.0);
    assert!((h.potential(&zero) - h.modes.v0).abs() < 1e-9 * h.modes.v0.abs());
    for seed in 0..3 {
        let u: Vec<f64> = (0..d).map(|k| ((k + 3 * seed) * 7919 % 101) as f64 / 50.0 - 1.0).collect();
        let q = Vector::from_fn(Dyn(d), |k| num_dual::Dual2_64::new(0.0, u[k], 0.0));
        let v = h.potential(&q);
        let expect: f64 = u.iter().zip(&h.modes.eigenvalues).map(|(u, l)| u * u * l / h.modes.effective_mass).sum();
        assert!(v.v1.abs() < 1e-8, "gradient at the lattice {}", v.v1);
        assert!(((v.v2 - expect) / expect).abs() < 1e-9, "curvature {} vs {expect}", v.v2);
    }
}

#[test]
fn harmonic_crystal_reproduces_the_harmonic_free_energy_and_training_keeps_it() {
    let (h, _) = bcc222(true);
    let reference = json("phonons.json");
    let n = h.num_atoms() as f64;
    for (t, key) in [(50.0, "T50"), (100.0, "T100"), (200.0, "T200")] {
        let model = thermal_model(&h, IdentityFlow::new(Dyn(h.modes.modes())), t);
        let args = RunArgs { steps: 10, batch: 64, lr: 5e-4, seed: 3, quiet: true, ..Default::default() };
        let trained = Driver::new("harmonic", Thermal::new(&model, &h, args.batch)).group_rate("occupation", 40.0).run(&args, &args).unwrap();
        let est = estimate(&model, &h, &trained.theta, 2000, 9).unwrap();
        let r = &reference["cells"]["bcc_2x2x2"]["free_energy"][key];
        let f_ref = r["F_h_20levels_meV_per_atom"].as_f64().unwrap() + reference["cells"]["bcc_2x2x2"]["V0_meV_per_atom"].as_f64().unwrap();
        let (f, f_err) = (est.f.0 / n * K_TO_MEV, est.f.1 / n * K_TO_MEV);
        // Every sample of T ln p_n + E_loc equals -T ln Z for eigenstates, so the error is rounding
        // (~1e-6 meV); the bound allows 3 sigma plus that.
        assert!((f - f_ref).abs() < 3.0 * f_err + 1e-4, "T = {t}: F = {f} ± {f_err} vs {f_ref}");
        // Training moves the occupations only by noise (Adam rescales rounding-level gradients to
        // steps of the learning rate): F stays at its minimum to second order.
        let losses: Vec<f64> = trained.outcome.losses.iter().map(|l| l.1 / n * K_TO_MEV).collect();
        assert!(losses.iter().all(|l| (l - f_ref).abs() < 0.02), "T = {t}: losses {losses:?} vs {f_ref}");
        let e_ref = r["E_h_meV_per_atom"].as_f64().unwrap() + reference["cells"]["bcc_2x2x2"]["V0_meV_per_atom"].as_f64().unwrap();
        let (e, e_err) = (est.e.0 / n * K_TO_MEV, est.e.1 / n * K_TO_MEV);
        assert!((e - e_ref).abs() < 4.0 * e_err, "T = {t}: E = {e} ± {e_err} vs {e_ref}");
        assert!(((est.s / n) - r["S_h_kB_per_atom"].as_f64().unwrap()).abs() < 0.01, "T = {t}: S = {}", est.s / n);
    }
}

#[test]
fn harmonic_states_in_the_deeppot_give_the_first_order_free_energy() {
    // At theta = 0 the states are the harmonic eigenstates with PSA at the harmonic Boltzmann law,
    // so F = F_h + <V_DP - V_h> over the harmonic density matrix. Oracle: that average over
    // independent Gaussian samples Q_k ~ N(0, coth(w_k / 2T) / (2 m omega_k)) drawn here, not through
    // the Hermite sampler and the flow.
    let (h, _) = bcc222(false);
    let hh = CrystalModes::new(h.modes.clone(), CrystalPotential::Harmonic);
    let model = thermal_model(&h, IdentityFlow::new(Dyn(h.modes.modes())), 50.0);
    let est = estimate(&model, &h, &vec![0.0; model.n_params()], 2000, 7).unwrap();
    let (_, fh) = h.modes.harmonic_free_energy(50.0, 20);
    let omega = h.omega();
    let m = h.modes.effective_mass;
    let mut rng = SeedStream::new(11).named("gauss");
    use rand_distr::Distribution;
    let dv: Vec<f64> = (0..2000)
        .map(|_| {
            let q = Vector::from_fn(Dyn(omega.len()), |k| {
                let var = 1.0 / ((omega[k] / 100.0).tanh() * 2.0 * m * omega[k]);
                let z: f64 = rand_distr::StandardNormal.sample(&mut rng);
                var.sqrt() * z
            });
            h.potential(&q) - hh.potential(&q)
        })
        .collect();
    let (mean, err) = nct::classical::mean_and_error(&dv);
    let n = h.num_atoms() as f64;
    let predicted = (h.modes.v0 + fh + mean) / n * K_TO_MEV;
    let (f, f_err) = (est.f.0 / n * K_TO_MEV, est.f.1 / n * K_TO_MEV);
    let sigma = (f_err * f_err + (err / n * K_TO_MEV).powi(2)).sqrt();
    eprintln!("F(theta = 0) = {f} ± {f_err}, F_h + <dV> = {predicted} ± {}", err / n * K_TO_MEV);
    assert!((f - predicted).abs() < 3.5 * sigma, "F = {f} ± {f_err} vs {predicted} (sigma {sigma})");
    // The anharmonicity lowers F by about 2 meV/atom (the reference's trained value: 2.0).
    let fh_atom = (h.modes.v0 + fh) / n * K_TO_MEV;
    assert!(f < fh_atom - 1.5 && f > fh_atom - 2.5, "F - F_h = {}", f - fh_atom);
}

#[test]
fn training_the_mode_scales_recovers_the_harmonic_free_energy() {
    // Basis widths 30 % off: the per-mode scale layer must learn them back; the exact target is F_h.
    let (h, _) = bcc222(true);
    let omega = h.omega();
    let d = Dyn(omega.len());
    let mut states = QuantumNct::new(DiagonalAffine::new(d), Vector::from_fn(d, |k| 1.3 * omega[k]), h.masses(), 19);
    states.v_floor = h.modes.v0 - 10.0 * omega.iter().sum::<f64>();
    let model = ThermalNct::new(states, ProductOccupation::new(1.0 / 100.0, &omega, 20), None).unwrap();
    let n = h.num_atoms() as f64;
    let (_, fh) = h.modes.harmonic_free_energy(100.0, 20);
    let f_ref = (h.modes.v0 + fh) / n * K_TO_MEV;
    let start = estimate(&model, &h, &vec![0.0; model.n_params()], 1000, 3).unwrap();
    let args = RunArgs { steps: 400, batch: 256, lr: 0.01, seed: 2, quiet: true, ..Default::default() };
    let trained = Driver::new("scales", Thermal::new(&model, &h, args.batch)).group_rate("occupation", 0.0).run(&args, &args).unwrap();
    let end = estimate(&model, &h, &trained.theta, 2000, 4).unwrap();
    let (f0, f1, e1) = (start.f.0 / n * K_TO_MEV, end.f.0 / n * K_TO_MEV, end.f.1 / n * K_TO_MEV);
    let a = &trained.theta[..omega.len()];
    let target = -0.5 * 1.3f64.ln();
    let worst = a.iter().map(|v| (v - target).abs()).fold(0.0, f64::max);
    eprintln!("F_h = {f_ref}; F start {f0}, trained {f1} ± {e1}; log-scales off the exact {target:.5} by at most {worst:.5}");
    assert!(worst < 0.05, "log-scales off by {worst}");
    assert!(f0 - f_ref > 0.5, "the mis-scaled basis starts above F_h: {f0} vs {f_ref}");
    assert!(f1 - f_ref > -3.0 * e1 && f1 - f_ref < 0.02, "trained F = {f1} ± {e1} vs F_h = {f_ref}");
}

#[test]
fn anharmonic_bcc_training_is_stable_and_gives_the_reference_pressure() {
    // A short run (dp4, bcc 2x2x2, 50 K, scale + two small couplings): finite throughout, F within
    // noise of where it started or lower, and the virial pressure that of the reference's NVT run
    // (0.8683 GPa) within a few hundredths of a GPa.
    let (h, _) = bcc222(false);
    let d = Dyn(h.modes.modes());
    let mut rng = SeedStream::new(1).named("flow");
    let nvp = nct::real_nvp(d, 2, &[32], Activation::Tanh, MaskScheme::EvenOdd, &mut rng).unwrap();
    let model = thermal_model(&h, Chain::new(DiagonalAffine::new(d), nvp), 50.0);
    let n = h.num_atoms() as f64;
    let before = estimate(&model, &h, &vec![0.0; model.n_params()], 512, 5).unwrap();
    let args = RunArgs { steps: 40, batch: 64, lr: 5e-4, seed: 1, quiet: true, ..Default::default() };
    let trained = Driver::new("bcc", Thermal::new(&model, &h, args.batch)).group_rate("occupation", 40.0).run(&args, &args).unwrap();
    let after = estimate(&model, &h, &trained.theta, 512, 6).unwrap();
    let (f0, e0) = (before.f.0 / n * K_TO_MEV, before.f.1 / n * K_TO_MEV);
    let (f1, e1) = (after.f.0 / n * K_TO_MEV, after.f.1 / n * K_TO_MEV);
    eprintln!("F before {f0} ± {e0}, after {f1} ± {e1} meV/atom");
    assert!(f1 - f0 < 3.0 * (e0 * e0 + e1 * e1).sqrt(), "F before {f0} ± {e0}, after {f1} ± {e1}");
    let (p, p_err) = after.pressure.unwrap();
    let gpa = p * nct::models::solid::K_PER_A3_TO_GPA;
    assert!((gpa - 0.8683).abs() < 0.02 && p_err > 0.0, "P = {gpa} GPa");
}
