//! Checkpoints in the safetensors format (a JSON header with bounds-checked offsets followed by raw
//! little-endian tensors; <https://github.com/huggingface/safetensors>). No unchecked deserialiser
//! is involved: the header is validated by the safetensors crate and every field is checked here.
//!
//! Tensors (all F64, shape `[n]`): `theta` (parameters) and the optimiser's state: `adam.m`,
//! `adam.v` (Adam's moments) or `sgd.velocity`.
//! Metadata (strings): `format` = `nct-checkpoint`, `version` = `1`, `step` (steps completed),
//! `optimizer` (`adam` when absent), `adam_t`/`adam_lr` (or `sgd_t`/`sgd_lr`), `lr_factor` (bits of the f64, hex), `rollbacks`, `seed`, `schedule` ([`Schedule::encode`]), `model` (JSON of
//! [`ModelDescription`]), `crc32` (CRC-32 of the tensors' bytes, checked on load, so flipped
//! bits are refused). Random streams are derived from `(seed, step, chunk)`, so no RNG state
//! needs saving: resuming at `step` draws exactly the samples an uninterrupted run would.

use super::atomic::{FailPoint, write_atomic_with};
use super::{RunError, io_err};
use crate::optim::OptimizerState;
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
    /// The optimiser's state ([`OptimizerState`]).
    pub optimizer: OptimizerState,
    pub lr_factor: f64,
    pub rollbacks: u32,
    /// The learning-rate schedule the run was planned with (`None` in checkpoints written
    /// before schedules were stored).
    pub schedule: Option<Schedule>,
}

fn to_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// CRC-32 of the tensors' bytes in the order theta, then the optimiser's tensors.
fn tensor_crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

impl Checkpoint {
    /// Tensor names of the optimiser state: `adam.m`, `adam.v`, `sgd.velocity`, ...
    fn tensor_names(&self) -> Vec<String> {
        self.optimizer.tensors.iter().map(|(k, _)| format!("{}.{k}", self.optimizer.kind)).collect()
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let n = self.theta.len();
        let mut bytes = vec![to_bytes(&self.theta)];
        bytes.extend(self.optimizer.tensors.iter().map(|(_, v)| to_bytes(v)));
        let mut names = vec!["theta".to_string()];
        names.extend(self.tensor_names());
        let mut tensors = Vec::new();
        for (name, b) in names.iter().zip(&bytes) {
            tensors.push((name.as_str(), TensorView::new(Dtype::F64, vec![n], b).map_err(|e| e.to_string())?));
        }
        let kind = &self.optimizer.kind;
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("version".to_string(), VERSION.to_string());
        meta.insert("step".to_string(), self.step.to_string());
        meta.insert("seed".to_string(), self.seed.to_string());
        meta.insert("optimizer".to_string(), kind.clone());
        meta.insert(format!("{kind}_t"), self.optimizer.t.to_string());
        meta.insert(format!("{kind}_lr"), format!("{:016x}", self.optimizer.lr.to_bits()));
        meta.insert("lr_factor".to_string(), format!("{:016x}", self.lr_factor.to_bits()));
        meta.insert("rollbacks".to_string(), self.rollbacks.to_string());
        if let Some(sch) = &self.schedule {
            meta.insert("schedule".to_string(), sch.encode());
        }
        meta.insert("crc32".to_string(), format!("{:08x}", tensor_crc(&bytes.iter().map(|b| b.as_slice()).collect::<Vec<_>>())));
        meta.insert("model".to_string(), serde_json::to_string(&self.model).map_err(|e| e.to_string())?);
        safetensors::tensor::serialize(tensors, Some(meta)).map_err(|e| e.to_string())
    }

    /// Write atomically (the previous checkpoint survives any failure).
    pub fn save(&self, path: &Path) -> Result<(), RunError> {
        self.save_with(path, FailPoint::None)
    }

    pub fn save_with(&self, path: &Path, fail: FailPoint) -> Result<(), RunError> {
        if self.theta.iter().chain(self.optimizer.tensors.iter().flat_map(|(_, v)| v)).any(|x| !x.is_finite()) {
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
        // Checkpoints from before optimisers were named are Adam's.
        let kind = meta.get("optimizer").cloned().unwrap_or_else(|| "adam".to_string());
        let names: Vec<&str> = match kind.as_str() {
            "adam" => vec!["m", "v"],
            "sgd" => vec!["velocity"],
            other => return Err(err(format!("metadata field `optimizer` is `{other}`; this build knows `adam` and `sgd`"))),
        };
        let mut parts = vec![raw("theta")?];
        for nm in &names {
            parts.push(raw(&format!("{kind}.{nm}"))?);
        }
        let crc = tensor_crc(&parts.iter().map(|b| b.as_slice()).collect::<Vec<_>>());
        let stored = u32::from_str_radix(&field("crc32")?, 16).map_err(|e| err(format!("metadata field `crc32` is not hex ({e})")))?;
        if crc != stored {
            return Err(err(format!("corrupted: the tensors' CRC-32 is {crc:08x}, the checkpoint recorded {stored:08x} (the file was modified or damaged after it was written)")));
        }
        let theta = tensor("theta")?;
        if theta.iter().any(|x| !x.is_finite()) {
            return Err(err("tensor `theta` contains NaN/Inf".into()));
        }
        let mut tensors = Vec::new();
        for nm in &names {
            tensors.push((nm.to_string(), tensor(&format!("{kind}.{nm}"))?));
        }
        let optimizer = OptimizerState { lr: bits(&format!("{kind}_lr"))?, t: int(&format!("{kind}_t"))?, kind, tensors };
        let schedule = match meta.get("schedule") {
            None => None,
            Some(text) => Some(Schedule::decode(text).ok_or_else(|| err(format!("metadata field `schedule` is malformed (`{text}`)")))?),
        };
        Ok(Self { step: int("step")?, seed: int("seed")?, theta, optimizer, lr_factor: bits("lr_factor")?, rollbacks: int("rollbacks")? as u32, model, schedule })
    }
}
