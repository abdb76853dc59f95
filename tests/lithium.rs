//! DeepPot-SE lithium against the reference's golden numbers (`../shared/data/lithium`, produced
//! by the reference JAX code and cross-checked by finite differences and an independent
//! implementation), supercells, harmonic phonons and the mode coordinates.

use nct_models::solid::{DeepPot, HarmonicModes, Isotope, Supercell, structure::UnitCell};
use serde_json::Value;
use std::path::PathBuf;

fn shared(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/lithium").join(name)
}
fn bundled(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ncT-models/data/lithium").join(name)
}
fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(shared(name)).expect("shared lithium data")).unwrap()
}
fn vec3(v: &Value) -> [f64; 3] {
    std::array::from_fn(|k| v[k].as_f64().unwrap())
}
fn rows(v: &Value) -> Vec<[f64; 3]> {
    v.as_array().unwrap().iter().map(vec3).collect()
}

#[test]
fn bundled_weights_equal_the_shared_data() {
    for m in ["dp4.safetensors", "dp0.safetensors"] {
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
