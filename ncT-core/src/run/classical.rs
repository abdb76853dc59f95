//! The shared driver of the classical examples: variational and maximum-likelihood training of a
//! [`ClassicalNct`], free-energy estimates, plots and the summary fields every example writes.

use super::args::RunArgs;
use super::dir::RunDir;
use super::plot::{Series, line_plot};
use super::trainer::TrainingOutcome;
use super::RunError;
use crate::driver::{Driver, MaximumLikelihood, Objective, Summary, Variational, VariationalPerSample};
use crate::batched::BatchedSymplectic;
use crate::classical::{ClassicalNct, FreeEnergy};
use crate::hamiltonian::Hamiltonian;
use crate::latent::Latent;
use crate::layer::SymplecticLayer;
use crate::params::Parametrised;
use crate::dim::{Size, Vector};
use serde::Serialize;
use serde_json::{Map, Value};

/// Chunk size of the batch engine in every example (fixed: results do not depend on threads).
pub const CHUNK: usize = 8;

/// What a classical run produced.
pub struct ClassicalRun {
    /// The model's name (checkpoints, summary).
    pub name: String,
    pub dir: Option<RunDir>,
    pub theta: Vec<f64>,
    pub outcome: TrainingOutcome,
}

fn classical<O: Objective>(args: &RunArgs, config: &impl Serialize, name: &str, objective: O) -> Result<ClassicalRun, RunError> {
    let t = Driver::new(name, objective).group_rate("log_omega", args.omega_lr_factor).group_rate("anharmonic", args.omega_lr_factor).run(args, config)?;
    Ok(ClassicalRun { name: t.name, dir: t.dir, theta: t.theta, outcome: t.outcome })
}

/// Variational (reverse-KL) training of `model` for the Hamiltonian `h`, on the batched GEMM path;
/// the batch is cut into four fixed chunks (independent of the thread count). The driver with
/// the [`Variational`] objective, the latent log-frequencies at `--omega-lr-factor`.
pub fn train_variational<F: BatchedSymplectic<N>, H: Hamiltonian<N>, N: Size, B: Latent<N>>(args: &RunArgs, config: &impl Serialize, name: &str, model: &ClassicalNct<F, N, B>, h: &H) -> Result<ClassicalRun, RunError> {
    classical(args, config, name, Variational::new(model, h, args.batch))
}

/// [`train_variational`] on the per-sample, scalar-generic path: for flows with custom layers that
/// have no batched kernel. Same samples and (to rounding) the same gradients.
pub fn train_variational_per_sample<F: SymplecticLayer<N>, H: Hamiltonian<N>, N: Size, B: Latent<N>>(args: &RunArgs, config: &impl Serialize, name: &str, model: &ClassicalNct<F, N, B>, h: &H) -> Result<ClassicalRun, RunError> {
    classical(args, config, name, VariationalPerSample::new(model, h, args.batch))
}

/// Maximum-likelihood training on configurations `train` (momenta drawn from Maxwell-Boltzmann
/// with `masses` every batch).
pub fn train_mle<F: SymplecticLayer<N>, N: Size, B: Latent<N>>(args: &RunArgs, config: &impl Serialize, name: &str, model: &ClassicalNct<F, N, B>, train: &[Vector<f64, N>], masses: &Vector<f64, N>, jitter: f64) -> Result<ClassicalRun, RunError> {
    classical(args, config, name, MaximumLikelihood::new(model, train, masses.clone(), jitter, args.batch))
}

/// Free-energy estimates with `--eval-samples` fresh samples (a stream separate from training).
pub fn estimate<F: SymplecticLayer<N>, H: Hamiltonian<N>, N: Size, B: Latent<N>>(args: &RunArgs, model: &ClassicalNct<F, N, B>, h: &H, theta: &[f64]) -> FreeEnergy {
    Variational::new(model, h, args.batch).free_energy(theta, args.eval_samples, args.seed)
}

/// The summary every classical example writes: the standard fields of [`crate::driver::Summary`]
/// (schema `nct.summary/1`), the free energies, `F_exact`, `beta`, `omega` and `eval_samples`.
pub fn summary<F: SymplecticLayer<N>, N: Size, B: Latent<N>>(args: &RunArgs, model: &ClassicalNct<F, N, B>, run: &ClassicalRun, fe: Option<&FreeEnergy>, f_exact: Option<f64>) -> Map<String, Value> {
    let mut s = Summary::new(None, "classical", &run.name, model.n_params(), args.seed, args.batch, &run.outcome);
    s = match fe {
        Some(fe) => s.free_energy(fe),
        None => s.insert("F_var", Value::Null).insert("F_var_err", Value::Null).insert("F_is", Value::Null).insert("ess", Value::Null).insert("eval_samples", 0),
    };
    let s = s.reference("F_exact", f_exact).insert("beta", model.beta()).insert("omega", model.frequencies(&run.theta));
    match s.into_value() {
        Value::Object(m) => m,
        _ => unreachable!("a summary is a JSON object"),
    }
}

/// Loss curve (with the exact value as a line) and learned vs exact frequencies.
pub fn plots<F: SymplecticLayer<N>, N: Size, B: Latent<N>>(run: &ClassicalRun, model: &ClassicalNct<F, N, B>, loss_name: &str, exact: Option<(&str, f64)>, omega_exact: Option<&[f64]>) -> Result<(), RunError> {
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
