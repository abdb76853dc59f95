//! Vibrational models in (dimensionless or mass-weighted) normal coordinates.
//!
//! * [`HarmonicModes`]: $H = \sum_i \tfrac{\omega_i}{2}(p_i^2 + q_i^2)$ (dimensionless coordinates,
//!   kinetic $\sum_i \omega_i p_i^2 / 2$, i.e. masses $1/\omega_i$).
//! * [`Ndco`]: $D$ coupled oscillators
//!   $H = \sum_i(-\tfrac12\partial_i^2 + \tfrac12 w_i^2 x_i^2) + \sum_{i>j} a\sqrt{w_i w_j}\, x_i x_j$,
//!   $w_i^2 = i/2$ by default (unit masses).
//! * [`QuarticForceField`]: $H = \sum_i \tfrac{\omega_i}{2}(p_i^2+q_i^2) + \sum c\,q_iq_jq_k +
//!   \sum c\,q_iq_jq_kq_l$ in cm$^{-1}$, read from JSON files (schema and convention in
//!   `ncT-models/data/vibrational/README.md`). The four molecules H2O, H2CO, CH3CN and C2H4O ship
//!   with the crate ([`QuarticForceField::builtin`]; Apache-2.0, from zhangqi94/VibrationalSystem,
//!   licence beside the files). These surfaces are unbounded below; the quantum model rejects
//!   walkers that fall into the holes.
//!
//! Every model is generic over its dimension: `Const<D>` when it is fixed in code, [`Dyn`] when it
//! comes from a file or the command line.

use crate::data::DataError;
use nalgebra::DMatrix;
use nct::{Dyn, Scalar, Separable, Size, Vector};
use serde_json::Value;
use std::path::Path;

/// Uncoupled oscillators in dimensionless normal coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct HarmonicModes<D: Size> {
    pub omega: Vector<f64, D>,
}

impl<D: Size> Separable<D> for HarmonicModes<D> {
    fn dim(&self) -> D {
        self.omega.size()
    }
    fn potential<S: Scalar>(&self, q: &Vector<S, D>) -> S {
        let mut v = S::zero();
        for i in 0..q.len() {
            v += q[i] * q[i] * (0.5 * self.omega[i]);
        }
        v
    }
    fn masses(&self) -> Vector<f64, D> {
        self.omega.map(|w| 1.0 / w)
    }
}

/// Coupled harmonic oscillators (the NDCO benchmark).
#[derive(Clone, Debug, PartialEq)]
pub struct Ndco<D: Size> {
    pub coupling: f64,
    pub w: Vector<f64, D>,
}

impl<D: Size> Ndco<D> {
    /// `dim` modes, coupling `a`, frequencies $w_i = \sqrt{i/2}$, $i = 1..D$.
    pub fn new(dim: D, coupling: f64) -> Self {
        Self { coupling, w: Vector::from_fn(dim, ndco_w) }
    }
    /// Exact normal-mode frequencies (ascending); levels are $\sum_k \Omega_k (n_k + 1/2)$.
    pub fn normal_frequencies(&self) -> Vec<f64> {
        ndco_normal_frequencies(self.w.len(), self.coupling)
    }
    /// Exact free energy at temperature `t` (quantum harmonic oscillators).
    pub fn free_energy(&self, t: f64) -> f64 {
        harmonic_free_energy(&self.normal_frequencies(), t)
    }
}

/// NDCO bare frequency of mode `i` (0-based): $w_{i+1} = \sqrt{(i+1)/2}$.
fn ndco_w(i: usize) -> f64 {
    ((i as f64 + 1.0) / 2.0).sqrt()
}

/// Normal-mode frequencies (ascending) of the NDCO model with `d` modes and coupling `a`: square
/// roots of the eigenvalues of $K_{ij} = \delta_{ij} w_i^2 + (1 - \delta_{ij})\, a \sqrt{w_i w_j}$,
/// $w_i^2 = i/2$.
pub fn ndco_normal_frequencies(d: usize, a: f64) -> Vec<f64> {
    let w: Vec<f64> = (0..d).map(ndco_w).collect();
    let k = DMatrix::from_fn(d, d, |i, j| if i == j { w[i] * w[i] } else { a * (w[i] * w[j]).sqrt() });
    let mut ev: Vec<f64> = k.symmetric_eigen().eigenvalues.iter().map(|e| e.max(0.0).sqrt()).collect();
    ev.sort_by(f64::total_cmp);
    ev
}

/// Quantum free energy of independent oscillators, $\sum_k [\Omega_k/2 + T \ln(1 - e^{-\Omega_k/T})]$.
pub fn harmonic_free_energy(omega: &[f64], t: f64) -> f64 {
    omega.iter().map(|w| 0.5 * w + t * (1.0 - (-w / t).exp()).ln()).sum()
}

impl<D: Size> Separable<D> for Ndco<D> {
    fn dim(&self) -> D {
        self.w.size()
    }
    fn potential<S: Scalar>(&self, x: &Vector<S, D>) -> S {
        let mut v = S::zero();
        for i in 0..x.len() {
            v += x[i] * x[i] * (0.5 * self.w[i] * self.w[i]);
            for j in 0..i {
                v += x[i] * x[j] * (self.coupling * (self.w[i] * self.w[j]).sqrt());
            }
        }
        v
    }
}

/// A quartic force field on `D` modes.
#[derive(Clone, Debug, PartialEq)]
pub struct QuarticForceField<D: Size> {
    pub molecule: String,
    pub omega: Vector<f64, D>,
    pub cubic: Vec<([usize; 3], f64)>,
    pub quartic: Vec<([usize; 4], f64)>,
}

fn ff_err(file: &Path, field: impl Into<String>, found: impl ToString, expected: impl ToString) -> DataError {
    DataError::Field { file: file.into(), field: field.into(), found: found.to_string(), expected: expected.to_string() }
}

/// Number of modes declared by a force-field file.
pub fn force_field_modes(path: &Path) -> Result<usize, DataError> {
    let v = read_json(path)?;
    v.get("n_modes").and_then(Value::as_u64).map(|n| n as usize).ok_or_else(|| ff_err(path, "n_modes", v.get("n_modes").map_or("missing".into(), |x| x.to_string()), "a positive integer"))
}

fn read_json(path: &Path) -> Result<Value, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { file: path.into(), source })?;
    parse_json(path, &text)
}

fn parse_json(path: &Path, text: &str) -> Result<Value, DataError> {
    serde_json::from_str(text).map_err(|e| ff_err(path, "(json)", e.to_string(), "a JSON object"))
}

/// The force fields that ship with the crate: `(name, file name, JSON text)`.
pub const BUILTIN_FORCE_FIELDS: [(&str, &str, &str); 4] = [
    ("h2o", "h2o.json", include_str!("../data/vibrational/h2o.json")),
    ("h2co", "h2co.json", include_str!("../data/vibrational/h2co.json")),
    ("ch3cn", "ch3cn.json", include_str!("../data/vibrational/ch3cn.json")),
    ("c2h4o", "c2h4o.json", include_str!("../data/vibrational/c2h4o.json")),
];

impl QuarticForceField<Dyn> {
    /// A force field that ships with the crate (`h2o`, `h2co`, `ch3cn`, `c2h4o`; Apache-2.0, from
    /// the VibrationalSystem repository of Zhang, Wang & Wang, J. Chem. Phys. 161, 024103 (2024)).
    pub fn builtin(name: &str) -> Result<Self, DataError> {
        let (_, file, text) = BUILTIN_FORCE_FIELDS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| ff_err(Path::new("(built-in)"), "system", name, "one of h2o, h2co, ch3cn, c2h4o"))?;
        Self::parse(Path::new(file), text)
    }
}

impl<D: Size> QuarticForceField<D> {
    /// Read and validate a force-field JSON file; every error names the file and the field. With
    /// `D = Dyn` any number of modes is accepted; with `Const<K>` the file must have `K`.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { file: path.into(), source })?;
        Self::parse(path, &text)
    }

    /// [`QuarticForceField::load`] from the text of a file; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, DataError> {
        let v = parse_json(path, text)?;
        let n = v.get("n_modes").and_then(Value::as_u64).filter(|&n| n > 0).ok_or_else(|| ff_err(path, "n_modes", v.get("n_modes").map_or("missing".into(), |x| x.to_string()), "a positive integer"))? as usize;
        let Some(dim) = D::try_new(n) else {
            return Err(ff_err(path, "n_modes", n, format!("{} (the dimension this model was built for)", D::STATIC.unwrap_or(0))));
        };
        let freqs = v.get("harmonic_frequencies_cm").and_then(Value::as_array).ok_or_else(|| ff_err(path, "harmonic_frequencies_cm", "missing or not a list", "a list of n_modes frequencies"))?;
        if freqs.len() != n {
            return Err(ff_err(path, "harmonic_frequencies_cm", format!("{} entries", freqs.len()), format!("n_modes = {n} entries")));
        }
        let mut omega = Vector::<f64, D>::zeros(dim);
        for (i, f) in freqs.iter().enumerate() {
            match f.as_f64() {
                Some(w) if w.is_finite() && w > 0.0 => omega[i] = w,
                _ => return Err(ff_err(path, format!("harmonic_frequencies_cm[{i}]"), f, "a positive frequency in cm^-1")),
            }
        }
        fn rows<const K: usize>(path: &Path, v: &Value, key: &str, n: usize) -> Result<Vec<([usize; K], f64)>, DataError> {
            let list = v.get(key).and_then(Value::as_array).ok_or_else(|| ff_err(path, key, "missing or not a list", format!("a list of [{} indices..., coefficient] rows", K)))?;
            let mut out = Vec::with_capacity(list.len());
            for (r, row) in list.iter().enumerate() {
                let items = row.as_array().filter(|a| a.len() == K + 1).ok_or_else(|| ff_err(path, format!("{key}[{r}]"), row, format!("a row of {K} mode indices and a coefficient")))?;
                let mut idx = [0usize; K];
                for k in 0..K {
                    match items[k].as_u64() {
                        Some(i) if (i as usize) < n => idx[k] = i as usize,
                        _ => return Err(ff_err(path, format!("{key}[{r}][{k}]"), &items[k], format!("a 0-based mode index in 0..{n}"))),
                    }
                }
                let c = items[K].as_f64().filter(|c| c.is_finite()).ok_or_else(|| ff_err(path, format!("{key}[{r}][{K}]"), &items[K], "a finite coefficient in cm^-1"))?;
                out.push((idx, c));
            }
            Ok(out)
        }
        let cubic = rows::<3>(path, &v, "cubic", n)?;
        let quartic = rows::<4>(path, &v, "quartic", n)?;
        let molecule = v.get("molecule").and_then(Value::as_str).unwrap_or("unknown").to_string();
        Ok(Self { molecule, omega, cubic, quartic })
    }

    /// Harmonic zero-point energy $\sum_i \omega_i / 2$.
    pub fn harmonic_zpe(&self) -> f64 {
        self.omega.iter().sum::<f64>() / 2.0
    }

    /// The harmonic part alone (for the identity-flow check).
    pub fn harmonic(&self) -> HarmonicModes<D> {
        HarmonicModes { omega: self.omega.clone() }
    }
}

impl<D: Size> Separable<D> for QuarticForceField<D> {
    fn dim(&self) -> D {
        self.omega.size()
    }
    fn potential<S: Scalar>(&self, q: &Vector<S, D>) -> S {
        let mut v = S::zero();
        for i in 0..q.len() {
            v += q[i] * q[i] * (0.5 * self.omega[i]);
        }
        for (ix, c) in &self.cubic {
            v += q[ix[0]] * q[ix[1]] * q[ix[2]] * *c;
        }
        for (ix, c) in &self.quartic {
            v += q[ix[0]] * q[ix[1]] * q[ix[2]] * q[ix[3]] * *c;
        }
        v
    }
    fn masses(&self) -> Vector<f64, D> {
        self.omega.map(|w| 1.0 / w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(name: &str) -> Option<std::path::PathBuf> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/vibrational").join(name);
        p.exists().then_some(p)
    }

    #[test]
    fn loads_shared_force_fields() {
        let Some(p) = shared("ch3cn.json") else { return };
        assert_eq!(force_field_modes(&p).unwrap(), 12);
        let ff = QuarticForceField::<nct::Const<12>>::load(&p).unwrap();
        assert!((ff.harmonic_zpe() - 9905.5).abs() < 1e-9);
        assert_eq!(ff.cubic.len(), 108);
        assert_eq!(ff.quartic.len(), 191);
        let e = QuarticForceField::<nct::Const<3>>::load(&p).unwrap_err().to_string();
        assert!(e.contains("ch3cn.json") && e.contains("n_modes"), "{e}");
        // The shipped copy equals the shared file, and the runtime-size model equals the static one.
        let dynamic = QuarticForceField::<Dyn>::load(&p).unwrap();
        let builtin = QuarticForceField::builtin("ch3cn").unwrap();
        assert_eq!(dynamic, builtin);
        assert_eq!(dynamic.omega.as_slice(), ff.omega.as_slice());
        let q = Vector::from_fn(Dyn(12), |i| 0.1 * i as f64 - 0.4);
        let qs: Vector<f64, nct::Const<12>> = q.resize().unwrap();
        assert_eq!(dynamic.potential(&q), ff.potential(&qs));
        for name in ["h2o", "h2co", "ch3cn", "c2h4o"] {
            let shared_copy = QuarticForceField::<Dyn>::load(&shared(&format!("{name}.json")).unwrap()).unwrap();
            assert_eq!(QuarticForceField::builtin(name).unwrap(), shared_copy, "{name}");
        }
        assert!(QuarticForceField::builtin("nh3").unwrap_err().to_string().contains("h2o, h2co"));
    }

    #[test]
    fn malformed_files_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (r#"{"n_modes": 2, "harmonic_frequencies_cm": [1.0], "cubic": [], "quartic": []}"#, "harmonic_frequencies_cm"),
            (r#"{"n_modes": 2, "harmonic_frequencies_cm": [1.0, -3.0], "cubic": [], "quartic": []}"#, "harmonic_frequencies_cm[1]"),
            (r#"{"n_modes": 2, "harmonic_frequencies_cm": [1.0, 3.0], "cubic": [[0, 1, 2, 0.5]], "quartic": []}"#, "cubic[0][2]"),
            (r#"{"n_modes": 2, "harmonic_frequencies_cm": [1.0, 3.0], "cubic": [], "quartic": [[0, 1, 1, 0.5]]}"#, "quartic[0]"),
            (r#"{"n_modes": 2, "harmonic_frequencies_cm": [1.0, 3.0], "cubic": [[0, 0, 1, "x"]], "quartic": []}"#, "cubic[0][3]"),
            (r#"{"harmonic_frequencies_cm": [1.0, 3.0]}"#, "n_modes"),
            (r#"{"n_modes": 2, "harmonic_frequencies_cm": [1.0, 3.0], "quartic": []}"#, "cubic"),
            ("not json", "(json)"),
        ];
        for (k, (text, field)) in cases.iter().enumerate() {
            let p = dir.path().join(format!("ff{k}.json"));
            std::fs::write(&p, text).unwrap();
            let e = QuarticForceField::<Dyn>::load(&p).unwrap_err().to_string();
            assert!(e.contains(&format!("ff{k}.json")) && e.contains(field), "case {k}: {e}");
        }
    }

    #[test]
    fn ndco_exact_levels() {
        let m = Ndco::new(nct::Const::<4>, 0.1);
        let e0: f64 = m.normal_frequencies().iter().sum::<f64>() / 2.0;
        assert!((e0 - 2.166531218280).abs() < 1e-9, "{e0}");
        let m8 = Ndco::new(Dyn(8), 0.1);
        assert!((m8.normal_frequencies().iter().sum::<f64>() / 2.0 - 5.743945740618).abs() < 1e-9);
        assert!((m8.free_energy(1.0) - 3.1978187613).abs() < 1e-8, "{}", m8.free_energy(1.0));
    }
}
