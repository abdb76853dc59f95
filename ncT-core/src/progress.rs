//! Progress of long phases outside the training loop (evaluation of many states, Ritz sampling and
//! its jackknife solves), reported through a [`Progress`] value the caller chooses.
//!
//! Library code only counts work items; what is shown is up to the implementation:
//! [`NoProgress`] shows nothing, [`crate::run::progress::PhaseProgress`] draws a bar on terminals
//! and writes a log line every tenth of the work elsewhere. Progress never changes a result.

/// Receives the size of each phase and the work done in it. Called from worker threads.
pub trait Progress: Sync {
    /// A new phase named `what` with `total` work items begins.
    fn start(&self, what: &str, total: u64);
    /// `n` more work items of the current phase are done.
    fn advance(&self, n: u64);
    /// The current phase is finished.
    fn finish(&self);
}

/// Shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
