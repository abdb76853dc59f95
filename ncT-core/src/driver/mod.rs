//! One driver for every kind of system: an [`Objective`] (what a step computes: classical
//! variational or maximum likelihood, a T = 0 ensemble of quantum states, finite temperature), an
//! [`Optimiser`] with per-group rates, and a learning-rate [`Schedule`] are separate values; the
//! [`Driver`] runs them through the run machinery (run directory, checkpoints, bitwise resume,
//! NaN/explosion policy, progress) and returns a [`Trained`] value, whose [`Summary`] writes the
//! standard `summary.json` (schema in `docs/summary.md`).
//!
//! ```text
//! let objective = Variational::new(&model, &h, args.batch);
//! let trained = Driver::new("chain8/linear", objective).run(&args, &config)?;
//! let fe = trained.objective.free_energy(&trained.theta, args.eval_samples, args.seed);
//! trained.summary().results(&fe).reference("F_exact", f_exact).write()?;
//! ```

pub mod objective;
pub mod observable;
pub mod summary;

pub use objective::{Ensemble, MaximumLikelihood, Thermal, ThermalEstimate, Variational, VariationalPerSample};
pub use observable::{Observable, ObservableValue};
pub use summary::{SCHEMA, Summary};

use crate::batch::{BatchSum, SeedStream};
use crate::optim::{Adam, GroupRates, Sgd};
use crate::params::Parametrised;
use crate::run::{ModelDescription, RunArgs, RunDir, RunError, Trainer, TrainerHooks, TrainingOutcome};
use crate::train::Schedule;
use serde::Serialize;

/// What one optimisation step computes: the summed loss and gradient of a batch, from the seeded
/// stream of the run (so the step is reproducible from `(theta, step)` alone).
pub trait Objective: Sync {
    /// The trained parameters (their count, groups and seeded initialisation).
    fn model(&self) -> &dyn Parametrised;
    /// Summed loss and gradient of step `step`.
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum;
    /// Why step `step` gave a non-finite loss, reproduced from the same seeded stream (e.g. the
    /// sample, or how many walkers were rejected). `None`: no explanation.
    fn diagnose(&self, _theta: &[f64], _step: u64, _stream: &SeedStream) -> Option<String> {
        None
    }
    /// Name of the loss in logs and plots (`F_var`, `sum_n w_n E_n`, ...).
    fn loss_name(&self) -> &str;
    /// Kind of system for the summary (`classical`, `quantum`, `quantum-thermal`).
    fn kind(&self) -> &'static str;
}

/// Per-group learning-rate factors: parameters of every group whose name starts with the prefix
/// learn at `factor` times the base rate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupRate {
    pub prefix: String,
    pub factor: f64,
}

/// The optimiser of a [`Driver`] (its state is checkpointed; a run resumes only with the same one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimiser {
    /// Adam (Kingma & Ba 2015); with `weight_decay > 0` AdamW.
    Adam { weight_decay: f64 },
    /// Stochastic gradient descent with heavy-ball momentum.
    Sgd { momentum: f64 },
}

impl Default for Optimiser {
    fn default() -> Self {
        Optimiser::Adam { weight_decay: 0.0 }
    }
}

/// A function of the objective and the parameters whose values are logged while training.
pub type Monitor<'m, O> = Box<dyn Fn(&O, &[f64]) -> Vec<ObservableValue> + 'm>;

/// Drives an [`Objective`] with Adam under a [`Schedule`].
pub struct Driver<'m, O: Objective> {
    pub name: String,
    pub objective: O,
    /// Learning-rate schedule; `None`: cosine decay over `--steps` to 2% (the examples' default).
    pub schedule: Option<Schedule>,
    pub group_rates: Vec<GroupRate>,
    /// Flags of the example that may change on resume (evaluation settings).
    pub control_flags: Vec<&'static str>,
    /// Observables logged in `metrics.jsonl` every `.0` steps (fields `NAME` and `NAME_err`).
    pub monitor: Option<(u64, Monitor<'m, O>)>,
    pub optimiser: Optimiser,
}

impl<'m, O: Objective> Driver<'m, O> {
    /// `name` identifies the model in checkpoints (a checkpoint of another name is refused).
    pub fn new(name: &str, objective: O) -> Self {
        Driver { name: name.into(), objective, schedule: None, group_rates: Vec::new(), control_flags: Vec::new(), monitor: None, optimiser: Optimiser::default() }
    }
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = Some(schedule);
        self
    }
    /// The optimiser (default: Adam).
    pub fn optimiser(mut self, optimiser: Optimiser) -> Self {
        self.optimiser = optimiser;
        self
    }
    /// Groups whose name starts with `prefix` learn at `factor` x the base rate.
    pub fn group_rate(mut self, prefix: &str, factor: f64) -> Self {
        self.group_rates.push(GroupRate { prefix: prefix.into(), factor });
        self
    }
    pub fn control_flags(mut self, flags: &[&'static str]) -> Self {
        self.control_flags.extend_from_slice(flags);
        self
    }

    /// Log observables every `every` steps: `f(objective, theta)` (e.g. a closure calling
    /// [`Variational::observe`] with a fixed seed) gives their values, written into the metrics
    /// line of the step as `NAME` and `NAME_err`.
    pub fn log_observables(mut self, every: u64, f: impl Fn(&O, &[f64]) -> Vec<ObservableValue> + 'm) -> Self {
        self.monitor = Some((every.max(1), Box::new(f)));
        self
    }

    /// Validate the flags, open the run directory (`config`: the example's whole resolved
    /// configuration), train (or resume) and return the trained state.
    pub fn run(self, args: &RunArgs, config: &impl Serialize) -> Result<Trained<O>, RunError> {
        args.validate()?;
        args.init_threads();
        let dir = RunDir::open_with_control(args, config, &self.control_flags)?;
        self.run_in(args, dir)
    }

    /// [`Driver::run`] in an already opened run directory (or none).
    pub fn run_in(self, args: &RunArgs, dir: Option<RunDir>) -> Result<Trained<O>, RunError> {
        let model = self.objective.model();
        let stream = SeedStream::new(args.seed);
        let theta = model.new_params(&mut stream.named("init"));
        let groups = model.param_groups();
        let mut trainer = Trainer::new(args, dir, ModelDescription::of(&self.name, model));
        if let Some(s) = self.schedule {
            trainer.schedule = s;
        }
        let objective = &self.objective;
        let diagnose = |th: &[f64], step: u64| objective.diagnose(th, step, &stream);
        let monitor = self.monitor.as_ref().map(|(every, f)| {
            let log = move |th: &[f64], _step: u64| f(objective, th).into_iter().flat_map(|o| [(o.name.clone(), o.mean), (format!("{}_err", o.name), o.error)]).collect::<Vec<_>>();
            (*every, Box::new(log) as Box<dyn Fn(&[f64], u64) -> Vec<(String, f64)> + '_>)
        });
        let hooks = TrainerHooks { diagnose: Some(Box::new(diagnose)), monitor };
        let batch = |th: &[f64], step: u64| objective.batch(th, step, &stream);
        let mut rates = GroupRates::default();
        for g in &self.group_rates {
            rates.set(&groups, &g.prefix, g.factor);
        }
        let outcome = match self.optimiser {
            Optimiser::Adam { weight_decay } => trainer.run(theta, Adam::new(model.n_params(), args.lr).with_weight_decay(weight_decay).with_rates(rates), batch, hooks)?,
            Optimiser::Sgd { momentum } => trainer.run(theta, Sgd::new(model.n_params(), args.lr, momentum).with_rates(rates), batch, hooks)?,
        };
        let dir = trainer.dir.take();
        Ok(Trained { name: self.name, theta: outcome.theta.clone(), outcome, dir, objective: self.objective, seed: args.seed, batch: args.batch })
    }
}

/// The state after training: parameters, the training record, the run directory and the
/// objective (for evaluation).
pub struct Trained<O: Objective> {
    pub name: String,
    pub theta: Vec<f64>,
    pub outcome: TrainingOutcome,
    pub dir: Option<RunDir>,
    pub objective: O,
    pub seed: u64,
    pub batch: usize,
}

impl<O: Objective> Trained<O> {
    /// The standard summary, pre-filled with the run's fields; add results, then
    /// [`Summary::write`].
    pub fn summary(&self) -> Summary<'_> {
        Summary::new(self.dir.as_ref(), self.objective.kind(), &self.name, self.objective.model().n_params(), self.seed, self.batch, &self.outcome)
    }

    /// The loss curve (`loss.png`/`loss.svg`) with an optional reference line.
    pub fn loss_plot(&self, title: &str, unit: &str, reference: Option<(&str, f64)>) -> Result<(), RunError> {
        let Some(d) = &self.dir else { return Ok(()) };
        let name = self.objective.loss_name();
        let ylabel = if unit.is_empty() { name.to_string() } else { format!("{name} ({unit})") };
        crate::run::plot::loss_plot(d.path(), title, name, &ylabel, &self.outcome.losses, reference)
    }
}
