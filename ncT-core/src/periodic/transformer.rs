//! A causal transformer over the ordered indices of the N occupied orbitals (CoulombGas's
//! occupation model, Xie, Zhang & Wang, SciPost Phys. 14, 154 (2023)): with the orbitals sorted
//! by energy and the occupied ones increasing, $i_1 < \dots < i_N$,
//! $$ p(i_1..i_N) = \prod_t p(i_t \mid i_{<t}), \qquad
//!    p(i_t = j \mid i_{<t}) \propto e^{\ell_{tj} - \beta\varepsilon_j}, \quad
//!    i_{t-1} < j \le M - N + t, $$
//! so every sample is a valid set and the law is exactly normalised over all $\binom MN$ sets
//! (tested by enumeration). $\ell_t$ is the network's output at position t, whose input is a
//! start token followed by $i_1..i_{t-1}$: token and position embeddings, `layers` blocks of
//! causal multi-head self-attention and a tanh MLP, each with a residual connection, and a
//! linear read-out. The read-out starts at zero, so the untrained model is the sequential
//! Boltzmann prior $e^{-\beta\varepsilon_j}$ over the allowed orbitals; pretraining on free
//! electrons ([`super::LikelihoodPretraining`]) brings it to the canonical ensemble.
//!
//! Sampling runs N steps with a key-value cache ($O(N^2 d)$ per sample, not N full passes);
//! $\ln p$ and its gradient come from one full pass and a hand-written backward pass.

use super::thermal::OrbitalOccupation;
use crate::error::ConfigError;
use crate::params::{ParamGroup, Parametrised};
use rand::RngExt;

/// The transformer occupation model (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerOccupation {
    pub particles: usize,
    /// One-body energies $\varepsilon_j$ of the M orbitals (increasing).
    pub energies: Vec<f64>,
    pub beta: f64,
    pub layers: usize,
    /// Model width d.
    pub width: usize,
    pub heads: usize,
    /// Width of the MLP.
    pub hidden: usize,
    /// Initial parameters (e.g. pretrained; default: the random initialisation below).
    pub init: Option<Vec<f64>>,
}

/// Offsets of one block's parameters.
#[derive(Clone, Copy, Debug)]
struct Block {
    wq: usize,
    wk: usize,
    wv: usize,
    wo: usize,
    w1: usize,
    b1: usize,
    w2: usize,
    b2: usize,
}

/// Activations of one block for a whole sequence (row-major, position-major).
struct BlockTape {
    x: Vec<f64>,
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
    /// Attention weights `[head][t][s]`, s <= t.
    a: Vec<f64>,
    o: Vec<f64>,
    y: Vec<f64>,
    act: Vec<f64>,
}

/// $y = x W$ for `x` of length `rows(W)`, `W` row-major with `out` columns.
fn matvec(x: &[f64], w: &[f64], out: usize) -> Vec<f64> {
    let mut y = vec![0.0; out];
    for (i, &xi) in x.iter().enumerate() {
        if xi != 0.0 {
            for (yj, wij) in y.iter_mut().zip(&w[i * out..(i + 1) * out]) {
                *yj += xi * wij;
            }
        }
    }
    y
}

/// Backward of $y = xW$: adds $x\otimes\bar y$ to `gw` and returns $\bar x = W\bar y$.
fn matvec_back(x: &[f64], w: &[f64], ybar: &[f64], gw: &mut [f64]) -> Vec<f64> {
    let out = ybar.len();
    let mut xbar = vec![0.0; x.len()];
    for (i, &xi) in x.iter().enumerate() {
        let row = &w[i * out..(i + 1) * out];
        let grow = &mut gw[i * out..(i + 1) * out];
        let mut s = 0.0;
        for j in 0..out {
            grow[j] += xi * ybar[j];
            s += row[j] * ybar[j];
        }
        xbar[i] = s;
    }
    xbar
}

impl TransformerOccupation {
    /// CoulombGas's sizes: 2 layers, width 16, 4 heads, MLP 32.
    pub fn new(particles: usize, energies: &[f64], beta: f64) -> Result<Self, ConfigError> {
        Self::with_sizes(particles, energies, beta, 2, 16, 4, 32)
    }
    pub fn with_sizes(particles: usize, energies: &[f64], beta: f64, layers: usize, width: usize, heads: usize, hidden: usize) -> Result<Self, ConfigError> {
        if particles == 0 || particles > energies.len() {
            return Err(ConfigError::Value { what: "particles", value: particles.to_string(), allowed: "between 1 and the number of orbitals" });
        }
        if energies.windows(2).any(|w| !(w[0] <= w[1])) || energies.iter().any(|e| !e.is_finite()) {
            return Err(ConfigError::Value { what: "orbital energies", value: "unsorted or not finite".into(), allowed: "increasing finite energies" });
        }
        if !(beta.is_finite() && beta > 0.0) {
            return Err(ConfigError::Value { what: "beta", value: beta.to_string(), allowed: "a finite inverse temperature > 0" });
        }
        if heads == 0 || width == 0 || width % heads != 0 || hidden == 0 {
            return Err(ConfigError::Value { what: "transformer sizes", value: format!("width {width}, heads {heads}, hidden {hidden}"), allowed: "positive sizes with the width a multiple of the heads" });
        }
        Ok(TransformerOccupation { particles, energies: energies.to_vec(), beta, layers, width, heads, hidden, init: None })
    }
    /// Start from `theta` (e.g. pretrained parameters; ignored unless it has the right length).
    pub fn with_initial(mut self, theta: &[f64]) -> Self {
        self.init = (theta.len() == self.n_params()).then(|| theta.to_vec());
        self
    }
    fn orbitals(&self) -> usize {
        self.energies.len()
    }
    // Layout: token embeddings (M + 1 rows, the last the start token), position embeddings (N
    // rows), the blocks, then the read-out W (d x M) and its bias (M).
    fn pos_offset(&self) -> usize {
        (self.orbitals() + 1) * self.width
    }
    fn block(&self, l: usize) -> Block {
        let (d, h) = (self.width, self.hidden);
        let per = 4 * d * d + d * h + h + h * d + d;
        let base = self.pos_offset() + self.particles * d + l * per;
        Block { wq: base, wk: base + d * d, wv: base + 2 * d * d, wo: base + 3 * d * d, w1: base + 4 * d * d, b1: base + 4 * d * d + d * h, w2: base + 4 * d * d + d * h + h, b2: base + 4 * d * d + 2 * d * h + h }
    }
    fn out_offset(&self) -> usize {
        let end = self.block(self.layers);
        end.wq
    }

    /// The allowed orbitals at position t (0-based) after `prev` (the previous orbital or none).
    fn allowed(&self, t: usize, prev: Option<usize>) -> std::ops::RangeInclusive<usize> {
        prev.map_or(0, |p| p + 1)..=self.orbitals() - self.particles + t
    }

    /// Masked log-softmax of the read-out `h` at position t: the logits over the allowed range.
    fn log_probs(&self, theta: &[f64], h: &[f64], t: usize, prev: Option<usize>) -> (std::ops::RangeInclusive<usize>, Vec<f64>) {
        let m = self.orbitals();
        let (wo, bo) = (self.out_offset(), self.out_offset() + self.width * m);
        let range = self.allowed(t, prev);
        let logits = matvec(h, &theta[wo..wo + self.width * m], m);
        let l: Vec<f64> = range.clone().map(|j| logits[j] + theta[bo + j] - self.beta * self.energies[j]).collect();
        let mx = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + l.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
        (range, l.into_iter().map(|v| v - lse).collect())
    }

    /// Causal attention of one position: its query against the keys and values of the positions
    /// up to it, per head; the output and the weights (`[head][s]`).
    fn attend(&self, q: &[f64], keys: &[&[f64]], values: &[&[f64]]) -> (Vec<f64>, Vec<f64>) {
        let (d, nh, hd) = (self.width, self.heads, self.width / self.heads);
        let mut o = vec![0.0; d];
        let mut weights = Vec::with_capacity(nh * keys.len());
        let scale = 1.0 / (hd as f64).sqrt();
        for head in 0..nh {
            let r = head * hd..(head + 1) * hd;
            let sc: Vec<f64> = keys.iter().map(|k| q[r.clone()].iter().zip(&k[r.clone()]).map(|(a, b)| a * b).sum::<f64>() * scale).collect();
            let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = sc.iter().map(|s| (s - mx).exp()).collect();
            let z: f64 = w.iter().sum();
            for (ws, v) in w.iter().zip(values.iter()) {
                for c in r.clone() {
                    o[c] += ws / z * v[c];
                }
            }
            weights.extend(w.iter().map(|ws| ws / z));
        }
        (o, weights)
    }

    /// One block on a new position given its cached keys and values (pushed here).
    fn block_step(&self, theta: &[f64], b: Block, x: &[f64], keys: &mut Vec<Vec<f64>>, values: &mut Vec<Vec<f64>>) -> Vec<f64> {
        let d = self.width;
        let q = matvec(x, &theta[b.wq..b.wq + d * d], d);
        keys.push(matvec(x, &theta[b.wk..b.wk + d * d], d));
        values.push(matvec(x, &theta[b.wv..b.wv + d * d], d));
        fn rows(m: &[Vec<f64>]) -> Vec<&[f64]> {
            m.iter().map(|r| r.as_slice()).collect()
        }
        let (o, _) = self.attend(&q, &rows(keys), &rows(values));
        self.mlp(theta, b, x, &o).0
    }

    /// $y = x + oW_o$, then $x' = y + \tanh(yW_1 + b_1)W_2 + b_2$; returns $x'$, $y$ and the activation.
    fn mlp(&self, theta: &[f64], b: Block, x: &[f64], o: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (d, h) = (self.width, self.hidden);
        let y: Vec<f64> = matvec(o, &theta[b.wo..b.wo + d * d], d).iter().zip(x).map(|(a, b)| a + b).collect();
        let act: Vec<f64> = matvec(&y, &theta[b.w1..b.w1 + d * h], h).iter().zip(&theta[b.b1..b.b1 + h]).map(|(u, c)| (u + c).tanh()).collect();
        let out: Vec<f64> = matvec(&act, &theta[b.w2..b.w2 + h * d], d).iter().zip(&theta[b.b2..b.b2 + d]).zip(&y).map(|((a, c), yy)| a + c + yy).collect();
        (out, y, act)
    }

    fn embed(&self, theta: &[f64], token: usize, t: usize) -> Vec<f64> {
        let d = self.width;
        let (e, p) = (token * d, self.pos_offset() + t * d);
        (0..d).map(|c| theta[e + c] + theta[p + c]).collect()
    }

    /// An exact sample and its $\ln p$, N steps with the key-value cache.
    pub fn sample_with<R: rand::Rng + ?Sized>(&self, theta: &[f64], rng: &mut R) -> (Vec<usize>, f64) {
        let n = self.particles;
        let mut cache: Vec<(Vec<Vec<f64>>, Vec<Vec<f64>>)> = vec![(Vec::with_capacity(n), Vec::with_capacity(n)); self.layers];
        let (mut occ, mut log_p) = (Vec::with_capacity(n), 0.0);
        let mut prev: Option<usize> = None;
        for t in 0..n {
            let mut x = self.embed(theta, prev.unwrap_or(self.orbitals()), t);
            for (l, (k, v)) in cache.iter_mut().enumerate() {
                x = self.block_step(theta, self.block(l), &x, k, v);
            }
            let (range, lp) = self.log_probs(theta, &x, t, prev);
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut pick = lp.len() - 1;
            for (j, l) in lp.iter().enumerate() {
                acc += l.exp();
                if u < acc {
                    pick = j;
                    break;
                }
            }
            let j = *range.start() + pick;
            log_p += lp[pick];
            occ.push(j);
            prev = Some(j);
        }
        (occ, log_p)
    }

    /// The full forward pass over the sequence `occ`: the tapes of the blocks and the read-out
    /// inputs at every position; `None` if `occ` is not an increasing set of valid orbitals.
    fn forward(&self, theta: &[f64], occ: &[usize]) -> Option<(Vec<BlockTape>, Vec<f64>)> {
        let (n, d, nh) = (self.particles, self.width, self.heads);
        if occ.len() != n || occ.iter().any(|&j| j >= self.orbitals()) || occ.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        let mut x: Vec<f64> = (0..n).flat_map(|t| self.embed(theta, if t == 0 { self.orbitals() } else { occ[t - 1] }, t)).collect();
        let mut tapes = Vec::with_capacity(self.layers);
        for l in 0..self.layers {
            let b = self.block(l);
            let rows = |w: usize| -> Vec<f64> { (0..n).flat_map(|t| matvec(&x[t * d..(t + 1) * d], &theta[w..w + d * d], d)).collect() };
            let (q, k, v) = (rows(b.wq), rows(b.wk), rows(b.wv));
            let mut a = vec![0.0; nh * n * n];
            let mut o = vec![0.0; n * d];
            let (krows, vrows): (Vec<&[f64]>, Vec<&[f64]>) = (0..n).map(|s| (&k[s * d..(s + 1) * d], &v[s * d..(s + 1) * d])).unzip();
            for t in 0..n {
                let (ot, w) = self.attend(&q[t * d..(t + 1) * d], &krows[..=t], &vrows[..=t]);
                o[t * d..(t + 1) * d].copy_from_slice(&ot);
                for head in 0..nh {
                    a[(head * n + t) * n..(head * n + t) * n + t + 1].copy_from_slice(&w[head * (t + 1)..(head + 1) * (t + 1)]);
                }
            }
            let (mut nx, mut y, mut act) = (Vec::with_capacity(n * d), Vec::with_capacity(n * d), Vec::with_capacity(n * self.hidden));
            for t in 0..n {
                let (xo, yt, at) = self.mlp(theta, b, &x[t * d..(t + 1) * d], &o[t * d..(t + 1) * d]);
                nx.extend(xo);
                y.extend(yt);
                act.extend(at);
            }
            tapes.push(BlockTape { x: std::mem::replace(&mut x, nx), q, k, v, a, o, y, act });
        }
        Some((tapes, x))
    }

    /// $\ln p$ of the set `occ` (increasing); $-\infty$ for anything else.
    pub fn log_prob_of(&self, theta: &[f64], occ: &[usize]) -> f64 {
        let Some((_, h)) = self.forward(theta, occ) else { return f64::NEG_INFINITY };
        let d = self.width;
        (0..self.particles)
            .map(|t| {
                let prev = (t > 0).then(|| occ[t - 1]);
                let (range, lp) = self.log_probs(theta, &h[t * d..(t + 1) * d], t, prev);
                if range.contains(&occ[t]) { lp[occ[t] - range.start()] } else { f64::NEG_INFINITY }
            })
            .sum()
    }

    /// Adds `coef` $\partial\ln p(occ)/\partial\theta$ to `g` (full pass and backward pass).
    pub fn add_grad_of(&self, theta: &[f64], occ: &[usize], coef: f64, g: &mut [f64]) {
        let Some((tapes, h)) = self.forward(theta, occ) else { return };
        let (n, d, nh, hd, hid, m) = (self.particles, self.width, self.heads, self.width / self.heads, self.hidden, self.orbitals());
        let (wo, bo) = (self.out_offset(), self.out_offset() + d * m);
        // Read-out: d ln p / d logit_tj = delta - p over the allowed range.
        let mut xbar = vec![0.0; n * d];
        for t in 0..n {
            let prev = (t > 0).then(|| occ[t - 1]);
            let (range, lp) = self.log_probs(theta, &h[t * d..(t + 1) * d], t, prev);
            let mut lbar = vec![0.0; m];
            for (j, l) in range.clone().zip(&lp) {
                lbar[j] = coef * (if j == occ[t] { 1.0 } else { 0.0 } - l.exp());
                g[bo + j] += lbar[j];
            }
            let xb = matvec_back(&h[t * d..(t + 1) * d], &theta[wo..wo + d * m], &lbar, &mut g[wo..wo + d * m]);
            xbar[t * d..(t + 1) * d].copy_from_slice(&xb);
        }
        let scale = 1.0 / (hd as f64).sqrt();
        for l in (0..self.layers).rev() {
            let (b, tp) = (self.block(l), &tapes[l]);
            // x' = y + tanh(y W1 + b1) W2 + b2; y = x + o Wo.
            let mut ybar = xbar.clone();
            let mut obar = vec![0.0; n * d];
            for t in 0..n {
                let xb = &xbar[t * d..(t + 1) * d];
                let act = &tp.act[t * hid..(t + 1) * hid];
                for c in 0..d {
                    g[b.b2 + c] += xb[c];
                }
                let abar = matvec_back(act, &theta[b.w2..b.w2 + hid * d], xb, &mut g[b.w2..b.w2 + hid * d]);
                let ubar: Vec<f64> = abar.iter().zip(act).map(|(ab, a)| ab * (1.0 - a * a)).collect();
                for c in 0..hid {
                    g[b.b1 + c] += ubar[c];
                }
                let yb = matvec_back(&tp.y[t * d..(t + 1) * d], &theta[b.w1..b.w1 + d * hid], &ubar, &mut g[b.w1..b.w1 + d * hid]);
                for c in 0..d {
                    ybar[t * d + c] += yb[c];
                }
                let ob = matvec_back(&tp.o[t * d..(t + 1) * d], &theta[b.wo..b.wo + d * d], &ybar[t * d..(t + 1) * d], &mut g[b.wo..b.wo + d * d]);
                obar[t * d..(t + 1) * d].copy_from_slice(&ob);
            }
            // Attention: o_t = sum_s a_ts v_s per head, a_t = softmax_s (q_t . k_s / sqrt(hd)).
            let (mut qbar, mut kbar, mut vbar) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; n * d]);
            for head in 0..nh {
                let cols = head * hd..(head + 1) * hd;
                for t in 0..n {
                    let a = |s: usize| tp.a[(head * n + t) * n + s];
                    let abar: Vec<f64> = (0..=t).map(|s| cols.clone().map(|c| obar[t * d + c] * tp.v[s * d + c]).sum()).collect();
                    let mean: f64 = (0..=t).map(|s| a(s) * abar[s]).sum();
                    for s in 0..=t {
                        let sbar = a(s) * (abar[s] - mean) * scale;
                        for c in cols.clone() {
                            vbar[s * d + c] += a(s) * obar[t * d + c];
                            qbar[t * d + c] += sbar * tp.k[s * d + c];
                            kbar[s * d + c] += sbar * tp.q[t * d + c];
                        }
                    }
                }
            }
            // Residual through y, plus the three projections of x.
            let mut nxbar = ybar;
            for t in 0..n {
                let xt = &tp.x[t * d..(t + 1) * d];
                for (w, bar) in [(b.wq, &qbar), (b.wk, &kbar), (b.wv, &vbar)] {
                    let xb = matvec_back(xt, &theta[w..w + d * d], &bar[t * d..(t + 1) * d], &mut g[w..w + d * d]);
                    for c in 0..d {
                        nxbar[t * d + c] += xb[c];
                    }
                }
            }
            xbar = nxbar;
        }
        for t in 0..n {
            let token = if t == 0 { m } else { occ[t - 1] };
            for c in 0..d {
                g[token * d + c] += xbar[t * d + c];
                g[self.pos_offset() + t * d + c] += xbar[t * d + c];
            }
        }
    }
}

impl Parametrised for TransformerOccupation {
    fn n_params(&self) -> usize {
        self.out_offset() + (self.width + 1) * self.orbitals()
    }
    /// Embeddings N(0, 1/4), block weights N(0, 1/fan-in), biases and the read-out zero (or the
    /// parameters of [`TransformerOccupation::with_initial`]).
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        if let Some(t) = &self.init {
            theta.copy_from_slice(t);
            return;
        }
        let (d, h) = (self.width, self.hidden);
        let mut normal = |s: f64| -> f64 { s * rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut *rng) };
        theta.fill(0.0);
        for t in theta[..self.pos_offset() + self.particles * d].iter_mut() {
            *t = normal(0.5);
        }
        for l in 0..self.layers {
            let b = self.block(l);
            for (start, len, fan) in [(b.wq, d * d, d), (b.wk, d * d, d), (b.wv, d * d, d), (b.wo, d * d, d), (b.w1, d * h, d), (b.w2, h * d, h)] {
                for t in theta[start..start + len].iter_mut() {
                    *t = normal(1.0 / (fan as f64).sqrt());
                }
            }
        }
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("embedding", 0..self.block(0).wq), ParamGroup::new("blocks", self.block(0).wq..self.out_offset()), ParamGroup::new("readout", self.out_offset()..self.n_params())]
    }
}

impl OrbitalOccupation for TransformerOccupation {
    type Ready = Vec<f64>;
    fn beta(&self) -> f64 {
        self.beta
    }
    fn ready(&self, theta: &[f64]) -> Vec<f64> {
        theta.to_vec()
    }
    fn sample(&self, theta: &Vec<f64>, rng: &mut dyn rand::Rng) -> (Vec<usize>, f64) {
        self.sample_with(theta, rng)
    }
    fn log_prob(&self, theta: &[f64], _ready: &Vec<f64>, occupied: &[usize]) -> f64 {
        self.log_prob_of(theta, occupied)
    }
    fn add_log_prob_grad(&self, theta: &[f64], _ready: &Vec<f64>, occupied: &[usize], coef: f64, g: &mut [f64]) {
        self.add_grad_of(theta, occupied, coef, g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::NctRng;
    use rand::SeedableRng;

    fn model() -> (TransformerOccupation, Vec<f64>) {
        let e: Vec<f64> = (0..10).map(|j| 0.3 * j as f64 + 0.05 * (j % 3) as f64).collect();
        let m = TransformerOccupation::with_sizes(4, &e, 0.7, 2, 8, 2, 12).unwrap();
        let mut theta = vec![0.0; m.n_params()];
        m.init_params(&mut NctRng::seed_from_u64(4), &mut theta);
        // A trained-looking read-out, so that every part of the network matters.
        let mut rng = NctRng::seed_from_u64(5);
        for t in theta[m.out_offset()..].iter_mut() {
            *t = 0.4 * rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng);
        }
        (m, theta)
    }

    fn all_sets(m: usize, n: usize) -> Vec<Vec<usize>> {
        (0u32..1 << m).filter(|s| s.count_ones() as usize == n).map(|s| (0..m).filter(|&j| s >> j & 1 == 1).collect()).collect()
    }

    #[test]
    fn normalised_over_every_set_and_zero_elsewhere() {
        let (m, theta) = model();
        let sets = all_sets(10, 4);
        assert_eq!(sets.len(), 210);
        let total: f64 = sets.iter().map(|s| m.log_prob_of(&theta, s).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12, "sum p = {total}");
        assert_eq!(m.log_prob_of(&theta, &[3, 1, 5, 7]), f64::NEG_INFINITY);
        assert_eq!(m.log_prob_of(&theta, &[1, 2, 3]), f64::NEG_INFINITY);
        // The untrained read-out is the sequential Boltzmann prior.
        let mut fresh = vec![0.0; m.n_params()];
        m.init_params(&mut NctRng::seed_from_u64(4), &mut fresh);
        let prior = |s: &[usize]| -> f64 {
            let mut lp = 0.0;
            let mut lo = 0;
            for (t, &j) in s.iter().enumerate() {
                let hi = 10 - 4 + t;
                let z: f64 = (lo..=hi).map(|k| (-0.7 * m.energies[k]).exp()).sum();
                lp += -0.7 * m.energies[j] - z.ln();
                lo = j + 1;
            }
            lp
        };
        assert!(sets.iter().all(|s| (m.log_prob_of(&fresh, s) - prior(s)).abs() < 1e-12));
    }

    #[test]
    fn cached_sampling_matches_the_full_pass_and_the_law() {
        let (m, theta) = model();
        let mut rng = NctRng::seed_from_u64(8);
        let sets = all_sets(10, 4);
        let index: std::collections::HashMap<Vec<usize>, usize> = sets.iter().cloned().enumerate().map(|(k, s)| (s, k)).collect();
        let mut counts = vec![0usize; sets.len()];
        let draws = 40_000;
        for _ in 0..draws {
            let (s, lp) = m.sample_with(&theta, &mut rng);
            assert!((lp - m.log_prob_of(&theta, &s)).abs() < 1e-12, "{s:?}");
            counts[index[&s]] += 1;
        }
        // Chi-squared over the sets with an expected count >= 20 (the rest pooled).
        let p: Vec<f64> = sets.iter().map(|s| m.log_prob_of(&theta, s).exp()).collect();
        let (mut chi2, mut dof, mut rest_o, mut rest_e) = (0.0, 0usize, 0.0, 0.0);
        for (c, pk) in counts.iter().zip(&p) {
            let e = pk * draws as f64;
            if e >= 20.0 {
                chi2 += (*c as f64 - e).powi(2) / e;
                dof += 1;
            } else {
                rest_o += *c as f64;
                rest_e += e;
            }
        }
        chi2 += (rest_o - rest_e).powi(2) / rest_e.max(1e-300);
        // 99.9% quantile of chi-squared is below dof + 4.5 sqrt(2 dof) for these sizes.
        assert!(chi2 < dof as f64 + 4.5 * (2.0 * dof as f64).sqrt(), "chi2 {chi2} with {dof} classes");
    }

    #[test]
    fn log_prob_gradient_matches_finite_differences() {
        let (m, theta) = model();
        let occ = [1usize, 2, 6, 8];
        let mut g = vec![0.0; m.n_params()];
        m.add_grad_of(&theta, &occ, 0.8, &mut g);
        let mut worst = 0.0f64;
        for k in (0..m.n_params()).step_by(3) {
            let at = |dt: f64| {
                let mut th = theta.clone();
                th[k] += dt;
                m.log_prob_of(&th, &occ)
            };
            let fd = 0.8 * (at(1e-5) - at(-1e-5)) / 2e-5;
            worst = worst.max((fd - g[k]).abs() / (1.0 + fd.abs()));
        }
        assert!(worst < 1e-7, "worst relative error {worst:e}");
        assert!(g.iter().filter(|v| **v != 0.0).count() > m.n_params() / 2, "most parameters matter");
    }
}
