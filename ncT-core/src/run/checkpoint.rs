//! Checkpoints in the safetensors format (a JSON header with bounds-checked offsets followed by raw
//! little-endian tensors; <https://github.com/huggingface/safetensors>). No unchecked deserialiser
//! is involved: the header is validated by the safetensors crate and every field is checked here.
//!
//! Tensors (all F64, shape `[n]`): `theta` (parameters), `adam.m`, `adam.v` (optimiser moments).
//! Metadata (strings): `format` = `nct-checkpoint`, `version` = `1`, `step` (steps completed),
//! `adam_t`, `lr_factor` (bits of the f64, hex), `rollbacks`, `seed`, `schedule` ([`Schedule::encode`]), `model` (JSON of
//! [`ModelDescription`]), `crc32` (CRC-32 of the three tensors' bytes, checked on load, so flipped
//! bits are refused). Random streams are derived from `(seed, step, chunk)`, so no RNG state
//! needs saving: resuming at `step` draws exactly the samples an uninterrupted run would.

use super::atomic::{FailPoint, write_atomic_with};
use super::{RunError, io_err};
use crate::optim::Adam;
use crate::train::Schedule;
use crate::params::{ParamGroup, Parametrised};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "nct-checkpoint";
pub const VERSION: &str = "1";

/// What a checkpoint must match: the model's name and its parameter layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDescription {
    pub name: String,
    pub n_params: usize,
    /// `(group name, length)` for every parameter group.
    pub groups: Vec<(String, usize)>,
}

impl ModelDescription {
    pub fn of<P: Parametrised + ?Sized>(name: &str, model: &P) -> Self {
        Self { name: name.into(), n_params: model.n_params(), groups: model.param_groups().iter().map(|g: &ParamGroup| (g.name.clone(), g.len())).collect() }
    }
    pub fn short(&self) -> String {
        format!("`{}` with {} parameters in {} groups", self.name, self.n_params, self.groups.len())
    }
}

/// The state of a training run after `step` steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub model: ModelDescription,
    pub step: u64,
    pub seed: u64,
    pub theta: Vec<f64>,
    pub adam: Adam,
    pub lr_factor: f64,
    pub rollbacks: u32,
    /// The learning-rate schedule the run was planned with (`None` in checkpoints written
    /// before schedules were stored).
    pub schedule: Option<Schedule>,
}

fn to_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// CRC-32 of the tensors' bytes in the order theta, adam.m, adam.v.
fn tensor_crc(parts: [&[u8]; 3]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let n = self.theta.len();
        let (t, m, v) = (to_bytes(&self.theta), to_bytes(&self.adam.m), to_bytes(&self.adam.v));
        let views = [("theta", TensorView::new(Dtype::F64, vec![n], &t)), ("adam.m", TensorView::new(Dtype::F64, vec![n], &m)), ("adam.v", TensorView::new(Dtype::F64, vec![n], &v))];
        let mut tensors = Vec::new();
        for (name, view) in views {
            tensors.push((name, view.map_err(|e| e.to_string())?));
        }
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("version".to_string(), VERSION.to_string());
        meta.insert("step".to_string(), self.step.to_string());
        meta.insert("seed".to_string(), self.seed.to_string());
        meta.insert("adam_t".to_string(), self.adam.t.to_string());
        meta.insert("adam_lr".to_string(), format!("{:016x}", self.adam.lr.to_bits()));
        meta.insert("lr_factor".to_string(), format!("{:016x}", self.lr_factor.to_bits()));
        meta.insert("rollbacks".to_string(), self.rollbacks.to_string());
        if let Some(sch) = &self.schedule {
            meta.insert("schedule".to_string(), sch.encode());
        }
        meta.insert("crc32".to_string(), format!("{:08x}", tensor_crc([&t, &m, &v])));
        meta.insert("model".to_string(), serde_json::to_string(&self.model).map_err(|e| e.to_string())?);
        safetensors::tensor::serialize(tensors, Some(meta)).map_err(|e| e.to_string())
    }

    /// Write atomically (the previous checkpoint survives any failure).
    pub fn save(&self, path: &Path) -> Result<(), RunError> {
        self.save_with(path, FailPoint::None)
    }

    pub fn save_with(&self, path: &Path, fail: FailPoint) -> Result<(), RunError> {
        if self.theta.iter().chain(&self.adam.m).chain(&self.adam.v).any(|x| !x.is_finite()) {
            return Err(RunError::Checkpoint { path: path.into(), why: "refusing to write a state with NaN/Inf".into() });
        }
        let bytes = self.to_bytes().map_err(|why| RunError::Checkpoint { path: path.into(), why })?;
        write_atomic_with(path, &bytes, fail)
    }

    /// Read and validate a checkpoint; `expected` is the model of the current run.
    pub fn load(path: &Path, expected: &ModelDescription) -> Result<Self, RunError> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        Self::from_bytes(&bytes, path, expected)
    }

    pub fn from_bytes(bytes: &[u8], path: &Path, expected: &ModelDescription) -> Result<Self, RunError> {
        let err = |why: String| RunError::Checkpoint { path: PathBuf::from(path), why };
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| err(format!("not a valid safetensors file ({e})")))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| err(format!("unreadable header ({e})")))?;
        let meta = meta.metadata().clone().ok_or_else(|| err("no metadata: not an ncT checkpoint".into()))?;
        let field = |k: &str| meta.get(k).cloned().ok_or_else(|| err(format!("metadata field `{k}` is missing")));
        if field("format")? != FORMAT {
            return Err(err(format!("metadata field `format` is `{}`, expected `{FORMAT}`", field("format")?)));
        }
        if field("version")? != VERSION {
            return Err(err(format!("format version {} is not supported (this build reads version {VERSION})", field("version")?)));
        }
        let model: ModelDescription = serde_json::from_str(&field("model")?).map_err(|e| err(format!("metadata field `model` is malformed ({e})")))?;
        if &model != expected {
            return Err(RunError::ModelMismatch { path: path.into(), expected: expected.short(), found: model.short() });
        }
        let int = |k: &str| -> Result<u64, RunError> { field(k)?.parse::<u64>().map_err(|e| err(format!("metadata field `{k}` is not an integer ({e})"))) };
        let bits = |k: &str| -> Result<f64, RunError> { u64::from_str_radix(&field(k)?, 16).map(f64::from_bits).map_err(|e| err(format!("metadata field `{k}` is not hex f64 bits ({e})"))) };
        let tensor = |name: &str| -> Result<Vec<f64>, RunError> {
            let t = st.tensor(name).map_err(|e| err(format!("tensor `{name}`: {e}")))?;
            if t.dtype() != Dtype::F64 || t.shape() != [model.n_params] {
                return Err(err(format!("tensor `{name}` has dtype {:?} and shape {:?}, expected F64 [{}]", t.dtype(), t.shape(), model.n_params)));
            }
            Ok(t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
        };
        let raw = |name: &str| st.tensor(name).map(|t| t.data().to_vec()).map_err(|e| err(format!("tensor `{name}`: {e}")));
        let crc = tensor_crc([&raw("theta")?, &raw("adam.m")?, &raw("adam.v")?]);
        let stored = u32::from_str_radix(&field("crc32")?, 16).map_err(|e| err(format!("metadata field `crc32` is not hex ({e})")))?;
        if crc != stored {
            return Err(err(format!("corrupted: the tensors' CRC-32 is {crc:08x}, the checkpoint recorded {stored:08x} (the file was modified or damaged after it was written)")));
        }
        let theta = tensor("theta")?;
        if theta.iter().any(|x| !x.is_finite()) {
            return Err(err("tensor `theta` contains NaN/Inf".into()));
        }
        let mut adam = Adam::new(model.n_params, bits("adam_lr")?);
        adam.m = tensor("adam.m")?;
        adam.v = tensor("adam.v")?;
        adam.t = int("adam_t")?;
        let schedule = match meta.get("schedule") {
            None => None,
            Some(text) => Some(Schedule::decode(text).ok_or_else(|| err(format!("metadata field `schedule` is malformed (`{text}`)")))?),
        };
        Ok(Self { step: int("step")?, seed: int("seed")?, theta, adam, lr_factor: bits("lr_factor")?, rollbacks: int("rollbacks")? as u32, model, schedule })
    }
}
