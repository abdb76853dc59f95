//! The standard `summary.json` every driver run writes (schema [`SCHEMA`], documented in
//! `docs/summary.md`): the run's own fields, then the results of its kind, then observables.
//! Non-finite numbers are never written as results: they become `null`, and
//! [`Summary::require_finite`] turns a missing headline result into an error instead.

use super::objective::ThermalEstimate;
use super::observable::ObservableValue;
use crate::classical::FreeEnergy;
use crate::quantum::StateEnergy;
use crate::quantum::ritz::Ritz;
use crate::run::{RunDir, RunError, TrainingOutcome};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Name and version of the summary schema.
pub const SCHEMA: &str = "nct.summary/1";

/// JSON of a number, `null` when it is not finite.
pub fn finite(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// The `ritz` block: `energies`, `energies_err`, `zpe`, `excitations`, `excitations_err`, `labels`,
/// `label_weights`, `basis`, `samples`, `rejected`, `overlap_deviation`, `max_imaginary`, `seconds`,
/// `reference`.
pub fn ritz_json(r: &Ritz, seconds: f64, reference: Option<&[f64]>) -> Value {
    let es: Vec<f64> = r.levels.iter().map(|l| l.energy).collect();
    let zpe = es.first().copied().unwrap_or(f64::NAN);
    let col = |v: Vec<f64>| Value::Array(v.into_iter().map(finite).collect());
    json!({
        "energies": col(es.clone()),
        "energies_err": col(r.levels.iter().map(|l| l.error).collect()),
        "zpe": finite(zpe),
        "excitations": col(es.iter().map(|x| x - zpe).collect()),
        "excitations_err": col(r.levels.iter().map(|l| l.excitation_error).collect()),
        "labels": r.levels.iter().map(|l| l.label.clone()).collect::<Vec<_>>(),
        "label_weights": col(r.levels.iter().map(|l| l.weight).collect()),
        "basis": r.basis,
        "samples": r.samples,
        "rejected": r.rejected,
        "overlap_deviation": finite(r.overlap_deviation),
        "max_imaginary": finite(r.max_imaginary),
        "seconds": seconds,
        "reference": reference,
    })
}

/// A summary being filled; [`Summary::write`] puts it into the run directory.
pub struct Summary<'a> {
    dir: Option<&'a RunDir>,
    map: Map<String, Value>,
}

impl<'a> Summary<'a> {
    /// The run's fields: `schema`, `kind`, `model`, `n_params`, `seed`, `batch`, `steps`,
    /// `seconds`, `interrupted`, `rollbacks`, `resumed_from`, `final_loss`, `best_loss`.
    pub fn new(dir: Option<&'a RunDir>, kind: &str, model: &str, n_params: usize, seed: u64, batch: usize, outcome: &TrainingOutcome) -> Self {
        let mut map = Map::new();
        map.insert("schema".into(), json!(SCHEMA));
        map.insert("kind".into(), json!(kind));
        map.insert("model".into(), json!(model));
        map.insert("n_params".into(), json!(n_params));
        map.insert("seed".into(), json!(seed));
        map.insert("batch".into(), json!(batch));
        map.insert("steps".into(), json!(outcome.steps_done));
        map.insert("seconds".into(), json!(outcome.seconds));
        map.insert("interrupted".into(), json!(outcome.interrupted));
        map.insert("rollbacks".into(), json!(outcome.rollbacks));
        map.insert("resumed_from".into(), json!(outcome.resumed_from));
        map.insert("final_loss".into(), outcome.losses.last().map_or(Value::Null, |l| finite(l.1)));
        map.insert("best_loss".into(), finite(outcome.losses.iter().map(|l| l.1).fold(f64::INFINITY, f64::min)));
        Summary { dir, map }
    }

    /// Any further field (numbers that are not finite become `null`).
    pub fn insert(mut self, key: &str, value: impl Serialize) -> Self {
        let v = serde_json::to_value(value).unwrap_or(Value::Null);
        let v = match v.as_f64() {
            Some(x) if !x.is_finite() => Value::Null,
            _ => v,
        };
        self.map.insert(key.into(), v);
        self
    }

    /// A reference value (exact or literature) under `key`, `null` when unknown.
    pub fn reference(self, key: &str, value: Option<f64>) -> Self {
        let v = value.map_or(Value::Null, finite);
        self.insert(key, v)
    }

    /// Classical free energies: `F_var`, `F_var_err`, `F_is`, `ess`, `eval_samples`.
    pub fn free_energy(self, fe: &FreeEnergy) -> Self {
        self.insert("F_var", finite(fe.f_var)).insert("F_var_err", finite(fe.f_var_err)).insert("F_is", finite(fe.f_is)).insert("ess", finite(fe.ess)).insert("eval_samples", fe.samples)
    }

    /// State energies (ascending): `energies`, `energies_err`, `kinetic`(`_err`),
    /// `potential`(`_err`), `labels`, `zpe`, `excitations`, `rejected`.
    pub fn energies(self, e: &[StateEnergy]) -> Self {
        let col = |f: &dyn Fn(&StateEnergy) -> f64| Value::Array(e.iter().map(|s| finite(f(s))).collect());
        let zpe = e.first().map_or(f64::NAN, |s| s.energy);
        self.insert("energies", col(&|s| s.energy))
            .insert("energies_err", col(&|s| s.error))
            .insert("kinetic", col(&|s| s.kinetic))
            .insert("kinetic_err", col(&|s| s.kinetic_error))
            .insert("potential", col(&|s| s.potential))
            .insert("potential_err", col(&|s| s.potential_error))
            .insert("labels", e.iter().map(|s| s.label.clone()).collect::<Vec<_>>())
            .insert("zpe", finite(zpe))
            .insert("excitations", col(&|s| s.energy - zpe))
            .insert("rejected", e.iter().map(|s| s.rejected).sum::<usize>())
    }

    /// Finite-temperature estimates: `F`, `E`, `K`, `V` (each with `_err`) and `S`.
    pub fn thermal(self, t: &ThermalEstimate) -> Self {
        self.insert("F", finite(t.f.0))
            .insert("F_err", finite(t.f.1))
            .insert("E", finite(t.e.0))
            .insert("E_err", finite(t.e.1))
            .insert("K", finite(t.k.0))
            .insert("K_err", finite(t.k.1))
            .insert("V", finite(t.v.0))
            .insert("V_err", finite(t.v.1))
            .insert("S", finite(t.s))
    }

    /// Observables under `observables`: `{name: {mean, error, samples}}`.
    pub fn observables(mut self, obs: &[ObservableValue]) -> Self {
        let entry = self.map.entry("observables").or_insert_with(|| json!({}));
        if let Some(m) = entry.as_object_mut() {
            for o in obs {
                m.insert(o.name.clone(), json!({"mean": finite(o.mean), "error": finite(o.error), "samples": o.samples}));
            }
        }
        self
    }

    /// A Ritz step under `ritz` (see [`ritz_json`]).
    pub fn ritz(self, r: &Ritz, seconds: f64, reference: Option<&[f64]>) -> Self {
        self.insert("ritz", ritz_json(r, seconds, reference))
    }

    /// Refuse to write a summary whose headline result `key` is missing or not finite.
    pub fn require_finite(self, key: &str) -> Result<Self, RunError> {
        match self.map.get(key).and_then(Value::as_f64) {
            Some(v) if v.is_finite() => Ok(self),
            _ => Err(RunError::NoEstimate { what: key.into(), why: "the estimate is not a finite number".into() }),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.map)
    }

    /// Write `summary.json` (when the run has a directory) and return its contents.
    pub fn write(self) -> Result<Value, RunError> {
        let dir = self.dir;
        let v = self.into_value();
        if let Some(d) = dir {
            d.write_summary(&v)?;
        }
        Ok(v)
    }
}
