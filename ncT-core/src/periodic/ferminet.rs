//! A permutation- and translation-equivariant flow of $N$ electrons in an orthorhombic cell in the
//! FermiNet style of CoulombGas (Xie, Zhang & Wang, SciPost Phys. 14, 154 (2023); Pfau et al.,
//! PRR 2, 033429 (2020)), made an exact bijection by a Lipschitz bound:
//! $$ z_i = x_i + s(\theta)\,W_{out}h_i^{(L)}, \qquad s = \frac{0.9}{1 + B(\theta)}, $$
//! with $B(\theta)$ a bound on the Lipschitz constant of $u = W_{out}h^{(L)}$, so $\|\partial(z - x)/
//! \partial x\| < 0.9$ for every parameter value: $z - x$ is a contraction, the map is a bijection
//! with $\det\partial z/\partial x > 0$, its inverse a fixed-point iteration polished by Newton
//! (exact samples: $z$ from the plane-wave DPP, $x = f^{-1}(z)$).
//!
//! * Two-body stream, per ordered pair $i \ne j$: the periodic features of $r = x_i - x_j$,
//!   $f_{ij} = (\cos(2\pi r_a/L_a), \sin(2\pi r_a/L_a), \|\sin(\pi r/L)\|)$, then
//!   $h^{(l+1)}_{ij} = \tanh(V_l h^{(l)}_{ij} + c_l)\ [+\,h^{(l)}_{ij}]$.
//! * One-body stream, translation invariant: $h^{(0)}_i = \frac1{N-1}\sum_{j\ne i}f_{ij}$, then
//!   $h^{(l+1)}_i = \tanh(W_l[h^{(l)}_i, \bar h^{(l)}, \frac1{N-1}\sum_{j\ne i}h^{(l+1)}_{ij}] + b_l)\ [+\,h^{(l)}_i]$
//!   ($\bar h$ the mean over electrons; residual where the widths agree).
//! * The bound (as in invertible residual networks, Behrmann et al., ICML 2019): with $\|\cdot\|$
//!   the spectral norms of the weight blocks, $\|\partial r/\partial x\|
//!   \le\sqrt{2N}$, $\|\partial f/\partial r\|\le\sqrt5\,\pi/L_{min}$, $|\tanh'| \le 1$ and means over
//!   $N - 1$ partners contracting by $1/\sqrt{N-1}$, the streams' Lipschitz constants obey
//!   $\Lambda_2^{(l+1)} = (\|V_l\| [+1])\Lambda_2^{(l)}$,
//!   $\Lambda_1^{(l+1)} = (\|W_l^{h}\| + \|W_l^{\bar h}\| [+1])\Lambda_1^{(l)} + \|W_l^{q}\|\Lambda_2^{(l+1)}/\sqrt{N-1}$,
//!   $B = \|W_{out}\|\Lambda_1^{(L)}$.
//!
//! The Jacobian $\partial u/\partial x$ is carried through the network by forward tangents written
//! in the scalar type (pair tangents in $r_{ij}$ only, $d$ of them; one-body tangents in all $Nd$
//! coordinates), so dual numbers give its derivatives and $\ln\det$ of $A = I + s\,\partial u/
//! \partial x$ (LU) is exact; the VJP runs back through values and tangents together.
//! Initialisation: Xavier-normal hidden weights, $W_{out} = 0$ (the identity), or small with
//! [`FermiNetBackflow::with_output_scale`].

use crate::dim::{Dyn, Vector};
use crate::error::ConfigError;
use crate::fermion::gradient_map::{ResidualField, general_inverse, residual_forward, residual_inverse};
use crate::gemm::{MatRef, gemm};
use crate::jet::lanes;
use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;
use num_dual::Dual64;
use rand_distr::{Distribution, StandardNormal};
use std::f64::consts::PI;
use std::sync::{Arc, RwLock};

/// Lipschitz budget of $z - x$.
const BOUND: f64 = 0.9;
/// Floor inside the Frobenius norms, $\sqrt{\epsilon^2 + \|W\|^2}$ (smooth at $W = 0$; a larger
/// bound is still a bound).
const NORM_FLOOR: f64 = 1e-6;

/// One affine block of the parameter vector: `rows x cols` weights (row-major) at `w`, then
/// `rows` biases unless `bias` is false.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Block {
    w: usize,
    rows: usize,
    cols: usize,
    bias: bool,
}

impl Block {
    fn len(&self) -> usize {
        self.rows * self.cols + if self.bias { self.rows } else { 0 }
    }
    fn b(&self) -> usize {
        self.w + self.rows * self.cols
    }
}

/// The last parameters seen and their $(s, \partial s/\partial\theta)$ (an SVD per weight block).
type ScaleMemo = RwLock<Option<(Vec<f64>, f64, Arc<Vec<f64>>)>>;

/// The FermiNet-style flow (see the module docs).
#[derive(Debug)]
pub struct FermiNetBackflow {
    pub particles: usize,
    pub lengths: Vec<f64>,
    pub depth: usize,
    pub one_body: usize,
    pub two_body: usize,
    /// Standard deviation of the initial output weights (0: exactly the identity).
    pub output_scale: f64,
    /// Initial parameters instead of the random ones (ignored unless of the right length).
    pub init: Option<Vec<f64>>,
    pairs: Vec<Block>,
    ones: Vec<Block>,
    out: Block,
    memo: ScaleMemo,
}

impl Clone for FermiNetBackflow {
    /// A copy with its own (empty) memo of the scale, so that stacked copies keep theirs.
    fn clone(&self) -> Self {
        let FermiNetBackflow { particles, lengths, depth, one_body, two_body, output_scale, init, pairs, ones, out, memo: _ } = self;
        FermiNetBackflow { particles: *particles, lengths: lengths.clone(), depth: *depth, one_body: *one_body, two_body: *two_body, output_scale: *output_scale, init: init.clone(), pairs: pairs.clone(), ones: ones.clone(), out: *out, memo: RwLock::new(None) }
    }
}

/// Values and tangents of one forward pass, kept for the VJP.
struct Trace<D> {
    /// Two-body stream: input (value, tangent) of each layer and its output; `h2[depth]` the last.
    /// Level 0 is the pair features and their $r$-derivatives.
    h2: Vec<Vec<Vec<D>>>,
    th2: Vec<Vec<Vec<D>>>,
    /// $\tanh$ outputs and pre-activation tangents of each two-body layer.
    t2: Vec<Vec<Vec<D>>>,
    ta2: Vec<Vec<Vec<D>>>,
    /// One-body stream, likewise (tangents in all $Nd$ coordinates), and each layer's input $g_i$.
    h1: Vec<Vec<Vec<D>>>,
    th1: Vec<Vec<Vec<D>>>,
    g1: Vec<Vec<Vec<D>>>,
    tg1: Vec<Vec<Vec<D>>>,
    t1: Vec<Vec<Vec<D>>>,
    ta1: Vec<Vec<Vec<D>>>,
    /// $u_i$ (flattened $Nd$) and $U = \partial u/\partial x$ (row-major).
    u: Vec<D>,
    du: Vec<D>,
}

/// $t = \tanh(W g + b)$, the pre-activation tangents $W\,\partial g$ (`nt` tangents per input)
/// and the output tangents $(1 - t^2)\,W\partial g$.
fn tanh_forward<D: Scalar>(theta: &[f64], blk: &Block, g: &[D], tg: &[D], nt: usize) -> (Vec<D>, Vec<D>, Vec<D>) {
    if let Some(l) = lanes::count::<D>() {
        if blk.rows * blk.cols * (1 + nt) * l >= GEMM_MIN {
            return tanh_forward_gemm(theta, blk, g, tg, nt, l);
        }
    }
    tanh_forward_loop(theta, blk, g, tg, nt)
}

/// [`tanh_forward`] for any scalar, element by element (the reference of the GEMM path).
fn tanh_forward_loop<D: Scalar>(theta: &[f64], blk: &Block, g: &[D], tg: &[D], nt: usize) -> (Vec<D>, Vec<D>, Vec<D>) {
    let w = &theta[blk.w..blk.w + blk.rows * blk.cols];
    let mut t = vec![D::zero(); blk.rows];
    let mut ta = vec![D::zero(); blk.rows * nt];
    for r in 0..blk.rows {
        let mut a = D::from(if blk.bias { theta[blk.b() + r] } else { 0.0 });
        for c in 0..blk.cols {
            let wc = w[r * blk.cols + c];
            if wc == 0.0 {
                continue;
            }
            a += g[c] * wc;
            for k in 0..nt {
                ta[r * nt + k] += tg[c * nt + k] * wc;
            }
        }
        t[r] = lanes::tanh(a);
    }
    let th = (0..ta.len()).map(|k| ta[k] * (D::one() - t[k / nt] * t[k / nt])).collect();
    (t, ta, th)
}

/// Multiply-adds from which [`tanh_forward`] runs as one GEMM over the scalars' lanes.
const GEMM_MIN: usize = 2048;

/// [`tanh_forward`] for scalars with a lane view ([`lanes`]): the value and the `nt` tangents of
/// every input are the `(1 + nt) l` lanes of a row, so $W$ times all of them is one f64 GEMM
/// $C = X W^\top$ ($X$: lanes x inputs, $W^\top$ the row-major weights read column-major); the
/// products with $1 - t^2$ are taken on the lanes too.
fn tanh_forward_gemm<D: Scalar>(theta: &[f64], blk: &Block, g: &[D], tg: &[D], nt: usize, l: usize) -> (Vec<D>, Vec<D>, Vec<D>) {
    thread_local! {
        // The lane matrices, kept per thread: fresh ones of this size would be fresh pages.
        static LANES: std::cell::RefCell<(Vec<f64>, Vec<f64>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    let (rows, cols) = (blk.rows, blk.cols);
    let m = (1 + nt) * l;
    let mut t = vec![D::zero(); rows];
    let mut ta = vec![D::zero(); rows * nt];
    let mut th = vec![D::zero(); rows * nt];
    LANES.with_borrow_mut(|(x, y)| {
        x.resize(m * cols, 0.0);
        y.resize(m * rows, 0.0);
        for c in 0..cols {
            let col = &mut x[c * m..(c + 1) * m];
            lanes::pack(&g[c..c + 1], &mut col[..l]);
            lanes::pack(&tg[c * nt..(c + 1) * nt], &mut col[l..]);
        }
        gemm(&mut y[..m * rows], m, 1.0, MatRef::col_major(&x[..m * cols], m, cols), MatRef::col_major(&theta[blk.w..blk.w + rows * cols], cols, rows), 0.0);
        let (mut tl, mut slope, mut prod) = (vec![0.0; l], vec![0.0; l], vec![0.0; nt * l]);
        for r in 0..rows {
            let out = &mut y[r * m..(r + 1) * m];
            if blk.bias {
                out[0] += theta[blk.b() + r];
            }
            lanes::tanh_and_slope(&out[..l], &mut tl, &mut slope);
            lanes::unpack(&tl, &mut t[r..r + 1]);
            lanes::unpack(&out[l..], &mut ta[r * nt..(r + 1) * nt]);
            for (a, o) in out[l..].chunks_exact(l).zip(prod.chunks_exact_mut(l)) {
                lanes::mul(a, &slope, o);
            }
            lanes::unpack(&prod, &mut th[r * nt..(r + 1) * nt]);
        }
    });
    (t, ta, th)
}

/// One stream layer: $t = \tanh(W g + b)$, $h = t\ [+\,r]$ and $\partial h = (1 - t^2)\,W\partial g\ [+\,\partial r]$
/// with the optional residual $(r, \partial r)$; returns $h$, $\partial h$, $t$ and $W\partial g$.
fn stream_layer<D: Scalar>(theta: &[f64], blk: &Block, g: &[D], tg: &[D], nt: usize, residual: Option<(&[D], &[D])>) -> (Vec<D>, Vec<D>, Vec<D>, Vec<D>) {
    let (t, ta, mut th) = tanh_forward(theta, blk, g, tg, nt);
    let mut h = t.clone();
    if let Some((r, tr)) = residual {
        h.iter_mut().zip(r).for_each(|(a, b)| *a += *b);
        th.iter_mut().zip(tr).for_each(|(a, b)| *a += *b);
    }
    (h, th, t, ta)
}

/// The backward pass of [`tanh_forward`] with the outputs' value and tangent cotangents `hb`,
/// `thb` (tangents of the output are $(1 - t^2)\,ta$). Accumulates the weight and bias gradients
/// into `gw`; returns the cotangents of `g` and its tangents.
#[allow(clippy::too_many_arguments)]
fn tanh_backward<D: Scalar>(theta: &[f64], blk: &Block, g: &[D], tg: &[D], t: &[D], ta: &[D], hb: &[D], thb: &[D], nt: usize, gw: &mut [D]) -> (Vec<D>, Vec<D>) {
    let w = &theta[blk.w..blk.w + blk.rows * blk.cols];
    let mut gb = vec![D::zero(); blk.cols];
    let mut tgb = vec![D::zero(); blk.cols * nt];
    let mut tab = vec![D::zero(); nt];
    for r in 0..blk.rows {
        let sigma = D::one() - t[r] * t[r];
        let mut sbar = D::zero();
        for k in 0..nt {
            sbar += thb[r * nt + k] * ta[r * nt + k];
            tab[k] = thb[r * nt + k] * sigma;
        }
        // d t / d a = sigma, d sigma / d a = -2 t sigma.
        let ab = (hb[r] - sbar * t[r] * 2.0) * sigma;
        if blk.bias {
            gw[blk.b() + r] += ab;
        }
        for c in 0..blk.cols {
            let mut acc = ab * g[c];
            for k in 0..nt {
                acc += tab[k] * tg[c * nt + k];
            }
            gw[blk.w + r * blk.cols + c] += acc;
            let wc = w[r * blk.cols + c];
            if wc == 0.0 {
                continue;
            }
            gb[c] += ab * wc;
            for k in 0..nt {
                tgb[c * nt + k] += tab[k] * wc;
            }
        }
    }
    (gb, tgb)
}

impl FermiNetBackflow {
    /// `particles` electrons in the cell `lengths` (2 or 3 of them), `depth` layers of one-body
    /// width `one_body` and two-body width `two_body`.
    pub fn new(particles: usize, lengths: &[f64], depth: usize, one_body: usize, two_body: usize) -> Result<Self, ConfigError> {
        let d = lengths.len();
        if d != 2 && d != 3 {
            return Err(ConfigError::Value { what: "cell", value: format!("{d} lengths"), allowed: "2 (a square or rectangular cell) or 3 (orthorhombic)" });
        }
        if let Some(l) = lengths.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
            return Err(ConfigError::Value { what: "cell length", value: l.to_string(), allowed: "a finite positive number" });
        }
        if particles < 2 {
            return Err(ConfigError::Value { what: "particles", value: particles.to_string(), allowed: "at least 2 (the streams need pairs)" });
        }
        if !(1..=8).contains(&depth) {
            return Err(ConfigError::Value { what: "FermiNet depth", value: depth.to_string(), allowed: "1 to 8 layers" });
        }
        for (what, w) in [("FermiNet one-body width", one_body), ("FermiNet two-body width", two_body)] {
            if !(1..=256).contains(&w) {
                return Err(ConfigError::Value { what, value: w.to_string(), allowed: "1 to 256" });
            }
        }
        let p0 = 2 * d + 1;
        let mut at = 0;
        let mut take = |rows: usize, cols: usize, bias: bool| {
            let b = Block { w: at, rows, cols, bias };
            at += b.len();
            b
        };
        let (mut pairs, mut ones) = (Vec::new(), Vec::new());
        for l in 0..depth {
            let in2 = if l == 0 { p0 } else { two_body };
            let in1 = if l == 0 { p0 } else { one_body };
            pairs.push(take(two_body, in2, true));
            ones.push(take(one_body, 2 * in1 + two_body, true));
        }
        let out = take(d, one_body, false);
        Ok(FermiNetBackflow { particles, lengths: lengths.to_vec(), depth, one_body, two_body, output_scale: 0.0, init: None, pairs, ones, out, memo: RwLock::new(None) })
    }
    /// Random initial output weights of standard deviation `scale` (>= 0) instead of zero.
    pub fn with_output_scale(mut self, scale: f64) -> Result<Self, ConfigError> {
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(ConfigError::Value { what: "FermiNet output scale", value: scale.to_string(), allowed: "a finite number >= 0" });
        }
        self.output_scale = scale;
        Ok(self)
    }
    /// Start from `theta` (ignored unless it has the right length).
    pub fn with_initial(mut self, theta: &[f64]) -> Self {
        self.init = (theta.len() == self.n_params()).then(|| theta.to_vec());
        self
    }
    fn dim_(&self) -> usize {
        self.lengths.len()
    }
    fn pair_index(&self, i: usize, j: usize) -> usize {
        i * (self.particles - 1) + if j < i { j } else { j - 1 }
    }

    /// The Lipschitz bound $B$ as a function of the block norms (see the module docs), generic so
    /// that dual numbers give its derivatives. Norm order: per layer $\|V_l\|$, $\|W_l^h\|$,
    /// $\|W_l^{\bar h}\|$, $\|W_l^q\|$; then $\|W_{out}\|$.
    fn bound_of<T: Scalar>(&self, norms: &[T]) -> T {
        let n = self.particles as f64;
        let lmin = self.lengths.iter().cloned().fold(f64::INFINITY, f64::min);
        let cf = (2.0 * n).sqrt() * 5f64.sqrt() * PI / lmin;
        let mean = 1.0 / (n - 1.0).sqrt();
        let mut l2 = T::from(cf);
        let mut l1 = T::from(cf * mean);
        for l in 0..self.depth {
            let res = if l > 0 { 1.0 } else { 0.0 };
            let k = 4 * l;
            l2 = l2 * (norms[k] + res);
            l1 = l1 * (norms[k + 1] + norms[k + 2] + res) + norms[k + 3] * l2 * mean;
        }
        norms[4 * self.depth] * l1
    }

    /// The column ranges of each norm's weights: (block, first column, last column).
    fn norm_blocks(&self) -> Vec<(Block, usize, usize)> {
        let mut v = Vec::new();
        for l in 0..self.depth {
            let (p, o) = (self.pairs[l], self.ones[l]);
            let in1 = (o.cols - self.two_body) / 2;
            v.push((p, 0, p.cols));
            v.push((o, 0, in1));
            v.push((o, in1, 2 * in1));
            v.push((o, 2 * in1, o.cols));
        }
        v.push((self.out, 0, self.out.cols));
        v
    }

    /// $s = 0.9/(1 + B)$ and $\partial s/\partial\theta$ (dense). The block norms are spectral,
    /// $\sqrt{\epsilon^2 + \sigma_{max}^2}$, with $\partial\sigma_{max}/\partial W = u_1v_1^\top$ from the SVD.
    fn scale(&self, theta: &[f64]) -> (f64, Arc<Vec<f64>>) {
        if let Ok(memo) = self.memo.read() {
            if let Some((t, s, g)) = memo.as_ref() {
                if t.as_slice() == theta {
                    return (*s, g.clone());
                }
            }
        }
        let (s, g) = self.compute_scale(theta);
        let g = Arc::new(g);
        if let Ok(mut memo) = self.memo.write() {
            *memo = Some((theta.to_vec(), s, g.clone()));
        }
        (s, g)
    }
    fn compute_scale(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let blocks = self.norm_blocks();
        let mut norms = Vec::with_capacity(blocks.len());
        let mut tops = Vec::with_capacity(blocks.len());
        for (b, c0, c1) in &blocks {
            let m = nalgebra::DMatrix::from_fn(b.rows, c1 - c0, |r, c| theta[b.w + r * b.cols + c0 + c]);
            let svd = m.svd(true, true);
            let k = svd.singular_values.imax();
            let sigma = svd.singular_values[k];
            let u = svd.u.as_ref().map(|u| u.column(k).into_owned());
            let v = svd.v_t.as_ref().map(|v| v.row(k).transpose());
            norms.push((NORM_FLOOR * NORM_FLOOR + sigma * sigma).sqrt());
            tops.push((sigma, u, v));
        }
        let bound = self.bound_of(&norms);
        let s = BOUND / (1.0 + bound);
        let ds_db = -BOUND / ((1.0 + bound) * (1.0 + bound));
        let mut grad = vec![0.0; self.n_params()];
        for (m, ((b, c0, c1), (sigma, u, v))) in blocks.iter().zip(&tops).enumerate() {
            let (Some(u), Some(v)) = (u, v) else { continue };
            let lifted: Vec<Dual64> = norms.iter().enumerate().map(|(k, &n)| if k == m { Dual64::new(n, 1.0) } else { Dual64::from(n) }).collect();
            let dn = ds_db * self.bound_of(&lifted).eps * sigma / norms[m];
            for r in 0..b.rows {
                for c in *c0..*c1 {
                    grad[b.w + r * b.cols + c] = dn * u[r] * v[c - c0];
                }
            }
        }
        (s, grad)
    }

    /// Pair features of $r$ and their derivatives $\partial f_p/\partial r_a$ (`p0 x d`).
    fn features<D: Scalar>(&self, r: &[D]) -> (Vec<D>, Vec<D>) {
        let d = self.dim_();
        let p0 = 2 * d + 1;
        let mut f = vec![D::zero(); p0];
        let mut df = vec![D::zero(); p0 * d];
        let mut rho2 = D::zero();
        let mut half = vec![D::zero(); d];
        for a in 0..d {
            let k = 2.0 * PI / self.lengths[a];
            let (sn, co) = (r[a] * k).sin_cos();
            f[a] = co;
            f[d + a] = sn;
            df[a * d + a] = -sn * k;
            df[(d + a) * d + a] = co * k;
            let sh = (r[a] * (0.5 * k)).sin();
            rho2 += sh * sh;
            // d sin^2(k r / 2) / dr = (k / 2) sin(k r).
            half[a] = sn * (0.5 * k);
        }
        let rho = rho2.sqrt();
        f[2 * d] = rho;
        for a in 0..d {
            df[2 * d * d + a] = half[a] / (rho * 2.0);
        }
        (f, df)
    }

    /// $\partial^2 f_p/\partial r_a\partial r_b$ contracted with the tangent cotangent `tfb`
    /// (`p0 x d`): $\sum_{p,b}\bar t_{pb}\,\partial_a\partial_b f_p$.
    fn feature_curvature<D: Scalar>(&self, r: &[D], tfb: &[D]) -> Vec<D> {
        let d = self.dim_();
        let mut out = vec![D::zero(); d];
        let mut rho2 = D::zero();
        let mut first = vec![D::zero(); d];
        let mut second = vec![D::zero(); d];
        for a in 0..d {
            let k = 2.0 * PI / self.lengths[a];
            let (sn, co) = (r[a] * k).sin_cos();
            out[a] += -(co * (k * k)) * tfb[a * d + a] - sn * (k * k) * tfb[(d + a) * d + a];
            let sh = (r[a] * (0.5 * k)).sin();
            rho2 += sh * sh;
            first[a] = sn * (0.25 * k);
            second[a] = co * (0.25 * k * k);
        }
        // rho = sqrt(S): d_a rho = S_a / rho, d_a d_b rho = delta_ab S_aa / rho - S_a S_b / rho^3
        // with S_a = d_a(S)/2 = (k_a/4) sin(k_a r_a) and S_aa = (k_a^2/4) cos(k_a r_a).
        let rho = rho2.sqrt();
        let row = &tfb[2 * d * d..2 * d * d + d];
        let tf = (0..d).fold(D::zero(), |acc, b| acc + row[b] * first[b]);
        let rho3 = rho * rho * rho;
        for a in 0..d {
            out[a] += row[a] * second[a] / rho - first[a] * tf / rho3;
        }
        out
    }

    /// The forward pass with tangents. With `tape` false the layers' inputs, `tanh` outputs and
    /// pre-activation tangents (what only the VJP reads) are dropped as soon as they are used;
    /// with `tangents` false no tangents are carried at all (the values $u$ alone, `du` empty).
    fn trace<D: Scalar>(&self, theta: &[f64], x: &[D], tape: bool, tangents: bool) -> Trace<D> {
        let (n, d) = (self.particles, self.dim_());
        let nd = n * d;
        // Tangents per pair quantity (in r_ij) and per one-body quantity (in all coordinates).
        let (dt, ndt) = if tangents { (d, nd) } else { (0, 0) };
        let p0 = 2 * d + 1;
        let inv = 1.0 / (n - 1) as f64;
        let mut f = Vec::with_capacity(n * (n - 1));
        let mut df = Vec::with_capacity(n * (n - 1));
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let r: Vec<D> = (0..d).map(|a| x[i * d + a] - x[j * d + a]).collect();
                    let (fi, dfi) = self.features(&r);
                    f.push(fi);
                    df.push(if tangents { dfi } else { Vec::new() });
                }
            }
        }
        // Two-body stream.
        let mut tr = Trace { h2: vec![f], th2: vec![df], t2: vec![], ta2: vec![], h1: vec![], th1: vec![], g1: vec![], tg1: vec![], t1: vec![], ta1: vec![], u: vec![], du: vec![] };
        for l in 0..self.depth {
            let res = l > 0;
            let (mut hs, mut ths, mut ts, mut tas) = (vec![], vec![], vec![], vec![]);
            for p in 0..n * (n - 1) {
                let (h, th, t, ta) = stream_layer(theta, &self.pairs[l], &tr.h2[l][p], &tr.th2[l][p], dt, res.then(|| (&tr.h2[l][p][..], &tr.th2[l][p][..])));
                hs.push(h);
                ths.push(th);
                ts.push(t);
                tas.push(ta);
            }
            tr.h2.push(hs);
            tr.th2.push(ths);
            if tape {
                tr.t2.push(ts);
                tr.ta2.push(tas);
            }
        }
        // Means over partners of a pair quantity with r-tangents, as one-body values with
        // tangents in all coordinates.
        let pair_mean = |h: &[Vec<D>], th: &[Vec<D>], width: usize, i: usize| -> (Vec<D>, Vec<D>) {
            let mut v = vec![D::zero(); width];
            let mut tv = vec![D::zero(); width * ndt];
            for j in (0..n).filter(|&j| j != i) {
                let p = self.pair_index(i, j);
                for c in 0..width {
                    v[c] += h[p][c] * inv;
                    for a in 0..dt {
                        let t = th[p][c * d + a] * inv;
                        tv[c * nd + i * d + a] += t;
                        tv[c * nd + j * d + a] -= t;
                    }
                }
            }
            (v, tv)
        };
        let (mut h1, mut th1) = (vec![], vec![]);
        for i in 0..n {
            let (v, tv) = pair_mean(&tr.h2[0], &tr.th2[0], p0, i);
            h1.push(v);
            th1.push(tv);
        }
        tr.h1.push(h1);
        tr.th1.push(th1);
        for l in 0..self.depth {
            let w_in = tr.h1[l][0].len();
            let mut m = vec![D::zero(); w_in];
            let mut tm = vec![D::zero(); w_in * ndt];
            for i in 0..n {
                for c in 0..w_in {
                    m[c] += tr.h1[l][i][c] * (1.0 / n as f64);
                }
                for k in 0..w_in * ndt {
                    tm[k] += tr.th1[l][i][k] * (1.0 / n as f64);
                }
            }
            let (mut hs, mut ths, mut gs, mut tgs, mut ts, mut tas) = (vec![], vec![], vec![], vec![], vec![], vec![]);
            for i in 0..n {
                let (q, tq) = pair_mean(&tr.h2[l + 1], &tr.th2[l + 1], self.two_body, i);
                let g: Vec<D> = tr.h1[l][i].iter().chain(&m).chain(&q).copied().collect();
                let tg: Vec<D> = tr.th1[l][i].iter().chain(&tm).chain(&tq).copied().collect();
                let (h, th, t, ta) = stream_layer(theta, &self.ones[l], &g, &tg, ndt, (l > 0).then(|| (&tr.h1[l][i][..], &tr.th1[l][i][..])));
                hs.push(h);
                ths.push(th);
                if tape {
                    gs.push(g);
                    tgs.push(tg);
                    ts.push(t);
                    tas.push(ta);
                }
            }
            tr.h1.push(hs);
            tr.th1.push(ths);
            if tape {
                tr.g1.push(gs);
                tr.tg1.push(tgs);
                tr.t1.push(ts);
                tr.ta1.push(tas);
            }
        }
        // Output u_i = W_out h_i and its Jacobian.
        let wo = &theta[self.out.w..self.out.w + d * self.one_body];
        let mut u = vec![D::zero(); nd];
        let mut du = vec![D::zero(); nd * ndt];
        for i in 0..n {
            let (h, th) = (&tr.h1[self.depth][i], &tr.th1[self.depth][i]);
            for a in 0..d {
                for s in 0..self.one_body {
                    let w = wo[a * self.one_body + s];
                    if w == 0.0 {
                        continue;
                    }
                    u[i * d + a] += h[s] * w;
                    for c in 0..ndt {
                        du[(i * d + a) * nd + c] += th[s * nd + c] * w;
                    }
                }
            }
        }
        tr.u = u;
        tr.du = du;
        tr
    }
}

impl ResidualField for FermiNetBackflow {
    const SYMMETRIC: bool = false;
    fn value(&self, theta: &[f64], x: &[f64]) -> Vec<f64> {
        let s = self.scale(theta).0;
        self.trace(theta, x, false, false).u.iter().map(|&u| u * s).collect()
    }
    fn field<D: Scalar>(&self, theta: &[f64], x: &[D]) -> (Vec<D>, Vec<D>) {
        let n = x.len();
        let s = self.scale(theta).0;
        let tr = self.trace(theta, x, false, true);
        let v = tr.u.iter().map(|&u| u * s).collect();
        let mut a: Vec<D> = tr.du.iter().map(|&u| u * s).collect();
        for k in 0..n {
            a[k * n + k] += D::one();
        }
        (v, a)
    }
}

impl Parametrised for FermiNetBackflow {
    fn n_params(&self) -> usize {
        self.out.w + self.out.len()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        if let Some(t) = &self.init {
            theta.copy_from_slice(t);
            return;
        }
        theta.fill(0.0);
        for b in self.pairs.iter().chain(&self.ones) {
            let sd = (2.0 / (b.rows + b.cols) as f64).sqrt();
            for k in 0..b.rows * b.cols {
                let z: f64 = StandardNormal.sample(rng);
                theta[b.w + k] = sd * z;
            }
        }
        for k in 0..self.out.rows * self.out.cols {
            let z: f64 = StandardNormal.sample(rng);
            theta[self.out.w + k] = self.output_scale * z;
        }
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("two-body", 0..self.ones[0].w), ParamGroup::new("streams", self.ones[0].w..self.out.w), ParamGroup::new("output", self.out.w..self.n_params())]
    }
}

impl Bijector<Dyn> for FermiNetBackflow {
    type Cache<D: Scalar> = Vector<D, Dyn>;
    fn dim(&self) -> Dyn {
        Dyn(self.particles * self.dim_())
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D, Self::Cache<D>) {
        let (z, ld) = residual_forward(self, theta, x);
        (z, ld, x.clone())
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D) {
        residual_inverse(self, theta, y)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], x: &Self::Cache<D>, zbar: &Vector<D, Dyn>, ldbar: D, g: &mut [D]) -> Vector<D, Dyn> {
        let (n, d) = (self.particles, self.dim_());
        let nd = n * d;
        let p0 = 2 * d + 1;
        let inv = 1.0 / (n - 1) as f64;
        let (s, ds) = self.scale(theta);
        let tr = self.trace(theta, x.as_slice(), true, true);
        let mut a: Vec<D> = tr.du.iter().map(|&u| u * s).collect();
        for k in 0..nd {
            a[k * nd + k] += D::one();
        }
        let ainv = general_inverse(&mut a, nd);
        // z = x + s u, ld = ln det(I + s U): cotangents of u, U and s.
        let ub: Vec<D> = zbar.iter().map(|&z| z * s).collect();
        let mut dub = vec![D::zero(); nd * nd];
        let mut sbar = D::zero();
        for r in 0..nd {
            sbar += zbar[r] * tr.u[r];
            for c in 0..nd {
                let w = ainv[c * nd + r] * ldbar;
                dub[r * nd + c] = w * s;
                sbar += w * tr.du[r * nd + c];
            }
        }
        for (k, &dk) in ds.iter().enumerate() {
            if dk != 0.0 {
                g[k] += sbar * dk;
            }
        }
        // Output layer.
        let wo = &theta[self.out.w..self.out.w + d * self.one_body];
        let w1 = self.one_body;
        let mut hb: Vec<Vec<D>> = vec![vec![D::zero(); w1]; n];
        let mut thb: Vec<Vec<D>> = vec![vec![D::zero(); w1 * nd]; n];
        for i in 0..n {
            let (h, th) = (&tr.h1[self.depth][i], &tr.th1[self.depth][i]);
            for a in 0..d {
                let row = i * d + a;
                for s_ in 0..w1 {
                    let mut acc = ub[row] * h[s_];
                    for c in 0..nd {
                        acc += dub[row * nd + c] * th[s_ * nd + c];
                    }
                    g[self.out.w + a * w1 + s_] += acc;
                    let w = wo[a * w1 + s_];
                    if w == 0.0 {
                        continue;
                    }
                    hb[i][s_] += ub[row] * w;
                    for c in 0..nd {
                        thb[i][s_ * nd + c] += dub[row * nd + c] * w;
                    }
                }
            }
        }
        // Cotangents of the two-body stream's values and r-tangents, per stream level.
        let np = n * (n - 1);
        let mut h2b: Vec<Vec<Vec<D>>> = (0..=self.depth).map(|l| vec![vec![D::zero(); tr.h2[l][0].len()]; np]).collect();
        let mut th2b: Vec<Vec<Vec<D>>> = (0..=self.depth).map(|l| vec![vec![D::zero(); tr.h2[l][0].len() * d]; np]).collect();
        // The adjoint of the partner mean: (value, all-coordinate tangent) cotangents of row i
        // onto the pairs (i, j).
        let scatter_mean = |vb: &[D], tvb: &[D], width: usize, i: usize, hbuf: &mut [Vec<D>], tbuf: &mut [Vec<D>]| {
            for j in (0..n).filter(|&j| j != i) {
                let p = self.pair_index(i, j);
                for c in 0..width {
                    hbuf[p][c] += vb[c] * inv;
                    for a in 0..d {
                        tbuf[p][c * d + a] += (tvb[c * nd + i * d + a] - tvb[c * nd + j * d + a]) * inv;
                    }
                }
            }
        };
        for l in (0..self.depth).rev() {
            let w_in = tr.h1[l][0].len();
            let mut nhb: Vec<Vec<D>> = vec![vec![D::zero(); w_in]; n];
            let mut nthb: Vec<Vec<D>> = vec![vec![D::zero(); w_in * nd]; n];
            let mut mb = vec![D::zero(); w_in];
            let mut tmb = vec![D::zero(); w_in * nd];
            for i in 0..n {
                let (gb, tgb) = tanh_backward(theta, &self.ones[l], &tr.g1[l][i], &tr.tg1[l][i], &tr.t1[l][i], &tr.ta1[l][i], &hb[i], &thb[i], nd, g);
                for c in 0..w_in {
                    nhb[i][c] += gb[c];
                    mb[c] += gb[w_in + c];
                }
                for k in 0..w_in * nd {
                    nthb[i][k] += tgb[k];
                    tmb[k] += tgb[w_in * nd + k];
                }
                let (h2buf, t2buf) = (&mut h2b[l + 1], &mut th2b[l + 1]);
                scatter_mean(&gb[2 * w_in..], &tgb[2 * w_in * nd..], self.two_body, i, h2buf, t2buf);
                if l > 0 {
                    nhb[i].iter_mut().zip(&hb[i]).for_each(|(a, b)| *a += *b);
                    nthb[i].iter_mut().zip(&thb[i]).for_each(|(a, b)| *a += *b);
                }
            }
            for i in 0..n {
                for c in 0..w_in {
                    nhb[i][c] += mb[c] * (1.0 / n as f64);
                }
                for k in 0..w_in * nd {
                    nthb[i][k] += tmb[k] * (1.0 / n as f64);
                }
            }
            hb = nhb;
            thb = nthb;
        }
        // h1^0 is the partner mean of the features.
        for i in 0..n {
            let (h0, t0) = (&mut h2b[0], &mut th2b[0]);
            scatter_mean(&hb[i], &thb[i], p0, i, h0, t0);
        }
        // Two-body layers, top down.
        for l in (0..self.depth).rev() {
            for p in 0..np {
                let (gb, tgb) = tanh_backward(theta, &self.pairs[l], &tr.h2[l][p], &tr.th2[l][p], &tr.t2[l][p], &tr.ta2[l][p], &h2b[l + 1][p], &th2b[l + 1][p], d, g);
                let res = l > 0;
                for (c, v) in gb.into_iter().enumerate() {
                    let up = if res { h2b[l + 1][p][c] } else { D::zero() };
                    h2b[l][p][c] += v + up;
                }
                for (k, v) in tgb.into_iter().enumerate() {
                    let up = if res { th2b[l + 1][p][k] } else { D::zero() };
                    th2b[l][p][k] += v + up;
                }
            }
        }
        // Features: r-cotangent from values and tangents.
        let mut xbar = zbar.clone();
        for i in 0..n {
            for j in (0..n).filter(|&j| j != i) {
                let p = self.pair_index(i, j);
                let r: Vec<D> = (0..d).map(|a| x[i * d + a] - x[j * d + a]).collect();
                let mut rb = self.feature_curvature(&r, &th2b[0][p]);
                for a in 0..d {
                    for q in 0..p0 {
                        rb[a] += h2b[0][p][q] * tr.th2[0][p][q * d + a];
                    }
                    xbar[i * d + a] += rb[a];
                    xbar[j * d + a] -= rb[a];
                }
            }
        }
        xbar
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{GradCheckConfig, check_bijector};
    use rand::SeedableRng;

    fn side(np: usize, d: usize) -> f64 {
        if d == 2 { (PI * np as f64).sqrt() } else { (4.0 * PI * np as f64 / 3.0).cbrt() }
    }
    fn net(np: usize, d: usize) -> (FermiNetBackflow, Vec<f64>) {
        let l = FermiNetBackflow::new(np, &vec![side(np, d); d], 2, 5, 4).unwrap().with_output_scale(0.7).unwrap();
        let mut theta = vec![0.0; l.n_params()];
        l.init_params(&mut crate::batch::NctRng::seed_from_u64(3), &mut theta);
        (l, theta)
    }
    fn config(n: usize, side: f64) -> Vector<f64, Dyn> {
        Vector::from_fn(Dyn(n), |k| ((k * 7 % 11) as f64 + 0.3 * (k % 3) as f64) / 11.0 * side)
    }

    #[test]
    fn the_gemm_path_of_a_layer_equals_the_element_loop() {
        use crate::jet::LapJet;
        use num_dual::DualNum;
        let (rows, cols, nt) = (16, 48, 26);
        let blk = Block { w: 3, rows, cols, bias: true };
        let theta: Vec<f64> = (0..3 + blk.len()).map(|k| (0.37 * k as f64).sin() * 0.4).collect();
        let at = |k: usize, i: usize| LapJet::<12>::variable(0.1 * (k as f64 * 0.7).cos(), i % 12) * (0.3 + 0.01 * i as f64);
        // Jets with and without derivatives, as in the one-body stream.
        let g: Vec<LapJet<12>> = (0..cols).map(|c| if c % 5 == 0 { LapJet::from_re(0.2 * c as f64 / cols as f64) } else { at(c, c).sin() }).collect();
        let tg: Vec<LapJet<12>> = (0..cols * nt).map(|k| if k % 7 == 0 { LapJet::from_re(0.0) } else { at(k, k * 5).cos() }).collect();
        let ((t0, a0, h0), (t1, a1, h1)) = (tanh_forward_loop(&theta, &blk, &g, &tg, nt), tanh_forward_gemm(&theta, &blk, &g, &tg, nt, 14));
        for (x, y) in t0.iter().zip(&t1).chain(a0.iter().zip(&a1)).chain(h0.iter().zip(&h1)) {
            assert!((x.re - y.re).abs() < 1e-12 && (x.v2 - y.v2).abs() < 1e-12 && (x.gradient() - y.gradient()).amax() < 1e-12, "{x} vs {y}");
        }
        let (gf, tgf): (Vec<f64>, Vec<f64>) = (g.iter().map(|v| v.re).collect(), tg.iter().map(|v| v.re).collect());
        let ((t0, a0, h0), (t1, a1, h1)) = (tanh_forward_loop(&theta, &blk, &gf, &tgf, nt), tanh_forward_gemm(&theta, &blk, &gf, &tgf, nt, 1));
        assert!(t0.iter().zip(&t1).chain(a0.iter().zip(&a1)).chain(h0.iter().zip(&h1)).all(|(x, y)| (x - y).abs() < 1e-12));
        // The dispatcher takes the GEMM path at this size.
        assert!(rows * cols * (1 + nt) * 14 >= GEMM_MIN);
    }

    #[test]
    fn the_value_only_field_equals_the_field_with_tangents() {
        for (np, d) in [(3, 2), (4, 3), (13, 2)] {
            let (net, theta) = net(np, d);
            let x = config(np * d, side(np, d));
            let (v, a) = net.field::<f64>(&theta, x.as_slice());
            let w = net.value(&theta, x.as_slice());
            assert_eq!(a.len(), (np * d) * (np * d));
            assert!(v.iter().zip(&w).all(|(p, q)| (p - q).abs() < 1e-14), "{np} x {d}: {v:?} vs {w:?}");
            assert!(v.iter().any(|p| p.abs() > 1e-3), "a trivial field tests nothing");
        }
    }

    #[test]
    fn gradients_round_trip_and_log_det() {
        for d in [2, 3] {
            let (l, theta) = net(3, d);
            let report = check_bijector(&l, &theta, &GradCheckConfig { input_scale: 1.5, ..GradCheckConfig::default() });
            assert!(report.passed(1e-6, 1e-10), "d = {d}: {report}");
            let n = 3 * d;
            let x = config(n, l.lengths[0]);
            let (z, ld, _) = l.forward(&theta, &x);
            let (back, ild) = l.inverse(&theta, &z);
            let err = back.iter().zip(x.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 1e-12 && (ld + ild).abs() < 1e-12, "round trip {err:e}");
            let moved = z.iter().zip(x.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(moved > 1e-3, "the flow moves the particles: {moved}");
            let jac = nalgebra::DMatrix::from_fn(n, n, |i, j| {
                let v = Vector::from_fn(Dyn(n), |k| num_dual::Dual64::new(x[k], if k == j { 1.0 } else { 0.0 }));
                l.forward(&theta, &v).0[i].eps
            });
            assert!((jac.determinant().ln() - ld).abs() < 1e-12, "{} vs {ld}", jac.determinant().ln());
        }
    }

    #[test]
    fn equivariant_under_permutations_shifts_and_lattice_translations() {
        let (l, theta) = net(4, 2);
        let side = l.lengths[0];
        let x = config(8, side);
        let (z, ld, _) = l.forward(&theta, &x);
        let perm = [2usize, 0, 3, 1];
        let px = Vector::from_fn(Dyn(8), |k| x[perm[k / 2] * 2 + k % 2]);
        let (pz, pld, _) = l.forward(&theta, &px);
        assert!((0..8).all(|k| (pz[k] - z[perm[k / 2] * 2 + k % 2]).abs() < 1e-12) && (pld - ld).abs() < 1e-12);
        let shift = [0.37, -1.21];
        let (sz, sld, _) = l.forward(&theta, &Vector::from_fn(Dyn(8), |k| x[k] + shift[k % 2]));
        assert!((0..8).all(|k| (sz[k] - z[k] - shift[k % 2]).abs() < 1e-12) && (sld - ld).abs() < 1e-12);
        let (tz, tld, _) = l.forward(&theta, &Vector::from_fn(Dyn(8), |k| x[k] + if k == 2 { side } else if k == 7 { -2.0 * side } else { 0.0 }));
        let want = |k: usize| z[k] + if k == 2 { side } else if k == 7 { -2.0 * side } else { 0.0 };
        assert!((0..8).all(|k| (tz[k] - want(k)).abs() < 1e-12) && (tld - ld).abs() < 1e-12);
    }

    #[test]
    fn the_bound_holds_for_any_weights() {
        // The largest singular value of dz/dx - I stays below 0.9 however large the weights,
        // and the inverse is exact there too.
        let (l, theta) = net(5, 2);
        for scale in [0.3, 1.0, 3.0, 40.0] {
            let th: Vec<f64> = theta.iter().map(|t| scale * t).collect();
            let mut worst = 0.0f64;
            for seed in 0..20u64 {
                let x = Vector::from_fn(Dyn(10), |k| ((seed * 31 + k as u64 * 17) % 97) as f64 / 97.0 * l.lengths[0]);
                let (_, a) = l.field::<f64>(&th, x.as_slice());
                let m = nalgebra::DMatrix::from_fn(10, 10, |i, j| a[i * 10 + j] - if i == j { 1.0 } else { 0.0 });
                worst = worst.max(m.singular_values().max());
                let (z, ld, _) = l.forward(&th, &x);
                let (back, ild) = l.inverse(&th, &z);
                let err = back.iter().zip(x.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                assert!(err < 1e-11 && (ld + ild).abs() < 1e-11 && ld.is_finite(), "scale {scale}, seed {seed}: {err:e}");
            }
            assert!(worst < 0.9, "scale {scale}: largest singular value {worst}");
            if scale == 0.3 {
                assert!(worst > 1e-3, "the flow is not the identity: {worst}");
            }
        }
        assert!(FermiNetBackflow::new(1, &[1.0, 1.0], 2, 4, 4).is_err() && FermiNetBackflow::new(3, &[1.0, 1.0], 0, 4, 4).is_err());
        assert!(FermiNetBackflow::new(3, &[1.0, 1.0], 2, 0, 4).is_err() && l.clone().with_output_scale(-1.0).is_err());
    }

    #[test]
    fn local_kinetic_energy_through_the_flow_matches_finite_differences_of_psi() {
        // K_loc against central differences of psi: checks the jets through the tangents and
        // the LU log-determinant.
        use crate::periodic::{GasState, TwistedPlaneWaves};
        let n = 3;
        let (l, theta) = net(n, 2);
        let pw = TwistedPlaneWaves::new(l.lengths[0], &[0.25, 0.25], 25);
        let st = GasState::new(l, pw, n).unwrap();
        let occ = [0usize, 2, 5];
        let x = st.sample(&theta, &occ, &mut crate::batch::NctRng::seed_from_u64(5));
        let k = st.local_kinetic(&theta, &occ, x.as_slice()).unwrap();
        let fd = crate::periodic::state::kinetic_by_differences(&st, &theta, &occ, x.as_slice());
        assert!((fd - k).norm() < 1e-5 * k.norm(), "{fd} vs {k}");
    }
}
