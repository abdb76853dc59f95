//! Command-line flags shared by every example (flatten [`RunArgs`] into the example's own parser).

use super::RunError;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What to do when a loss or gradient becomes NaN or infinite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum OnNan {
    /// Stop with the step and the offending sample; the last good checkpoint stays.
    Stop,
    /// Reload the last good checkpoint, halve the learning rate and continue (at most 3 times).
    Rollback,
}

/// Flags every training example takes.
#[derive(Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunArgs {
    /// Number of optimisation steps (>= 1).
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// Samples per step (>= 1).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Base learning rate of Adam (> 0); it decays by a cosine schedule to 2% of this value.
    #[arg(long, default_value_t = 1e-2)]
    pub lr: f64,
    /// Seed of every random stream; the same seed gives bitwise the same run for any thread count.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run directory (config, metrics, checkpoints, summary.json, plots). Without it nothing is written.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint (model flags must match the stored config).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Replace the contents of a non-empty --out directory.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar or log lines, only the final summary.
    #[arg(long)]
    pub quiet: bool,
    /// Write a checkpoint every this many steps (>= 1), and always at the end.
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// Reaction to NaN/Inf in the loss or gradient.
    #[arg(long, value_enum, default_value_t = OnNan::Stop)]
    pub on_nan: OnNan,
    /// Worker threads (0 = all cores), per MPI rank when built with `--features mpi` and launched
    /// as `mpirun -n R target/release/examples/NAME ...` (each rank evaluates its share of every
    /// batch). Results depend on neither.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Samples used for the final free-energy / energy estimates (>= 2).
    #[arg(long, default_value_t = 20000)]
    pub eval_samples: usize,
    /// Learning-rate factor of the latent log-frequencies relative to the flow (> 0).
    #[arg(long, default_value_t = 1.0)]
    pub omega_lr_factor: f64,
    /// Stop after this step as if interrupted (for testing resume).
    #[arg(long, hide = true)]
    pub stop_at: Option<u64>,
}

/// The command-line defaults (for runs set up in code: `RunArgs { steps: 400, ..Default::default() }`).
impl Default for RunArgs {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            run: RunArgs,
        }
        <Only as clap::Parser>::parse_from(["nct"]).run
    }
}

impl RunArgs {
    /// Check ranges; the error names the flag, the value and what is allowed.
    pub fn validate(&self) -> Result<(), RunError> {
        let bad = |flag: &str, value: String, allowed: &str| Err(RunError::InvalidArg { flag: flag.into(), value, allowed: allowed.into() });
        if self.steps == 0 {
            return bad("--steps", "0".into(), "at least 1");
        }
        if self.batch == 0 {
            return bad("--batch", "0".into(), "at least 1 sample per step");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("--lr", self.lr.to_string(), "a finite learning rate > 0");
        }
        if self.checkpoint_every == 0 {
            return bad("--checkpoint-every", "0".into(), "at least 1");
        }
        if !(self.omega_lr_factor.is_finite() && self.omega_lr_factor > 0.0) {
            return bad("--omega-lr-factor", self.omega_lr_factor.to_string(), "a finite factor > 0");
        }
        if self.eval_samples < 2 {
            return bad("--eval-samples", self.eval_samples.to_string(), "at least 2");
        }
        if self.resume.is_some() && self.overwrite {
            return bad("--overwrite", "true".into(), "not together with --resume");
        }
        Ok(())
    }

    /// The run directory: `--resume DIR` wins over `--out`.
    pub fn run_dir(&self) -> Option<PathBuf> {
        self.resume.clone().or_else(|| self.out.clone())
    }

    /// Install a global rayon pool with `--threads` workers (ignored if one exists already).
    pub fn init_threads(&self) {
        if self.threads > 0 {
            let _ = rayon::ThreadPoolBuilder::new().num_threads(self.threads).build_global();
        }
    }
}

/// Flags of the RealNVP part of a flow (examples override the defaults with
/// [`parse_with_defaults`], ids `couplings` and `hidden`).
#[derive(Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetArgs {
    /// Number of RealNVP couplings (the vibrational example accepts 0: linear map only).
    #[arg(long, default_value_t = 4)]
    pub couplings: usize,
    /// Hidden widths of each coupling's MLP, comma separated (e.g. 64,64).
    #[arg(long, value_delimiter = ',', default_value = "64,64")]
    pub hidden: Vec<usize>,
}

impl NetArgs {
    /// A RealNVP with these flags; errors name the flags.
    pub fn real_nvp<N: crate::dim::Size>(&self, dim: N, masks: crate::coupling::MaskScheme, rng: &mut dyn rand::Rng) -> Result<crate::coupling::RealNvp<N>, RunError> {
        if self.hidden.iter().any(|&h| h == 0) {
            return Err(invalid("--hidden", format!("{:?}", self.hidden), "positive widths"));
        }
        crate::coupling::real_nvp::<N>(dim, self.couplings, &self.hidden, crate::activation::Activation::Tanh, masks, rng).map_err(|e| invalid("--couplings/--hidden", format!("{}/{:?}", self.couplings, self.hidden), &e.to_string()))
    }
}

impl NetArgs {
    /// A `flow!` builder error, reported against `--couplings` / `--hidden`.
    pub fn invalid(&self, e: crate::error::ConfigError) -> RunError {
        invalid("--couplings/--hidden", format!("{}/{:?}", self.couplings, self.hidden), &e.to_string())
    }
}

/// Whether `--flag` was given on this process's command line (to warn about flags that the chosen
/// configuration ignores; defaults and given values cannot be told apart after parsing).
pub fn flag_given(flag: &str) -> bool {
    std::env::args().skip(1).any(|a| a == flag || a.starts_with(&format!("{flag}=")))
}

/// Prints a warning for every given flag of `flags` that `reason` makes irrelevant.
pub fn warn_ignored(flags: &[&str], reason: &str) {
    for f in flags.iter().filter(|f| flag_given(f)) {
        eprintln!("warning: {f} is ignored {reason}");
    }
}

/// Error for a model flag out of range.
pub fn invalid(flag: &str, value: impl ToString, allowed: &str) -> RunError {
    RunError::InvalidArg { flag: flag.into(), value: value.to_string(), allowed: allowed.into() }
}

/// Parse the command line of `T`, with example-specific defaults for some flags
/// (`(flag id, default)`, e.g. `("steps", "3000")`). Exits with clap's message on bad flags.
pub fn parse_with_defaults<T: clap::Parser>(defaults: &[(&'static str, &'static str)]) -> T {
    let cli = parse_from_with_defaults(std::env::args_os(), defaults).unwrap_or_else(|e| e.exit());
    // Join the MPI job, if any (feature `mpi`); `exit_on_error` leaves it.
    crate::parallel::start();
    cli
}

/// The flags stored in `<DIR>/config.json` when `argv` has `--resume DIR`, as command-line strings
/// (enums in kebab case, lists comma separated); empty when there is no readable config.
fn stored_flags(argv: &[std::ffi::OsString]) -> Vec<(String, String)> {
    let args: Vec<String> = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let dir = args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--resume") {
        Some("") => args.get(i + 1).cloned(),
        Some(rest) => rest.strip_prefix('=').map(str::to_string),
        None => None,
    });
    let Some(dir) = dir else { return Vec::new() };
    let Ok(text) = std::fs::read_to_string(std::path::Path::new(&dir).join(super::dir::CONFIG)) else { return Vec::new() };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text) else { return Vec::new() };
    let kebab = |s: &str| {
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        }
        out
    };
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) if s.chars().next().is_some_and(char::is_uppercase) => Some(kebab(s)),
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    map.into_iter()
        .filter(|(k, _)| !["resume", "out", "overwrite", "stop_at"].contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let s = match &v {
                serde_json::Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>()?.join(","),
                other => scalar(other)?,
            };
            Some((k, s))
        })
        .collect()
}

/// [`parse_with_defaults`] on explicit arguments (the first is the program name).
pub fn parse_from_with_defaults<T: clap::Parser, I: IntoIterator<Item = S>, S: Into<std::ffi::OsString> + Clone>(argv: I, defaults: &[(&'static str, &'static str)]) -> Result<T, clap::Error> {
    // Negative values (e.g. `--temperature -3`) reach validation, which names the allowed range.
    let argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    let mut cmd = T::command().mut_args(|a| if a.get_action().takes_values() { a.allow_negative_numbers(true) } else { a });
    for &(id, v) in defaults {
        cmd = cmd.mut_arg(id, |a| a.default_value(v));
    }
    // `--resume DIR` alone: the stored configuration supplies every flag not given again (flags
    // given must still match, or be control flags; RunDir checks that).
    for (id, v) in stored_flags(&argv) {
        // Valued flags and switches (`--path-gradient`: a stored `true` becomes the default).
        if cmd.get_arguments().any(|a| a.get_id() == id.as_str() && (a.get_action().takes_values() || matches!(a.get_action(), clap::ArgAction::SetTrue))) {
            let v: &'static str = Box::leak(v.into_boxed_str());
            cmd = cmd.mut_arg(id, |a| a.default_value(v));
        }
    }
    let m = cmd.try_get_matches_from(argv)?;
    T::from_arg_matches(&m)
}

/// Which latent distribution a classical example binds its flow to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum LatentKind {
    /// Harmonic oscillators, $K = \sum_k \omega_k I_k$.
    Harmonic,
    /// Oscillators with learnable amplitude-dependent frequencies, $K = \sum_k f_k(I_k)$.
    Anharmonic,
}

/// The latent flags of the classical examples.
#[derive(Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentArgs {
    /// Latent distribution: harmonic oscillators, or oscillators whose frequency depends on their action.
    #[arg(long, value_enum, default_value_t = LatentKind::Harmonic)]
    pub latent: LatentKind,
    /// Terms per mode of the anharmonic latent's frequency function (1 to 16).
    #[arg(long, default_value_t = 8)]
    pub basis: usize,
    /// Train with the path-derivative ("sticking the landing") gradient, whose noise vanishes as the
    /// model becomes exact (one extra forward-mode pass of the flow per sample).
    #[arg(long)]
    pub path_gradient: bool,
}

impl LatentArgs {
    /// The anharmonic latent with these flags (warns that `--basis` is unused for the harmonic one).
    pub fn anharmonic<N: crate::dim::Size>(&self, dim: N, beta: f64) -> Result<crate::latent::AnharmonicOscillators<N>, RunError> {
        crate::latent::AnharmonicOscillators::new(dim, beta, self.basis).map_err(|e| match e {
            crate::error::ConfigError::Value { what: "beta", .. } => invalid("--beta", beta, &e.to_string()),
            _ => invalid("--basis", self.basis, &e.to_string()),
        })
    }
    /// Warn about `--basis` given with `--latent harmonic`.
    pub fn warn_unused(&self) {
        if self.latent == LatentKind::Harmonic {
            warn_ignored(&["--basis"], "with --latent harmonic");
        }
    }
}
