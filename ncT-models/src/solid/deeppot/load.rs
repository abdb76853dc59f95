//! Reading a DeepPot-SE model from safetensors (tensor names and metadata as in
//! `ncT-models/data/lithium/README.md`), checking every shape and hyper-parameter.

use super::environment::Environment;
use super::nets::{Dense, EmbeddingNet};
use super::{DeepPot, DeepPotError};
use std::collections::HashMap;
use std::path::Path;

struct Tensors<'a> {
    path: &'a str,
    st: safetensors::SafeTensors<'a>,
}

impl Tensors<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f64>, DeepPotError> {
        let err = |why: String| DeepPotError::Format { path: self.path.into(), why };
        let t = self.st.tensor(name).map_err(|_| err(format!("tensor `{name}` is missing")))?;
        if t.dtype() != safetensors::Dtype::F64 {
            return Err(err(format!("tensor `{name}` has dtype {:?}, expected F64", t.dtype())));
        }
        if t.shape() != shape {
            return Err(err(format!("tensor `{name}` has shape {:?}, expected {shape:?}", t.shape())));
        }
        Ok(t.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect())
    }
    fn dims(&self, name: &str) -> Result<Vec<usize>, DeepPotError> {
        self.st.tensor(name).map(|t| t.shape().to_vec()).map_err(|_| DeepPotError::Format { path: self.path.into(), why: format!("tensor `{name}` is missing") })
    }
}

impl DeepPot {
    /// Reads a model written in the layout of `../shared/data/lithium/README.md` (tensor names
    /// `params.se_e2_a.{k}.{0,1}` ..., hyper-parameters in the safetensors metadata).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DeepPotError> {
        let p = path.as_ref();
        let ps = p.display().to_string();
        let bytes = std::fs::read(p).map_err(|e| DeepPotError::Io { path: ps.clone(), why: e.to_string() })?;
        Self::from_bytes(&bytes, &ps)
    }

    /// [`DeepPot::load`] from the file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Self, DeepPotError> {
        let err = |why: String| DeepPotError::Format { path: path.into(), why };
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| err(format!("not a valid safetensors file ({e})")))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| err(format!("unreadable header ({e})")))?;
        let meta: HashMap<String, String> = meta.metadata().clone().ok_or_else(|| err("no metadata: the hyper-parameters (rcut, nsel, ...) are missing".into()))?;
        let num = |k: &str| -> Result<f64, DeepPotError> {
            let v = meta.get(k).ok_or_else(|| err(format!("metadata field `{k}` is missing")))?;
            v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0).ok_or_else(|| err(format!("metadata field `{k}` = `{v}` is not a non-negative number")))
        };
        let count = |k: &str| -> Result<usize, DeepPotError> {
            let x = num(k)?;
            (x.fract() == 0.0 && x >= 1.0).then_some(x as usize).ok_or_else(|| err(format!("metadata field `{k}` = {x} is not a positive integer")))
        };
        let t = Tensors { path, st };
        let env = |tag: &str, stats: &str| -> Result<Environment, DeepPotError> {
            let (rcut, rcut_smth, sel) = (num(&format!("metadata.{tag}.rcut"))?, num(&format!("metadata.{tag}.rcut_smth"))?, count(&format!("metadata.{tag}.nsel"))?);
            if rcut_smth >= rcut || rcut == 0.0 {
                return Err(err(format!("{tag}: rcut_smth = {rcut_smth} must lie below rcut = {rcut}")));
            }
            let mean = t.get(&format!("params.{stats}.0"), &[1, 4 * sel])?;
            let std = t.get(&format!("params.{stats}.1"), &[1, 4 * sel])?;
            if let Some(k) = std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
                return Err(err(format!("params.{stats}.1[{k}] = {} is not a positive standard deviation", std[k])));
            }
            Ok(Environment { rcut, rcut_smth, sel, mean, std })
        };
        let two = env("se_e2_a", "em2_avgstd")?;
        let three = env("se_e3", "em3_avgstd")?;
        // Padding slots of se_e3 must have zero vector parts (they then add nothing to D^3).
        if (0..three.sel).any(|k| (1..4).any(|c| three.mean[4 * k + c] != 0.0)) {
            return Err(err("params.em3_avgstd.0: se_e3 slot means of the vector columns are not zero; this implementation needs them zero (as DeePMD-kit's set_davg_zero for those columns)".into()));
        }
        // Layers `params.{prefix}.{k}.{0,1}` from input width `din0`; the fitting net's layers after
        // the first carry the resnet "timestep" scales `params.fit_idt.{k-1}`.
        let net = |prefix: &str, din0: usize| -> Result<Vec<Dense>, DeepPotError> {
            let mut layers = Vec::new();
            let mut din = din0;
            for k in 0.. {
                let wname = format!("params.{prefix}.{k}.0");
                if t.st.tensor(&wname).is_err() {
                    break;
                }
                let dims = t.dims(&wname)?;
                if dims.len() != 2 || dims[0] != din {
                    return Err(err(format!("tensor `{wname}` has shape {dims:?}, expected [{din}, width]")));
                }
                let dout = dims[1];
                let idt_name = format!("params.{prefix}_idt.{}", k.max(1) - 1);
                let idt = if k > 0 && t.st.tensor(&idt_name).is_ok() { Some(t.get(&idt_name, &[dout])?) } else { None };
                layers.push(Dense::new(din, dout, t.get(&wname, &[din, dout])?, t.get(&format!("params.{prefix}.{k}.1"), &[dout])?, idt, true));
                din = dout;
            }
            if layers.is_empty() {
                return Err(err(format!("no layers `params.{prefix}.0.0`")));
            }
            Ok(layers)
        };
        let embed2 = EmbeddingNet { layers: net("se_e2_a", 1)? };
        let embed3 = EmbeddingNet { layers: net("se_e3", 1)? };
        let axis = count("metadata.se_e2_a.axis_neuron")?;
        let m = embed2.width();
        if axis > m {
            return Err(err(format!("axis_neuron = {axis} exceeds the embedding width {m}")));
        }
        let ng = count("metadata.se_e3.ng")?;
        if ng != embed3.width() {
            return Err(err(format!("metadata.se_e3.ng = {ng} but the se_e3 net is {} wide", embed3.width())));
        }
        let fit = net("fit", m * axis + ng)?;
        let din = fit.last().map_or(m * axis + ng, |l| l.dout);
        let fit_final = Dense::new(din, 1, t.get("params.fit_final.0", &[din, 1])?, t.get("params.fit_final.1", &[1])?, None, false);
        let name = meta.get("model").cloned().unwrap_or_else(|| path.to_string());
        let mut dp = DeepPot { name, two, three, axis, embed2, embed3, fit, fit_final, t_pad: Vec::new() };
        dp.t_pad = dp.padding_table();
        Ok(dp)
    }

    fn padding_table(&self) -> Vec<f64> {
        let (s, m) = (self.two.sel, self.embed2.width());
        let pad: Vec<[f64; 4]> = (0..s).map(|k| std::array::from_fn(|c| -self.two.mean[4 * k + c] / self.two.std[4 * k + c])).collect();
        let (g, _) = self.embed2.eval(&pad.iter().map(|e| e[0]).collect::<Vec<f64>>());
        let mut table = vec![0.0; (s + 1) * 4 * m];
        for n in (0..s).rev() {
            for c in 0..4 {
                for a in 0..m {
                    table[(n * 4 + c) * m + a] = table[((n + 1) * 4 + c) * m + a] + pad[n][c] * g[n * m + a] / s as f64;
                }
            }
        }
        table
    }
}
