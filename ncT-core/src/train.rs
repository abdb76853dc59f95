//! The training loop shared by every objective: batch gradient, non-finite detection (the
//! parameters are left untouched when a loss or gradient is NaN/Inf), learning-rate schedule,
//! optimiser step, observer callback.

use crate::batch::BatchSum;
use crate::optim::Optimizer;
use thiserror::Error;

/// Learning-rate schedule, as a factor of the base rate. A value: it is stored in every
/// checkpoint ([`Schedule::encode`]) so a resumed run keeps the plan it started with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// $\max(\gamma^{step / every}, floor)$ (continuous).
    Exponential { gamma: f64, every: u64, floor: f64 },
    /// Cosine decay from 1 to `min_factor` over `total` steps, then constant at `min_factor`.
    Cosine { total: u64, min_factor: f64 },
}

impl Schedule {
    pub fn factor(&self, step: u64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Exponential { gamma, every, floor } => gamma.powf(step as f64 / every.max(1) as f64).max(floor),
            Schedule::Cosine { total, min_factor } => {
                let t = (step as f64 / total.max(1) as f64).min(1.0);
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    /// Exact text form (floats as the hex of their bits): `constant`, `cosine:TOTAL:MIN`,
    /// `exponential:GAMMA:EVERY:FLOOR`.
    pub fn encode(&self) -> String {
        let b = |x: f64| format!("{:016x}", x.to_bits());
        match *self {
            Schedule::Constant => "constant".into(),
            Schedule::Cosine { total, min_factor } => format!("cosine:{total}:{}", b(min_factor)),
            Schedule::Exponential { gamma, every, floor } => format!("exponential:{}:{every}:{}", b(gamma), b(floor)),
        }
    }

    /// Inverse of [`Schedule::encode`]; `None` for anything else.
    pub fn decode(s: &str) -> Option<Schedule> {
        let f = |x: &str| u64::from_str_radix(x, 16).ok().map(f64::from_bits);
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["constant"] => Some(Schedule::Constant),
            ["cosine", total, m] => Some(Schedule::Cosine { total: total.parse().ok()?, min_factor: f(m)? }),
            ["exponential", g, every, floor] => Some(Schedule::Exponential { gamma: f(g)?, every: every.parse().ok()?, floor: f(floor)? }),
            _ => None,
        }
    }

    /// In words, for messages.
    pub fn describe(&self) -> String {
        match *self {
            Schedule::Constant => "constant".into(),
            Schedule::Cosine { total, min_factor } => format!("cosine decay over {total} steps to {min_factor} of the base rate"),
            Schedule::Exponential { gamma, every, floor } => format!("exponential decay by {gamma} every {every} steps, floor {floor}"),
        }
    }
}

/// What the observer sees after each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub step: u64,
    /// Mean loss of the batch (before the update).
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum TrainError {
    #[error("step {step}: non-finite {what} (value {value}); parameters were not updated")]
    NonFinite { step: u64, what: String, value: f64 },
}

/// Run steps `start..end`. `batch(theta, step)` returns the summed loss and gradient; the mean is
/// taken here. Stops with [`TrainError::NonFinite`] before applying a bad update.
pub fn run_steps<O: Optimizer>(
    theta: &mut [f64],
    opt: &mut O,
    base_lr: f64,
    schedule: Schedule,
    start: u64,
    end: u64,
    mut batch: impl FnMut(&[f64], u64) -> BatchSum,
    mut observe: impl FnMut(&StepStats, &[f64]),
) -> Result<(), TrainError> {
    for step in start..end {
        let (loss, grad) = batch(theta, step).mean();
        if !loss.is_finite() {
            return Err(TrainError::NonFinite { step, what: "loss".into(), value: loss });
        }
        if let Some((k, g)) = grad.iter().enumerate().find(|(_, g)| !g.is_finite()) {
            return Err(TrainError::NonFinite { step, what: format!("gradient component {k}"), value: *g });
        }
        let lr = base_lr * schedule.factor(step);
        opt.set_learning_rate(lr);
        opt.step(theta, &grad);
        let grad_norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        observe(&StepStats { step, loss, grad_norm, lr }, theta);
    }
    Ok(())
}
