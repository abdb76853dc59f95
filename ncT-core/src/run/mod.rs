//! Runs people can trust and read: shared command-line flags, a run directory (resolved config,
//! metrics log, checkpoints, summary, plots), atomic checkpoints with bitwise resume, progress
//! display, and rollback on NaN/Inf.
//!
//! Layout of a run directory:
//! ```text
//! DIR/config.json        resolved configuration (enough to rerun)
//! DIR/metrics.jsonl      one JSON object per step: step, loss, grad_norm, lr, seconds (+ estimates)
//! DIR/checkpoint.safetensors   last good checkpoint (see [`checkpoint`])
//! DIR/summary.json       final numbers (each example documents its fields)
//! DIR/*.png, DIR/*.svg   plots
//! ```

pub mod args;
pub mod atomic;
pub mod checkpoint;
pub mod classical;
pub mod dir;
pub mod plot;
pub mod progress;
pub mod report;
pub mod trainer;

pub use args::{LatentArgs, LatentKind, NetArgs, OnNan, RunArgs, flag_given, invalid, parse_from_with_defaults, parse_with_defaults, warn_ignored};
pub use checkpoint::{Checkpoint, ModelDescription};
pub use dir::RunDir;
pub use progress::PhaseProgress;
pub use trainer::{Trainer, TrainerHooks, TrainingOutcome};

use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong in a run, with the file, field or value that caused it.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("invalid value for {flag}: {value} ({allowed})")]
    InvalidArg { flag: String, value: String, allowed: String },
    #[error("run directory {path} is not empty: pass --resume {path} to continue it or --overwrite to start again")]
    NonEmptyDir { path: PathBuf },
    #[error("run directory {path} is in use by pid {pid} (another process is training in it); wait for it to finish or choose another --out")]
    Locked { path: PathBuf, pid: String },
    #[error("cannot resume {path}: {why}")]
    NoRun { path: PathBuf, why: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, #[source] source: std::io::Error },
    #[error("checkpoint {path}: {why}")]
    Checkpoint { path: PathBuf, why: String },
    #[error("checkpoint {path} belongs to another model: it describes {found}, this run is {expected}")]
    ModelMismatch { path: PathBuf, expected: String, found: String },
    #[error("config {path}: field `{field}` differs from the run being resumed ({stored} stored, {given} given)")]
    ConfigMismatch { path: PathBuf, field: String, stored: String, given: String },
    #[error("step {step}: non-finite {what} (value {value}){sample}; the run directory keeps the last good checkpoint")]
    NonFinite { step: u64, what: String, value: f64, sample: String },
    #[error("{file}: {why}")]
    Data { file: PathBuf, why: String },
    /// A data error that already names its file and field (e.g. a loader's error).
    #[error("{0}")]
    Input(String),
    #[error("{what}: {why}; no result was written to summary.json")]
    NoEstimate { what: String, why: String },
    #[error("plot {path}: {why}")]
    Plot { path: PathBuf, why: String },
}

/// Print a run error and exit with status 2 (the `main` of every example). Over MPI an error on
/// any rank names the rank and aborts the whole job; success leaves the job cleanly.
pub fn exit_on_error(result: Result<(), RunError>) {
    if let Err(e) = result {
        eprintln!("error: {}{e}", crate::parallel::rank_prefix());
        crate::parallel::finish(2);
        std::process::exit(2);
    }
    crate::parallel::finish(0);
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RunError {
    let path = path.into();
    move |source| RunError::Io { path, source }
}
