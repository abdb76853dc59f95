//! DeepPot-SE (Zhang, Han, Wang, Saidi, Car & E, "End-to-end symmetry preserving inter-atomic
//! potential energy model for finite and extended systems", NeurIPS 2018) with the hybrid
//! se_e2_a + se_e3 descriptor of the lithium models Li-DP-Hyb2/Hyb3 (dp0/dp4) of Zhang et al.,
//! PRL 134, 246101 (2025), evaluated exactly as the reference JAX code `src/dpjax_lithium.py`.
//!
//! For centre $i$ and every neighbour $(j, m)$ within $r_c$ (periodic image $m\circ L$),
//! $\vec r = R_i - R_j - m\circ L$, the environment row is
//! $e = (s/r,\ s x/r^2,\ s y/r^2,\ s z/r^2)$ with the switch $s(u) = 1 - 10u^3 + 15u^4 - 6u^5$,
//! $u = (r - r_s)/(r_c - r_s)$; rows are sorted nearest first, padded with zeros to `sel` and
//! normalised slot by slot, $\hat e = (e - \mu)/\sigma$ (padding included).
//! * se_e2_a: $G_k = \mathcal N_2(\hat e_{k0}) \in \mathbb R^{M}$,
//!   $T = \frac1S \hat E^\top G \in \mathbb R^{4\times M}$, $D^2_{ab} = \sum_c T_{ca}T_{cb}$, $b < M_2$.
//! * se_e3: $\theta_{jk} = \hat x_j\cdot\hat x_k$ of the vector parts,
//!   $D^3 = \frac1{S_3^2}\sum_{jk}\theta_{jk}\,\mathcal N_3(\theta_{jk})$.
//! * $\varepsilon_i = $ fitting net of $(D^2, D^3)$, $E = \sum_i\varepsilon_i$ (eV).
//!
//! Everything is one code path generic over the [`Scalar`]: `f64` gives energies, the hand-written
//! reverse pass gives $\partial E/\partial\vec r$ for every kept pair, hence the forces and the full
//! virial $W_{ab} = -\sum g_a r_b$; run on dual numbers the same reverse pass gives Hessian columns
//! (forward-over-reverse, [`DeepPot::hessian`]).

use nct::Scalar;
use num_dual::DualSVec64;
use std::collections::HashMap;
use std::path::Path;

/// A model file that cannot be used, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum DeepPotError {
    #[error("{path}: cannot read ({why})")]
    Io { path: String, why: String },
    #[error("{path}: {why}")]
    Format { path: String, why: String },
    #[error("{what} = {value}: {allowed}")]
    Input { what: &'static str, value: String, allowed: &'static str },
}

/// How a layer adds its input back (the DeePMD resnet rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    None,
    Identity,
    /// $y \mathrel{+}= (x, x)$ when $d_{out} = 2 d_{in}$.
    Concat,
}

/// $y = t\odot\tanh(xW + b) + \mathrm{skip}(x)$, weights row-major $d_{in}\times d_{out}$, with the
/// transpose kept for the reverse pass.
#[derive(Clone, Debug)]
struct Dense {
    din: usize,
    dout: usize,
    w: Vec<f64>,
    wt: Vec<f64>,
    b: Vec<f64>,
    idt: Option<Vec<f64>>,
    skip: Skip,
}

impl Dense {
    fn new(din: usize, dout: usize, w: Vec<f64>, b: Vec<f64>, idt: Option<Vec<f64>>, with_skip: bool) -> Self {
        let mut wt = vec![0.0; w.len()];
        for i in 0..din {
            for j in 0..dout {
                wt[j * din + i] = w[i * dout + j];
            }
        }
        // The reference tests d_in == d_out // 2 first, then d_in == d_out.
        let skip = if !with_skip {
            Skip::None
        } else if dout == 2 * din {
            Skip::Concat
        } else if din == dout {
            Skip::Identity
        } else {
            Skip::None
        };
        Dense { din, dout, w, wt, b, idt, skip }
    }

    /// Pre-activations $xW + b$ of `rows` inputs.
    fn affine<D: Scalar>(&self, x: &[D], rows: usize) -> Vec<D> {
        let mut out = Vec::with_capacity(rows * self.dout);
        for _ in 0..rows {
            out.extend(self.b.iter().map(|&b| D::from(b)));
        }
        matmul_acc(x, rows, self.din, &self.w, self.dout, &mut out);
        out
    }

    /// Adds the skip of `x` to `y`.
    fn add_skip<D: Scalar>(&self, x: &[D], rows: usize, y: &mut [D]) {
        add_skip_rows(self.skip, x, self.din, rows, y, self.dout);
    }

    /// Forward pass: returns $(y, a)$ with $a = \tanh(xW + b)$ kept for the reverse pass.
    fn forward<D: Scalar>(&self, x: &[D], rows: usize) -> (Vec<D>, Vec<D>) {
        let a: Vec<D> = self.affine(x, rows).into_iter().map(tanh).collect();
        let mut y = match &self.idt {
            Some(t) => a.iter().enumerate().map(|(k, &v)| v * t[k % self.dout]).collect(),
            None => a.clone(),
        };
        self.add_skip(x, rows, &mut y);
        (y, a)
    }

    /// Reverse pass: $\bar x$ from $\bar y$ and the stored activations.
    fn backward<D: Scalar>(&self, a: &[D], ybar: &[D], rows: usize) -> Vec<D> {
        let zbar: Vec<D> = (0..rows * self.dout)
            .map(|k| {
                let t = self.idt.as_ref().map_or(1.0, |t| t[k % self.dout]);
                ybar[k] * (D::one() - a[k] * a[k]) * t
            })
            .collect();
        let mut xbar = vec![D::zero(); rows * self.din];
        matmul_acc(&zbar, rows, self.dout, &self.wt, self.din, &mut xbar);
        // The transpose of the skip: x-bar gets y-bar, or both halves of y-bar.
        match self.skip {
            Skip::None => {}
            Skip::Identity => xbar.iter_mut().zip(ybar).for_each(|(a, &b)| *a += b),
            Skip::Concat => {
                let (din, dout) = (self.din, self.dout);
                for r in 0..rows {
                    let yr = &ybar[r * dout..(r + 1) * dout];
                    xbar[r * din..(r + 1) * din].iter_mut().zip(yr[..din].iter().zip(&yr[din..])).for_each(|(a, (&u, &v))| *a += u + v);
                }
            }
        }
        xbar
    }
}

/// $\tanh$ that stays finite on dual numbers far in the tails (num-dual's tanh overflows there):
/// beyond $|z| = 20$, $\operatorname{sign}(z)(1 - u)/(1 + u)$ with $u = e^{-2|z|}$. For `f64` both
/// branches round to the same value there.
fn tanh<D: Scalar>(z: D) -> D {
    let r = z.re();
    if r.abs() < 20.0 {
        z.tanh()
    } else if r > 0.0 {
        let u = (z * -2.0).exp();
        (-u + 1.0) / (u + 1.0)
    } else {
        let u = (z * 2.0).exp();
        (u - 1.0) / (u + 1.0)
    }
}

/// `out += x · w` for `rows` rows (`x`: rows × din, `w`: din × dout, both row-major). Rows go in
/// blocks of 32 with the weight row outside, so a large `w` (the 1296 × 240 fitting layer) is read
/// once per block; the inner loop is an axpy over a contiguous row of `w`, which vectorises for `f64`.
fn matmul_acc<D: Scalar>(x: &[D], rows: usize, din: usize, w: &[f64], dout: usize, out: &mut [D]) {
    if std::any::TypeId::of::<D>() == std::any::TypeId::of::<f64>() {
        // SAFETY: D is f64 (same type, so same layout); the slices are reinterpreted unchanged.
        let (x, out) = unsafe { (std::slice::from_raw_parts(x.as_ptr() as *const f64, x.len()), std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut f64, out.len())) };
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above).
            unsafe { matmul_f64_avx2(x, rows, din, w, dout, out) };
            return;
        }
        matmul_blocks(x, rows, din, w, dout, out);
        return;
    }
    matmul_blocks(x, rows, din, w, dout, out);
}

/// [`matmul_blocks`] for `f64` compiled with AVX2 (wider vectors; no fused multiply-add, so the
/// result is bitwise that of the generic loop).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn matmul_f64_avx2(x: &[f64], rows: usize, din: usize, w: &[f64], dout: usize, out: &mut [f64]) {
    matmul_blocks(x, rows, din, w, dout, out)
}

#[inline(always)]
fn matmul_blocks<D: Scalar>(x: &[D], rows: usize, din: usize, w: &[f64], dout: usize, out: &mut [D]) {
    const BLOCK: usize = 32;
    for r0 in (0..rows).step_by(BLOCK) {
        let r1 = (r0 + BLOCK).min(rows);
        for k in 0..din {
            let wk = &w[k * dout..(k + 1) * dout];
            for r in r0..r1 {
                let xk = x[r * din + k];
                for (oj, &wj) in out[r * dout..(r + 1) * dout].iter_mut().zip(wk) {
                    *oj += xk * wj;
                }
            }
        }
    }
}

/// `y += skip(x)` row by row: nothing, `x`, or `(x, x)`.
fn add_skip_rows<D: Scalar>(skip: Skip, x: &[D], din: usize, rows: usize, y: &mut [D], dout: usize) {
    match skip {
        Skip::None => {}
        Skip::Identity => y.iter_mut().zip(x).for_each(|(a, &b)| *a += b),
        Skip::Concat => {
            for r in 0..rows {
                let xr = &x[r * din..(r + 1) * din];
                let (lo, hi) = y[r * dout..(r + 1) * dout].split_at_mut(din);
                lo.iter_mut().zip(xr).for_each(|(a, &b)| *a += b);
                hi.iter_mut().zip(xr).for_each(|(a, &b)| *a += b);
            }
        }
    }
}

/// A net of one scalar input, evaluated with its derivative with respect to that input (a
/// forward tangent: the embedding nets need $\mathcal N(x)$ and $\mathcal N'(x)$).
#[derive(Clone, Debug)]
struct EmbeddingNet {
    layers: Vec<Dense>,
}

impl EmbeddingNet {
    fn width(&self) -> usize {
        self.layers.last().map_or(1, |l| l.dout)
    }
    /// $\mathcal N(x)$ for every input (rows × width).
    fn value<D: Scalar>(&self, x: &[D]) -> Vec<D> {
        let rows = x.len();
        let mut h = x.to_vec();
        for l in &self.layers {
            h = l.forward(&h, rows).0;
        }
        h
    }
    /// $(\mathcal N(x), \mathcal N'(x))$ for every input, rows × width each.
    fn eval<D: Scalar>(&self, x: &[D]) -> (Vec<D>, Vec<D>) {
        let rows = x.len();
        let mut h = x.to_vec();
        let mut dh = vec![D::one(); rows];
        for l in &self.layers {
            let a: Vec<D> = l.affine(&h, rows).into_iter().map(tanh).collect();
            let mut dz = vec![D::zero(); rows * l.dout];
            matmul_acc(&dh, rows, l.din, &l.w, l.dout, &mut dz);
            let mut y = a.clone();
            let mut dy: Vec<D> = dz.iter().zip(&a).map(|(&d, &v)| d * (D::one() - v * v)).collect();
            l.add_skip(&h, rows, &mut y);
            l.add_skip(&dh, rows, &mut dy);
            h = y;
            dh = dy;
        }
        (h, dh)
    }
}

/// A descriptor's neighbour rules: cutoffs, slots and the slot statistics.
#[derive(Clone, Debug)]
struct Environment {
    rcut: f64,
    rcut_smth: f64,
    sel: usize,
    /// Per slot and column: mean and standard deviation (sel × 4).
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Environment {
    /// Switch $s(r)$ and $ds/dr$.
    fn switch<D: Scalar>(&self, r: D) -> (D, D) {
        if r.re() < self.rcut_smth {
            return (D::one(), D::zero());
        }
        let w = self.rcut - self.rcut_smth;
        let u = (r - self.rcut_smth) / w;
        let u2 = u * u;
        let s = u2 * u * (u * (u * -6.0 + 15.0) - 10.0) + 1.0;
        let one_m = -u + 1.0;
        let ds = u2 * one_m * one_m * (-30.0 / w);
        (s, ds)
    }
    /// Normalised row $\hat e_k$ of slot `k` from the pair.
    fn row<D: Scalar>(&self, k: usize, p: &Pair<D>) -> [D; 4] {
        let inv2 = (p.r * p.r).recip();
        let e = [p.s / p.r, p.s * p.v[0] * inv2, p.s * p.v[1] * inv2, p.s * p.v[2] * inv2];
        std::array::from_fn(|c| (e[c] - self.mean[4 * k + c]) / self.std[4 * k + c])
    }
}

/// One kept neighbour pair: the vector $\vec r = R_i - R_j - m\circ L$, its length, the switch and
/// its derivative.
#[derive(Clone, Copy, Debug)]
struct Pair<D> {
    j: usize,
    v: [D; 3],
    r: D,
    s: D,
    ds: D,
}

impl<D: Scalar> Pair<D> {
    /// $\partial E/\partial\vec r$ from the cotangent $\bar e$ of the (unnormalised) row $e$:
    /// $\hat r[\bar e_0(s'/r - s/r^2) + (\bar e_v\cdot\vec r)(s'/r^2 - 2s/r^3)] + \bar e_v\,s/r^2$.
    fn pull_back(&self, ebar: [D; 4]) -> [D; 3] {
        let (r, s, ds) = (self.r, self.s, self.ds);
        let ir = r.recip();
        let ir2 = ir * ir;
        let ev_dot = ebar[1] * self.v[0] + ebar[2] * self.v[1] + ebar[3] * self.v[2];
        let radial = (ebar[0] * (ds * ir - s * ir2) + ev_dot * (ds * ir2 - s * ir2 * ir * 2.0)) * ir;
        std::array::from_fn(|b| self.v[b] * radial + ebar[b + 1] * s * ir2)
    }
}

/// The image triples $m$ of a box, fixed at construction as in the reference: for each
/// descriptor $n_k = \lceil (r_c + 10^{-5})/L^0_k\rceil$ and $m \in [-n, n]^3$, sorted by $|m|$.
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodicImages {
    triples: Vec<[i32; 3]>,
    /// Whether each triple belongs to the two-body and the three-body descriptor's set.
    in_two: Vec<bool>,
    in_three: Vec<bool>,
}

impl PeriodicImages {
    pub fn len(&self) -> usize {
        self.triples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.triples.is_empty()
    }
    /// The triples of the two-body descriptor's set (the reference's order).
    pub fn two_body(&self) -> Vec<[i32; 3]> {
        self.triples.iter().zip(&self.in_two).filter(|(_, k)| **k).map(|(t, _)| *t).collect()
    }
}

fn image_counts(rcut: f64, lengths: [f64; 3]) -> [i32; 3] {
    std::array::from_fn(|k| ((rcut + 1e-5) / lengths[k]).ceil() as i32)
}

/// Energy (eV), forces $-\partial E/\partial R$ (eV/Å) and the full virial
/// $W_{ab} = -\partial E/\partial\varepsilon_{ab}$ (eV).
#[derive(Clone, Debug)]
pub struct EnergyForcesVirial<D> {
    pub energy: D,
    pub atomic: Vec<D>,
    pub forces: Vec<[D; 3]>,
    pub virial: [[D; 3]; 3],
}

/// The DeepPot-SE model: weights and hyper-parameters.
#[derive(Clone, Debug)]
pub struct DeepPot {
    pub name: String,
    two: Environment,
    three: Environment,
    axis: usize,
    embed2: EmbeddingNet,
    embed3: EmbeddingNet,
    fit: Vec<Dense>,
    fit_final: Dense,
    /// Padding contribution to $T$ for `n` occupied slots: $\frac1S\sum_{k\ge n}\hat e^{pad}_{kc}\,G^{pad}_{ka}$,
    /// `(sel + 1) × 4 × M`.
    t_pad: Vec<f64>,
}

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

    /// Two-body cutoff (Å).
    pub fn rcut(&self) -> f64 {
        self.two.rcut.max(self.three.rcut)
    }

    /// The image set of a box of lengths `lengths` (fixed for later evaluations, as in the
    /// reference, where images are chosen at model construction).
    pub fn images(&self, lengths: [f64; 3]) -> Result<PeriodicImages, DeepPotError> {
        if lengths.iter().any(|l| !(l.is_finite() && *l > 0.0)) {
            return Err(DeepPotError::Input { what: "box lengths", value: format!("{lengths:?}"), allowed: "finite and positive (Å)" });
        }
        let (n2, n3) = (image_counts(self.two.rcut, lengths), image_counts(self.three.rcut, lengths));
        let n: [i32; 3] = std::array::from_fn(|k| n2[k].max(n3[k]));
        let count: i64 = n.iter().map(|&v| 2 * v as i64 + 1).product();
        if count > 100_000 {
            return Err(DeepPotError::Input { what: "box lengths", value: format!("{lengths:?}"), allowed: "a box whose image set is below 100000 triples (the cutoff is far larger than the box)" });
        }
        let mut triples = Vec::new();
        for x in -n[0]..=n[0] {
            for y in -n[1]..=n[1] {
                for z in -n[2]..=n[2] {
                    triples.push([x, y, z]);
                }
            }
        }
        let norm = |m: &[i32; 3]| m.iter().map(|&v| (v * v) as i64).sum::<i64>();
        triples.sort_by_key(norm);
        let within = |m: &[i32; 3], c: [i32; 3]| (0..3).all(|k| m[k].abs() <= c[k]);
        let in_two = triples.iter().map(|m| within(m, n2)).collect();
        let in_three = triples.iter().map(|m| within(m, n3)).collect();
        Ok(PeriodicImages { triples, in_two, in_three })
    }

    /// Neighbour pairs of every centre for both descriptors, nearest first, at most `sel` each.
    #[allow(clippy::type_complexity)]
    fn pairs<D: Scalar>(&self, images: &PeriodicImages, pos: &[[D; 3]], lengths: [D; 3]) -> (Vec<Vec<Pair<D>>>, Vec<Vec<Pair<D>>>) {
        let n = pos.len();
        let lre: [f64; 3] = std::array::from_fn(|k| lengths[k].re());
        // Wrap into the box; the derivative of the wrap is 1 (and -floor with respect to L).
        let w: Vec<[D; 3]> = pos.iter().map(|r| std::array::from_fn(|k| r[k] - lengths[k] * (r[k].re() / lre[k]).floor())).collect();
        let wre: Vec<[f64; 3]> = w.iter().map(|r| std::array::from_fn(|k| r[k].re())).collect();
        let offs: Vec<[f64; 3]> = images.triples.iter().map(|m| std::array::from_fn(|k| m[k] as f64 * lre[k])).collect();
        let cut = self.two.rcut.max(self.three.rcut);
        let mut two = Vec::with_capacity(n);
        let mut three = Vec::with_capacity(n);
        for i in 0..n {
            // (distance, image, j) of every candidate within the larger cutoff.
            let mut cand: Vec<(f64, usize, usize)> = Vec::new();
            for (im, off) in offs.iter().enumerate() {
                for j in 0..n {
                    if j == i && im == 0 {
                        continue;
                    }
                    let d2: f64 = (0..3).map(|k| (wre[i][k] - wre[j][k] - off[k]).powi(2)).sum();
                    if d2 < cut * cut {
                        cand.push((d2.sqrt(), im, j));
                    }
                }
            }
            cand.sort_by(|a, b| a.0.total_cmp(&b.0));
            let make = |env: &Environment, &(_, im, j): &(f64, usize, usize)| {
                let m = images.triples[im];
                let v: [D; 3] = std::array::from_fn(|k| w[i][k] - w[j][k] - lengths[k] * m[k] as f64);
                let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                let (s, ds) = env.switch(r);
                Pair { j, v, r, s, ds }
            };
            two.push(cand.iter().filter(|c| c.0 < self.two.rcut && images.in_two[c.1]).take(self.two.sel).map(|c| make(&self.two, c)).collect());
            three.push(cand.iter().filter(|c| c.0 < self.three.rcut && images.in_three[c.1]).take(self.three.sel).map(|c| make(&self.three, c)).collect());
        }
        (two, three)
    }

    /// Energy in eV.
    pub fn energy<D: Scalar>(&self, images: &PeriodicImages, pos: &[[D; 3]], lengths: [D; 3]) -> D {
        self.evaluate(images, pos, lengths, false).energy
    }

    /// Energy, atomic energies, forces and the full virial, all in eV (and Å).
    pub fn energy_forces_virial<D: Scalar>(&self, images: &PeriodicImages, pos: &[[D; 3]], lengths: [D; 3]) -> EnergyForcesVirial<D> {
        self.evaluate(images, pos, lengths, true)
    }

    fn evaluate<D: Scalar>(&self, images: &PeriodicImages, pos: &[[D; 3]], lengths: [D; 3], reverse: bool) -> EnergyForcesVirial<D> {
        let n = pos.len();
        let (m, m2, s) = (self.embed2.width(), self.axis, self.two.sel);
        let ng = self.embed3.width();
        let s3 = self.three.sel;
        let (two, three) = self.pairs(images, pos, lengths);

        // se_e2_a: rows and embeddings of all kept pairs at once.
        let rows: Vec<Vec<[D; 4]>> = two.iter().map(|ps| ps.iter().enumerate().map(|(k, p)| self.two.row(k, p)).collect()).collect();
        let first: Vec<D> = rows.iter().flatten().map(|e| e[0]).collect();
        let (g, dg) = if reverse { self.embed2.eval(&first) } else { (self.embed2.value(&first), Vec::new()) };
        let mut start = Vec::with_capacity(n);
        let mut acc = 0;
        for r in &rows {
            start.push(acc);
            acc += r.len();
        }
        let mut t_all: Vec<Vec<D>> = Vec::with_capacity(n);
        let mut x0 = vec![D::zero(); n * (m * m2 + ng)];
        let width = m * m2 + ng;
        for i in 0..n {
            let occ = rows[i].len();
            let mut t: Vec<D> = self.t_pad[occ * 4 * m..(occ + 1) * 4 * m].iter().map(|&v| D::from(v)).collect();
            for (k, e) in rows[i].iter().enumerate() {
                let gk = &g[(start[i] + k) * m..(start[i] + k + 1) * m];
                for c in 0..4 {
                    let ec = e[c] / s as f64;
                    for a in 0..m {
                        t[c * m + a] += ec * gk[a];
                    }
                }
            }
            for a in 0..m {
                for b in 0..m2 {
                    x0[i * width + a * m2 + b] = (0..4).fold(D::zero(), |acc, c| acc + t[c * m + a] * t[c * m + b]);
                }
            }
            t_all.push(t);
        }

        // se_e3: the vector parts of the kept rows and the angle embeddings of all slot pairs j <= k.
        let xhat: Vec<Vec<[D; 3]>> = three.iter().map(|ps| ps.iter().enumerate().map(|(k, p)| {
            let e = self.three.row(k, p);
            [e[1], e[2], e[3]]
        }).collect()).collect();
        let mut theta = Vec::new();
        for x in &xhat {
            for j in 0..x.len() {
                for k in j..x.len() {
                    theta.push(x[j][0] * x[k][0] + x[j][1] * x[k][1] + x[j][2] * x[k][2]);
                }
            }
        }
        let (h3, dh3) = if reverse { self.embed3.eval(&theta) } else { (self.embed3.value(&theta), Vec::new()) };
        let norm3 = 1.0 / (s3 * s3) as f64;
        let mut q = 0;
        for (i, x) in xhat.iter().enumerate() {
            for j in 0..x.len() {
                for k in j..x.len() {
                    let mult = if j == k { norm3 } else { 2.0 * norm3 };
                    for mm in 0..ng {
                        x0[i * width + m * m2 + mm] += theta[q] * h3[q * ng + mm] * mult;
                    }
                    q += 1;
                }
            }
        }

        // Fitting net over all atoms.
        let mut h = x0;
        let mut acts = Vec::with_capacity(self.fit.len());
        for l in &self.fit {
            let (y, a) = l.forward(&h, n);
            acts.push((h, a));
            h = y;
        }
        let atomic = self.fit_final.affine(&h, n);
        let energy = atomic.iter().fold(D::zero(), |a, &e| a + e);
        let mut out = EnergyForcesVirial { energy, atomic, forces: vec![[D::zero(); 3]; n], virial: [[D::zero(); 3]; 3] };
        if !reverse {
            return out;
        }

        // Reverse pass: d E / d x0 for every atom.
        let wf = &self.fit_final.w;
        let mut hbar: Vec<D> = (0..n * self.fit_final.din).map(|k| D::from(wf[k % self.fit_final.din])).collect();
        for (l, (x, a)) in self.fit.iter().zip(&acts).rev() {
            let _ = x;
            hbar = l.backward(a, &hbar, n);
        }
        let x0bar = hbar;

        // Accumulates one pair's d E / d r into the forces and the virial.
        let add = |i: usize, p: &Pair<D>, gvec: [D; 3], out: &mut EnergyForcesVirial<D>| {
            for a in 0..3 {
                out.forces[i][a] -= gvec[a];
                out.forces[p.j][a] += gvec[a];
                for b in 0..3 {
                    out.virial[a][b] -= gvec[a] * p.v[b];
                }
            }
        };

        // se_e3 cotangents.
        let mut q = 0;
        for (i, x) in xhat.iter().enumerate() {
            let d3bar = &x0bar[i * width + m * m2..(i + 1) * width];
            let mut xbar = vec![[D::zero(); 3]; x.len()];
            for j in 0..x.len() {
                for k in j..x.len() {
                    let mult = if j == k { norm3 } else { 2.0 * norm3 };
                    let th = theta[q];
                    let tbar = (0..ng).fold(D::zero(), |acc, mm| acc + d3bar[mm] * (h3[q * ng + mm] + th * dh3[q * ng + mm])) * mult;
                    for c in 0..3 {
                        let (xj, xk) = (x[j][c], x[k][c]);
                        xbar[j][c] += tbar * xk;
                        xbar[k][c] += tbar * xj;
                    }
                    q += 1;
                }
            }
            for (k, p) in three[i].iter().enumerate() {
                let eb = [D::zero(), xbar[k][0] / self.three.std[4 * k + 1], xbar[k][1] / self.three.std[4 * k + 2], xbar[k][2] / self.three.std[4 * k + 3]];
                add(i, p, p.pull_back(eb), &mut out);
            }
        }

        // se_e2_a cotangents: T-bar, then every kept row.
        for i in 0..n {
            let d2bar = &x0bar[i * width..i * width + m * m2];
            let t = &t_all[i];
            let mut tbar = vec![D::zero(); 4 * m];
            for c in 0..4 {
                for a in 0..m {
                    let mut acc = D::zero();
                    for b in 0..m2 {
                        acc += d2bar[a * m2 + b] * t[c * m + b];
                    }
                    if a < m2 {
                        for a2 in 0..m {
                            acc += d2bar[a2 * m2 + a] * t[c * m + a2];
                        }
                    }
                    tbar[c * m + a] = acc;
                }
            }
            for (k, p) in two[i].iter().enumerate() {
                let e = rows[i][k];
                let gk = &g[(start[i] + k) * m..(start[i] + k + 1) * m];
                let dgk = &dg[(start[i] + k) * m..(start[i] + k + 1) * m];
                let mut ehat_bar = [D::zero(); 4];
                let mut first_bar = D::zero();
                for a in 0..m {
                    let mut gbar = D::zero();
                    for c in 0..4 {
                        ehat_bar[c] += tbar[c * m + a] * gk[a];
                        gbar += tbar[c * m + a] * e[c];
                    }
                    first_bar += gbar * dgk[a];
                }
                ehat_bar[0] += first_bar;
                let eb: [D; 4] = std::array::from_fn(|c| ehat_bar[c] / (s as f64 * self.two.std[4 * k + c]));
                add(i, p, p.pull_back(eb), &mut out);
            }
        }
        out
    }

    /// Energy (eV), gradient $\partial E/\partial R$ (eV/Å, flat index $3i + a$) and the Hessian
    /// $\partial^2 E/\partial R\,\partial R$ (eV/Å², $3N\times3N$, on the heap) at `pos`:
    /// forward-over-reverse, the reverse pass run on dual numbers seeded with 8 directions at a
    /// time. Symmetric to rounding; symmetrised here.
    pub fn hessian(&self, images: &PeriodicImages, pos: &[[f64; 3]], lengths: [f64; 3]) -> (f64, Vec<f64>, nalgebra::DMatrix<f64>) {
        const B: usize = 8;
        let dim = 3 * pos.len();
        let mut h = nalgebra::DMatrix::zeros(dim, dim);
        let base = self.energy_forces_virial(images, pos, lengths);
        let grad: Vec<f64> = base.forces.iter().flat_map(|f| f.iter().map(|v| -v)).collect();
        let lens: [DualSVec64<B>; 3] = std::array::from_fn(|k| DualSVec64::<B>::from_re(lengths[k]));
        for start in (0..dim).step_by(B) {
            let seeded: Vec<[DualSVec64<B>; 3]> = pos
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    std::array::from_fn(|a| {
                        let d = DualSVec64::<B>::from_re(r[a]);
                        let k = 3 * i + a;
                        if k >= start && k < start + B { d.derivative(k - start) } else { d }
                    })
                })
                .collect();
            let out = self.energy_forces_virial(images, &seeded, lens);
            for (i, f) in out.forces.iter().enumerate() {
                for a in 0..3 {
                    let eps = f[a].eps.unwrap_generic(nalgebra::Const::<B>, nalgebra::U1);
                    for c in 0..B.min(dim - start) {
                        h[(3 * i + a, start + c)] = -eps[c];
                    }
                }
            }
        }
        let sym = (&h + h.transpose()) * 0.5;
        (base.energy, grad, sym)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_dual::Dual64;

    fn model() -> DeepPot {
        DeepPot::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/lithium/dp4.safetensors")).unwrap()
    }

    /// A compressed random cell (both descriptors active, images beyond the nearest).
    fn config() -> (Vec<[f64; 3]>, [f64; 3]) {
        let l = [5.1, 4.9, 5.3];
        let pos = (0..12).map(|i| std::array::from_fn(|a| ((i * 7 + a * 3) % 12) as f64 / 12.0 * l[a] + 0.21 * ((i * 5 + a) as f64).sin())).collect();
        (pos, l)
    }

    #[test]
    fn reverse_pass_forces_equal_forward_mode_derivatives() {
        let dp = model();
        let (pos, l) = config();
        let images = dp.images(l).unwrap();
        let out = dp.energy_forces_virial(&images, &pos, l);
        for (i, a) in [(0, 0), (3, 1), (7, 2), (11, 0)] {
            let seeded: Vec<[Dual64; 3]> = pos.iter().enumerate().map(|(j, r)| std::array::from_fn(|b| Dual64::new(r[b], if (j, b) == (i, a) { 1.0 } else { 0.0 }))).collect();
            let e = dp.energy(&images, &seeded, l.map(Dual64::from_re));
            assert!((e.re - out.energy).abs() < 1e-12 * out.energy.abs(), "{} vs {}", e.re, out.energy);
            assert!((-e.eps - out.forces[i][a]).abs() < 1e-11, "F[{i}][{a}] = {} vs {}", out.forces[i][a], -e.eps);
        }
        // The diagonal virial is minus the derivative under a uniaxial strain of positions and box.
        for a in 0..3 {
            let s = |r: f64, k: usize| if k == a { Dual64::new(r, r) } else { Dual64::from_re(r) };
            let seeded: Vec<[Dual64; 3]> = pos.iter().map(|r| std::array::from_fn(|k| s(r[k], k))).collect();
            let e = dp.energy(&images, &seeded, std::array::from_fn(|k| s(l[k], k)));
            assert!((-e.eps - out.virial[a][a]).abs() < 1e-10, "W[{a}][{a}] = {} vs {}", out.virial[a][a], -e.eps);
        }
        // Momentum conservation and a symmetric virial.
        for a in 0..3 {
            assert!(out.forces.iter().map(|f| f[a]).sum::<f64>().abs() < 1e-12);
            for b in 0..3 {
                assert!((out.virial[a][b] - out.virial[b][a]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn switch_and_layer_rules() {
        let dp = model();
        let env = &dp.two;
        for r in [0.5, 2.0, 4.5, 5.99] {
            let (s, ds) = env.switch(Dual64::new(r, 1.0));
            let (_, d): (f64, f64) = env.switch(r);
            assert!((s.eps - d).abs() < 1e-14 && (ds.re - d).abs() < 1e-14);
        }
        // s = 1 at 0, 0 at the cutoff with zero slope.
        let (s0, _) = env.switch(1e-12f64);
        let (sc, dc): (f64, f64) = env.switch(env.rcut - 1e-12);
        assert!((s0 - 1.0).abs() < 1e-12 && sc.abs() < 1e-12 && dc.abs() < 1e-10);
        let skips: Vec<Skip> = dp.embed2.layers.iter().map(|l| l.skip).collect();
        assert_eq!(skips, [Skip::None, Skip::Concat, Skip::Concat]);
        let fit: Vec<Skip> = dp.fit.iter().map(|l| l.skip).collect();
        assert_eq!(fit, [Skip::None, Skip::Identity, Skip::Identity]);
        assert!(dp.fit[0].idt.is_none() && dp.fit[1].idt.is_some() && dp.fit[2].idt.is_some());
        assert_eq!(dp.fit_final.skip, Skip::None);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let e = DeepPot::from_bytes(b"not a model", "x.safetensors").unwrap_err().to_string();
        assert!(e.contains("x.safetensors") && e.contains("safetensors"), "{e}");
        let e = DeepPot::load("/nonexistent/dp.safetensors").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/dp.safetensors"), "{e}");
        let e = model().images([0.0, 1.0, 1.0]).unwrap_err().to_string();
        assert!(e.contains("box lengths"), "{e}");
    }
}
