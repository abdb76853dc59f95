//! Optimisers: Adam (with decoupled weight decay, Loshchilov & Hutter, "Decoupled weight decay
//! regularization", ICLR 2019) and SGD with momentum, both with per-group learning rates.

use crate::params::ParamGroup;
use rayon::prelude::*;
use std::ops::Range;

/// A first-order optimiser over the flat parameter vector.
pub trait Optimizer {
    /// One update $\theta \leftarrow \theta - \dots$ from the gradient of the loss.
    fn step(&mut self, theta: &mut [f64], grad: &[f64]);
    fn learning_rate(&self) -> f64;
    fn set_learning_rate(&mut self, lr: f64);
}

/// What a checkpoint stores of an optimiser: its kind, learning rate, step counter and state
/// vectors (each as long as the parameters), by name.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// `adam` or `sgd`.
    pub kind: String,
    pub lr: f64,
    pub t: u64,
    pub tensors: Vec<(String, Vec<f64>)>,
}

/// An optimiser whose state goes into checkpoints (so a resumed run continues bit for bit).
pub trait Checkpointed: Optimizer + Clone {
    fn state(&self) -> OptimizerState;
    /// Restore the moments and step count (the rate groups stay those of the current run). An
    /// error names what does not fit (another optimiser kind, a missing tensor, a wrong length).
    fn restore(&mut self, state: &OptimizerState) -> Result<(), String>;
}

fn tensor<'a>(state: &'a OptimizerState, name: &str, n: usize) -> Result<&'a [f64], String> {
    let t = state.tensors.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice()).ok_or_else(|| format!("optimiser state `{name}` is missing"))?;
    if t.len() != n {
        return Err(format!("optimiser state `{name}` has {} values, the model has {n} parameters", t.len()));
    }
    Ok(t)
}

fn same_kind(state: &OptimizerState, kind: &str) -> Result<(), String> {
    if state.kind != kind {
        return Err(format!("written by the `{}` optimiser, but this run uses `{kind}` (resume with the same optimiser)", state.kind));
    }
    Ok(())
}

/// Learning-rate multipliers on parameter ranges (later entries win).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupRates {
    overrides: Vec<(Range<usize>, f64)>,
}

impl GroupRates {
    /// Multiply the learning rate of every group whose name starts with `prefix` by `factor`.
    pub fn set(&mut self, groups: &[ParamGroup], prefix: &str, factor: f64) -> usize {
        let mut n = 0;
        for g in groups.iter().filter(|g| g.name.starts_with(prefix)) {
            self.overrides.push((g.range.clone(), factor));
            n += 1;
        }
        n
    }
    fn factors(&self, n: usize) -> Vec<f64> {
        let mut f = vec![1.0; n];
        for (r, v) in &self.overrides {
            for x in &mut f[r.start.min(n)..r.end.min(n)] {
                *x = *v;
            }
        }
        f
    }
}

/// Adam / AdamW.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 for plain Adam.
    pub weight_decay: f64,
    /// First and second moment estimates and the step count (part of a checkpoint).
    pub m: Vec<f64>,
    pub v: Vec<f64>,
    pub t: u64,
    pub rates: GroupRates,
    factors: Vec<f64>,
}

impl Adam {
    pub fn new(n_params: usize, lr: f64) -> Self {
        Self { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, m: vec![0.0; n_params], v: vec![0.0; n_params], t: 0, rates: GroupRates::default(), factors: vec![1.0; n_params] }
    }
    pub fn with_weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    /// Scale the learning rate of the groups named `prefix...` by `factor`.
    pub fn with_group_rate(mut self, groups: &[ParamGroup], prefix: &str, factor: f64) -> Self {
        let mut rates = std::mem::take(&mut self.rates);
        rates.set(groups, prefix, factor);
        self.with_rates(rates)
    }
    /// Use the per-group rate factors `rates`.
    pub fn with_rates(mut self, rates: GroupRates) -> Self {
        self.factors = rates.factors(self.m.len());
        self.rates = rates;
        self
    }
}

impl Optimizer for Adam {
    fn step(&mut self, theta: &mut [f64], grad: &[f64]) {
        self.t += 1;
        let b1t = 1.0 - self.beta1.powi(self.t as i32);
        let b2t = 1.0 - self.beta2.powi(self.t as i32);
        let (beta1, beta2, eps, wd, lr0) = (self.beta1, self.beta2, self.eps, self.weight_decay, self.lr);
        let n = theta.len();
        assert!(grad.len() == n && self.m.len() == n && self.factors.len() == n, "Adam: {n} parameters, {} gradient entries, state for {}", grad.len(), self.m.len());
        // Elementwise, so blocks on rayon give the same bits for any thread count; slice zips
        // let the loop vectorise (the divisions and square roots dominate at 10^5-10^6 parameters).
        const BLOCK: usize = 1 << 14;
        theta
            .par_chunks_mut(BLOCK)
            .zip(grad.par_chunks(BLOCK))
            .zip(self.m.par_chunks_mut(BLOCK).zip(self.v.par_chunks_mut(BLOCK)))
            .zip(self.factors.par_chunks(BLOCK))
            .for_each(|(((th, g), (m, v)), f)| {
                for ((((th, &g), m), v), &f) in th.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()).zip(f) {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    let mhat = *m / b1t;
                    let vhat = *v / b2t;
                    *th -= lr0 * f * (mhat / (vhat.sqrt() + eps) + wd * *th);
                }
            });
    }
    fn learning_rate(&self) -> f64 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}

impl Checkpointed for Adam {
    fn state(&self) -> OptimizerState {
        OptimizerState { kind: "adam".into(), lr: self.lr, t: self.t, tensors: vec![("m".into(), self.m.clone()), ("v".into(), self.v.clone())] }
    }
    fn restore(&mut self, state: &OptimizerState) -> Result<(), String> {
        same_kind(state, "adam")?;
        let n = self.m.len();
        self.m = tensor(state, "m", n)?.to_vec();
        self.v = tensor(state, "v", n)?.to_vec();
        self.t = state.t;
        Ok(())
    }
}

/// Stochastic gradient descent with (heavy-ball) momentum.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub velocity: Vec<f64>,
    pub rates: GroupRates,
    factors: Vec<f64>,
}

impl Sgd {
    pub fn new(n_params: usize, lr: f64, momentum: f64) -> Self {
        Self { lr, momentum, velocity: vec![0.0; n_params], rates: GroupRates::default(), factors: vec![1.0; n_params] }
    }
    pub fn with_group_rate(mut self, groups: &[ParamGroup], prefix: &str, factor: f64) -> Self {
        let mut rates = std::mem::take(&mut self.rates);
        rates.set(groups, prefix, factor);
        self.with_rates(rates)
    }
    /// Use the per-group rate factors `rates`.
    pub fn with_rates(mut self, rates: GroupRates) -> Self {
        self.factors = rates.factors(self.velocity.len());
        self.rates = rates;
        self
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, theta: &mut [f64], grad: &[f64]) {
        for k in 0..theta.len() {
            self.velocity[k] = self.momentum * self.velocity[k] + grad[k];
            theta[k] -= self.lr * self.factors[k] * self.velocity[k];
        }
    }
    fn learning_rate(&self) -> f64 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}

impl Checkpointed for Sgd {
    fn state(&self) -> OptimizerState {
        OptimizerState { kind: "sgd".into(), lr: self.lr, t: 0, tensors: vec![("velocity".into(), self.velocity.clone())] }
    }
    fn restore(&mut self, state: &OptimizerState) -> Result<(), String> {
        same_kind(state, "sgd")?;
        self.velocity = tensor(state, "velocity", self.velocity.len())?.to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both optimisers minimise an anisotropic quadratic; a frozen group stays put.
    #[test]
    fn minimise_quadratic_and_respect_groups() {
        let a = [1.0, 10.0, 0.3];
        let grad = |x: &[f64]| -> Vec<f64> { x.iter().zip(&a).map(|(x, a)| a * (x - 1.0)).collect() };
        let groups = vec![ParamGroup::new("free", 0..2), ParamGroup::new("frozen", 2..3)];
        let mut x = vec![0.0; 3];
        let mut adam = Adam::new(3, 0.05).with_group_rate(&groups, "frozen", 0.0);
        for _ in 0..2000 {
            let g = grad(&x);
            adam.step(&mut x, &g);
        }
        assert!((x[0] - 1.0).abs() < 1e-3 && (x[1] - 1.0).abs() < 1e-3, "{x:?}");
        assert_eq!(x[2], 0.0);
        let mut y = vec![0.0; 3];
        let mut sgd = Sgd::new(3, 0.05, 0.5);
        for _ in 0..2000 {
            let g = grad(&y);
            sgd.step(&mut y, &g);
        }
        assert!(y.iter().all(|v| (v - 1.0).abs() < 1e-6), "{y:?}");
    }

    /// AdamW over more parameters than one block, on one and on three threads, equals the
    /// textbook update (Kingma & Ba; Loshchilov & Hutter) written out here, bit for bit.
    #[test]
    fn blocked_adam_is_the_textbook_update_for_any_thread_count() {
        let n = 40_000;
        let groups = vec![ParamGroup::new("a", 0..25_000), ParamGroup::new("b", 25_000..n)];
        let grad = |x: &[f64], s: usize| -> Vec<f64> { x.iter().enumerate().map(|(k, x)| (x - (k as f64 * 0.01).sin()) * (1.0 + (k % 7) as f64) + 1e-3 * s as f64).collect() };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut x = vec![0.5; n];
                let mut adam = Adam::new(n, 0.01).with_weight_decay(0.1).with_group_rate(&groups, "b", 0.3);
                for s in 0..5 {
                    let g = grad(&x, s);
                    adam.step(&mut x, &g);
                }
                x
            })
        };
        let (mut x, mut m, mut v) = (vec![0.5; n], vec![0.0; n], vec![0.0; n]);
        let (b1, b2, eps, wd) = (0.9f64, 0.999f64, 1e-8, 0.1);
        for s in 0..5 {
            let g = grad(&x, s);
            let t = (s + 1) as i32;
            for k in 0..n {
                m[k] = b1 * m[k] + (1.0 - b1) * g[k];
                v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
                let lr = 0.01 * if k >= 25_000 { 0.3 } else { 1.0 };
                x[k] -= lr * ((m[k] / (1.0 - b1.powi(t))) / ((v[k] / (1.0 - b2.powi(t))).sqrt() + eps) + wd * x[k]);
            }
        }
        for threads in [1, 3] {
            let y = run(threads);
            assert!(x.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()), "{threads} threads differ from the textbook update");
        }
    }
}
