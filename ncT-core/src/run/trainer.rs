//! The training loop of a run: checkpoints every K steps and at the end, resume from the last
//! checkpoint (bitwise identical to an uninterrupted run), NaN/Inf detection with stop or rollback,
//! a progress bar on terminals and plain log lines elsewhere.

use super::args::{OnNan, RunArgs};
use super::checkpoint::{Checkpoint, ModelDescription};
use super::dir::RunDir;
use super::RunError;
use crate::batch::BatchSum;
use crate::optim::Checkpointed;
use crate::train::Schedule;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::time::Instant;

/// Most rollbacks before a run stops anyway.
pub const MAX_ROLLBACKS: u32 = 3;

/// A loss above `best + EXPLOSION_FACTOR * (1 + |best|)` counts as diverged.
pub const EXPLOSION_FACTOR: f64 = 1e6;

/// Optional callbacks of [`Trainer::run`].
pub struct TrainerHooks<'a> {
    /// Describe the sample that made step `step` non-finite (reproduced from the seeded streams).
    pub diagnose: Option<Box<dyn Fn(&[f64], u64) -> Option<String> + 'a>>,
    /// Extra fields of the metrics line every `.0` steps (e.g. observables), computed from the
    /// parameters before the step's update; they must depend only on `(theta, step)` and seeded
    /// streams, so a resumed run logs them bit for bit.
    pub monitor: Option<(u64, Box<dyn Fn(&[f64], u64) -> Vec<(String, f64)> + 'a>)>,
}

impl Default for TrainerHooks<'_> {
    fn default() -> Self {
        Self { diagnose: None, monitor: None }
    }
}

/// Result of a (possibly interrupted) training run.
#[derive(Clone, Debug)]
pub struct TrainingOutcome {
    pub theta: Vec<f64>,
    /// Steps completed (including those before a resume).
    pub steps_done: u64,
    /// `(step, loss)` of every step of this invocation and of the resumed-from run (from the log).
    pub losses: Vec<(u64, f64)>,
    pub interrupted: bool,
    pub rollbacks: u32,
    pub resumed_from: Option<u64>,
    /// Training seconds of the whole run: earlier segments (up to the checkpoint resumed from)
    /// plus this invocation.
    pub seconds: f64,
}

/// Put the state of a checkpoint into the parameters and the optimiser (its moments and step count;
/// the learning-rate groups stay those of the current run).
fn restore<O: Checkpointed>(ck: Checkpoint, path: &std::path::Path, theta: &mut Vec<f64>, opt: &mut O) -> Result<(), RunError> {
    opt.restore(&ck.optimizer).map_err(|why| RunError::Checkpoint { path: path.into(), why })?;
    *theta = ck.theta;
    Ok(())
}

/// Drives one run.
pub struct Trainer<'a> {
    pub args: &'a RunArgs,
    pub dir: Option<RunDir>,
    pub model: ModelDescription,
    pub schedule: Schedule,
}

impl<'a> Trainer<'a> {
    pub fn new(args: &'a RunArgs, dir: Option<RunDir>, model: ModelDescription) -> Self {
        Self { args, dir, model, schedule: Schedule::Cosine { total: args.steps, min_factor: 0.02 } }
    }

    fn checkpoint<O: Checkpointed>(&self, theta: &[f64], opt: &O, step: u64, lr_factor: f64, rollbacks: u32) -> Checkpoint {
        Checkpoint { model: self.model.clone(), step, seed: self.args.seed, theta: theta.to_vec(), optimizer: opt.state(), lr_factor, rollbacks, schedule: Some(self.schedule) }
    }

    fn save(&mut self, ck: &Checkpoint) -> Result<(), RunError> {
        if let Some(d) = self.dir.as_mut().filter(|d| d.writes()) {
            d.flush()?;
            ck.save(&d.checkpoint_path())?;
        }
        Ok(())
    }

    /// Train from `theta` with the optimiser `opt` (or from the checkpoint when resuming).
    pub fn run<O: Checkpointed>(&mut self, mut theta: Vec<f64>, mut opt: O, mut batch: impl FnMut(&[f64], u64) -> BatchSum, hooks: TrainerHooks<'_>) -> Result<TrainingOutcome, RunError> {
        let t0 = Instant::now();
        let mut start = 0;
        let mut lr_factor = 1.0;
        let mut rollbacks = 0;
        let mut resumed_from = None;
        let mut losses = Vec::new();
        let mut earlier = 0.0;
        if let Some(d) = self.dir.as_mut() {
            if d.is_resumed() {
                let ck = Checkpoint::load(&d.checkpoint_path(), &self.model)?;
                // The checkpoint must be this run's: same seed, and the run's metrics reach its step
                // (metrics are flushed before every checkpoint; they may run ahead after a kill).
                let cpath = d.checkpoint_path();
                if ck.seed != self.args.seed {
                    return Err(RunError::Checkpoint { path: cpath, why: format!("written with --seed {}, but this run has --seed {}: it belongs to another run", ck.seed, self.args.seed) });
                }
                let logged = d.read_metrics()?.iter().filter_map(|r| r.get("step").and_then(Value::as_u64)).max().map_or(0, |m| m + 1);
                if logged < ck.step {
                    return Err(RunError::Checkpoint { path: cpath, why: format!("at step {}, but this run's metrics.jsonl ends after {logged} steps: the checkpoint belongs to another run", ck.step) });
                }
                // The schedule keeps the plan the run started with; a changed --steps extends or
                // shortens the run, it does not re-plan the decay.
                if let Some(planned) = ck.schedule.filter(|s| *s != self.schedule) {
                    if !self.args.quiet && crate::parallel::is_root() {
                        eprintln!("note: {}: the run was planned with a {}; this invocation asks for a {} (--steps {}). The run keeps its plan{}, so it equals an uninterrupted run with the original flags followed by the extra steps; start a new run to re-plan the schedule", cpath.display(), planned.describe(), self.schedule.describe(), self.args.steps, match planned { Schedule::Cosine { total, min_factor } if self.args.steps > total => format!(" (after step {total} the rate stays at {min_factor} of the base rate)"), _ => String::new() });
                    }
                    self.schedule = planned;
                }
                start = ck.step;
                lr_factor = ck.lr_factor;
                rollbacks = ck.rollbacks;
                resumed_from = Some(ck.step);
                restore(ck, &cpath, &mut theta, &mut opt)?;
                d.truncate_metrics(start)?;
                // (Steps from `start` on are dropped here too: over MPI the other ranks may read
                // the metrics before rank 0 has truncated them.)
                for r in d.read_metrics()?.into_iter().filter(|r| r.get("step").and_then(Value::as_u64).is_some_and(|s| s < start)) {
                    if let (Some(s), Some(l)) = (r.get("step").and_then(Value::as_u64), r.get("loss").and_then(Value::as_f64)) {
                        losses.push((s, l));
                    }
                    // Seconds count the whole run: continue from the last kept step's time.
                    earlier = r.get("seconds").and_then(Value::as_f64).unwrap_or(earlier);
                }
            } else {
                let ck = self.checkpoint(&theta, &opt, 0, 1.0, 0);
                self.save(&ck)?;
            }
        }
        let total = self.args.steps;
        // Over MPI only rank 0 reports progress.
        let quiet = self.args.quiet || !crate::parallel::is_root();
        let tty = std::io::stderr().is_terminal() && !quiet;
        let bar = if tty {
            let b = ProgressBar::new(total);
            b.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}").expect("valid template"));
            b.set_position(start);
            Some(b)
        } else {
            None
        };
        let log_every = (total / 20).max(1);
        let lowest = |l: &[(u64, f64)]| l.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        let mut best = lowest(&losses);
        let mut step = start;
        let mut interrupted = false;
        while step < total {
            if self.args.stop_at.is_some_and(|s| step >= s) {
                interrupted = true;
                break;
            }
            let (loss, grad) = batch(&theta, step).mean();
            // An exploding loss (a million times worse than the best so far) is treated like NaN:
            // rollbacks that "recover" into such a state must not end in a result.
            let bad = if !loss.is_finite() {
                Some(("loss".to_string(), loss))
            } else if best.is_finite() && loss - best > EXPLOSION_FACTOR * (1.0 + best.abs()) {
                Some((format!("loss: it exploded from the best value {best:.6e} so far (lower --lr)"), loss))
            } else {
                grad.iter().enumerate().find(|(_, g)| !g.is_finite()).map(|(k, g)| (format!("gradient component {k}"), *g))
            };
            if let Some((what, value)) = bad {
                let can_roll = self.args.on_nan == OnNan::Rollback && rollbacks < MAX_ROLLBACKS && self.dir.is_some();
                if can_roll {
                    let d = self.dir.as_mut().expect("checked");
                    let ck = Checkpoint::load(&d.checkpoint_path(), &self.model)?;
                    let back_to = ck.step;
                    rollbacks += 1;
                    lr_factor = ck.lr_factor * 0.5;
                    restore(ck, &d.checkpoint_path(), &mut theta, &mut opt)?;
                    d.truncate_metrics(back_to)?;
                    losses.retain(|(s, _)| *s < back_to);
                    best = lowest(&losses);
                    let msg = format!("step {step}: non-finite {what}; rolled back to step {back_to} and halved the learning rate (rollback {rollbacks} of {MAX_ROLLBACKS})");
                    match &bar {
                        Some(b) => b.println(msg),
                        None if !quiet => eprintln!("{msg}"),
                        None => {}
                    }
                    step = back_to;
                    continue;
                }
                if let Some(b) = &bar {
                    b.abandon();
                }
                let sample = hooks.diagnose.as_ref().and_then(|f| f(&theta, step)).map(|s| format!(", caused by {s}")).unwrap_or_default();
                return Err(RunError::NonFinite { step, what, value, sample });
            }
            let lr = self.args.lr * self.schedule.factor(step) * lr_factor;
            // Monitored values belong to the parameters of this step's loss: taken before the update.
            let monitored = match (&hooks.monitor, &self.dir) {
                (Some((every, f)), Some(_)) if step % (*every).max(1) == 0 => f(&theta, step),
                _ => Vec::new(),
            };
            opt.set_learning_rate(lr);
            opt.step(&mut theta, &grad);
            let grad_norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
            losses.push((step, loss));
            best = best.min(loss);
            if let Some(d) = self.dir.as_mut() {
                let mut record = json!({"step": step, "loss": loss, "grad_norm": grad_norm, "lr": lr, "seconds": earlier + t0.elapsed().as_secs_f64()});
                if let Some(m) = record.as_object_mut() {
                    for (k, v) in monitored {
                        m.insert(k, if v.is_finite() { json!(v) } else { Value::Null });
                    }
                }
                d.log(&record)?;
            }
            step += 1;
            if let Some(b) = &bar {
                b.set_position(step);
                b.set_message(format!("loss {loss:.6}"));
            } else if !quiet && (step % log_every == 0 || step == total) {
                eprintln!("step {step}/{total}  loss {loss:.6}  |grad| {grad_norm:.3e}  lr {lr:.2e}  {:.1}s", t0.elapsed().as_secs_f64());
            }
            if step % self.args.checkpoint_every == 0 || step == total {
                let ck = self.checkpoint(&theta, &opt, step, lr_factor, rollbacks);
                self.save(&ck)?;
            }
        }
        if interrupted {
            let ck = self.checkpoint(&theta, &opt, step, lr_factor, rollbacks);
            self.save(&ck)?;
        }
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        Ok(TrainingOutcome { theta, steps_done: step, losses, interrupted, rollbacks, resumed_from, seconds: earlier + t0.elapsed().as_secs_f64() })
    }
}
