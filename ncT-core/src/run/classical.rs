//! The shared driver of the classical examples: variational and maximum-likelihood training of a
//! [`ClassicalNct`], free-energy estimates, plots and the summary fields every example writes.

use super::args::RunArgs;
use super::checkpoint::ModelDescription;
use super::dir::RunDir;
use super::plot::{Series, line_plot};
use super::trainer::{Trainer, TrainerHooks, TrainingOutcome};
use super::RunError;
use crate::batch::{BatchEngine, BatchSum, SeedStream};
use crate::batched::BatchedSymplectic;
use crate::classical::{ClassicalNct, FreeEnergy};
use crate::hamiltonian::Hamiltonian;
use crate::layer::SymplecticLayer;
use crate::optim::Adam;
use crate::params::Parametrised;
use crate::dim::{Size, Vector};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Chunk size of the batch engine in every example (fixed: results do not depend on threads).
pub const CHUNK: usize = 8;

/// What a classical run produced.
pub struct ClassicalRun {
    pub dir: Option<RunDir>,
    pub theta: Vec<f64>,
    pub outcome: TrainingOutcome,
}

fn start<F: SymplecticLayer<N>, N: Size>(args: &RunArgs, config: &impl Serialize, name: &str, model: &ClassicalNct<F, N>) -> Result<(Option<RunDir>, Vec<f64>, Adam, ModelDescription), RunError> {
    args.validate()?;
    args.init_threads();
    let dir = RunDir::open(args, config)?;
    let theta = model.new_params(&mut SeedStream::new(args.seed).named("init"));
    let opt = Adam::new(theta.len(), args.lr).with_group_rate(&model.param_groups(), "log_omega", args.omega_lr_factor);
    Ok((dir, theta, opt, ModelDescription::of(name, model)))
}

/// Variational (reverse-KL) training of `model` for the Hamiltonian `h`, on the batched GEMM path;
/// the batch is cut into four fixed chunks (independent of the thread count).
pub fn train_variational<F: BatchedSymplectic<N>, H: Hamiltonian<N>, N: Size>(args: &RunArgs, config: &impl Serialize, name: &str, model: &ClassicalNct<F, N>, h: &H) -> Result<ClassicalRun, RunError> {
    let engine = BatchEngine::new(args.batch.div_ceil(4).max(1));
    variational_with(args, config, name, model, h, engine, |th, step, stream| model.variational_batch(th, h, args.batch, &engine, stream, step))
}

/// [`train_variational`] on the per-sample, scalar-generic path: for flows with custom layers that
/// have no batched kernel. Same samples and (to rounding) the same gradients.
pub fn train_variational_per_sample<F: SymplecticLayer<N>, H: Hamiltonian<N>, N: Size>(args: &RunArgs, config: &impl Serialize, name: &str, model: &ClassicalNct<F, N>, h: &H) -> Result<ClassicalRun, RunError> {
    let engine = BatchEngine::new(args.batch.div_ceil(4).max(1));
    variational_with(args, config, name, model, h, engine, |th, step, stream| engine.loss_and_grad(args.batch, th.len(), stream, step, |_, rng, g| model.variational_sample(th, h, rng, g).loss))
}

fn variational_with<F: SymplecticLayer<N>, H: Hamiltonian<N>, N: Size>(args: &RunArgs, config: &impl Serialize, name: &str, model: &ClassicalNct<F, N>, h: &H, engine: BatchEngine, batch_fn: impl Fn(&[f64], u64, &SeedStream) -> BatchSum) -> Result<ClassicalRun, RunError> {
    let (dir, theta, opt, desc) = start(args, config, name, model)?;
    let stream = SeedStream::new(args.seed);
    let batch = args.batch;
    let mut trainer = Trainer::new(args, dir, desc);
    let diagnose = move |th: &[f64], step: u64| -> Option<String> {
        let found = engine.map(batch, &stream, step, |i, rng| {
            let mut g = vec![0.0; th.len()];
            let z = model.base.sample(model.split(th).1, &mut rng.clone());
            let s = model.variational_sample(th, h, rng, &mut g);
            (i, z, s.loss, g.iter().all(|v| v.is_finite()))
        });
        found.into_iter().find(|(_, _, l, ok)| !l.is_finite() || !ok).map(|(i, z, l, _)| format!("sample {i} of the batch (latent Q = {:?}, P = {:?}; loss {l})", z.q.as_slice(), z.p.as_slice()))
    };
    let outcome = trainer.run(theta, opt, |th, step| batch_fn(th, step, &stream), TrainerHooks { diagnose: Some(Box::new(diagnose)) })?;
    Ok(ClassicalRun { dir: trainer.dir, theta: outcome.theta.clone(), outcome })
}

/// Maximum-likelihood training on configurations `train` (momenta drawn from Maxwell-Boltzmann
/// with `masses` every batch).
pub fn train_mle<F: SymplecticLayer<N>, N: Size>(args: &RunArgs, config: &impl Serialize, name: &str, model: &ClassicalNct<F, N>, train: &[Vector<f64, N>], masses: &Vector<f64, N>, jitter: f64) -> Result<ClassicalRun, RunError> {
    let (dir, theta, opt, desc) = start(args, config, name, model)?;
    let engine = BatchEngine::new(CHUNK);
    let stream = SeedStream::new(args.seed);
    let mut trainer = Trainer::new(args, dir, desc);
    let outcome = trainer.run(theta, opt, |th, step| model.mle_batch(th, train, masses, jitter, args.batch, &engine, &stream, step), TrainerHooks::default())?;
    Ok(ClassicalRun { dir: trainer.dir, theta: outcome.theta.clone(), outcome })
}

/// Free-energy estimates with `--eval-samples` fresh samples (a stream separate from training).
pub fn estimate<F: SymplecticLayer<N>, H: Hamiltonian<N>, N: Size>(args: &RunArgs, model: &ClassicalNct<F, N>, h: &H, theta: &[f64]) -> FreeEnergy {
    model.free_energy(theta, h, args.eval_samples, &BatchEngine::new(CHUNK), &SeedStream::new(args.seed ^ 0x5eed_e7a1), u64::MAX)
}

/// The summary fields every classical example writes.
pub fn summary<F: SymplecticLayer<N>, N: Size>(args: &RunArgs, model: &ClassicalNct<F, N>, run: &ClassicalRun, fe: Option<&FreeEnergy>, f_exact: Option<f64>) -> Map<String, Value> {
    let mut m = Map::new();
    let num = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
    m.insert("F_var".into(), fe.map_or(Value::Null, |f| num(f.f_var)));
    m.insert("F_var_err".into(), fe.map_or(Value::Null, |f| num(f.f_var_err)));
    m.insert("F_is".into(), fe.map_or(Value::Null, |f| num(f.f_is)));
    m.insert("ess".into(), fe.map_or(Value::Null, |f| num(f.ess)));
    m.insert("eval_samples".into(), json!(fe.map_or(0, |f| f.samples)));
    m.insert("F_exact".into(), f_exact.map_or(Value::Null, num));
    m.insert("beta".into(), json!(model.beta()));
    m.insert("omega".into(), json!(model.frequencies(&run.theta)));
    m.insert("steps".into(), json!(run.outcome.steps_done));
    m.insert("batch".into(), json!(args.batch));
    m.insert("n_params".into(), json!(model.n_params()));
    m.insert("seconds".into(), json!(run.outcome.seconds));
    m.insert("seed".into(), json!(args.seed));
    m.insert("interrupted".into(), json!(run.outcome.interrupted));
    m.insert("rollbacks".into(), json!(run.outcome.rollbacks));
    m
}

/// Loss curve (with the exact value as a line) and learned vs exact frequencies.
pub fn plots<F: SymplecticLayer<N>, N: Size>(run: &ClassicalRun, model: &ClassicalNct<F, N>, loss_name: &str, exact: Option<(&str, f64)>, omega_exact: Option<&[f64]>) -> Result<(), RunError> {
    let Some(dir) = &run.dir else { return Ok(()) };
    super::plot::loss_plot(dir.path(), "Training loss", loss_name, loss_name, &run.outcome.losses, exact)?;
    let w = model.frequencies(&run.theta);
    let mut series = vec![Series { name: "learned".into(), points: w.iter().enumerate().map(|(k, &v)| (k as f64 + 1.0, v)).collect(), markers: true }];
    if let Some(we) = omega_exact {
        series.push(Series { name: "exact".into(), points: we.iter().enumerate().map(|(k, &v)| (k as f64 + 1.0, v)).collect(), markers: false });
    }
    line_plot(dir.path(), "frequencies", "Latent frequencies (slowest first)", "mode k", "omega_k (1 / model time unit)", &series, None, None)
}

/// Running mean over a centred window of `w` points.
/// Print a one-screen human summary.
pub fn print_summary(title: &str, m: &Map<String, Value>, dir: Option<&RunDir>) {
    println!("== {title}");
    for k in ["F_var", "F_var_err", "F_is", "F_exact", "ess", "steps", "seconds"] {
        if let Some(v) = m.get(k) {
            println!("  {k:10} {v}");
        }
    }
    if let Some(Value::Array(w)) = m.get("omega") {
        let s: Vec<String> = w.iter().take(8).map(|v| format!("{:.4}", v.as_f64().unwrap_or(f64::NAN))).collect();
        println!("  omega      [{}{}]", s.join(", "), if w.len() > 8 { ", ..." } else { "" });
    }
    if let Some(d) = dir {
        println!("  run dir    {}", d.path().display());
    }
}
