//! Progress display for long phases outside the training loop: a bar on terminals, a log line at
//! every tenth of the work elsewhere (so a run piped to a file is never silent for long), nothing
//! with `--quiet`.

use crate::progress::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The [`Progress`] of the examples' evaluation phases (see the module docs).
pub struct PhaseProgress {
    quiet: bool,
    tty: bool,
    state: Mutex<Option<Phase>>,
    done: AtomicU64,
}

struct Phase {
    what: String,
    total: u64,
    bar: Option<ProgressBar>,
    next_tenth: u64,
    t0: Instant,
}

impl PhaseProgress {
    /// `quiet`: show nothing (the `--quiet` flag).
    pub fn new(quiet: bool) -> Self {
        PhaseProgress { quiet, tty: std::io::stderr().is_terminal(), state: Mutex::new(None), done: AtomicU64::new(0) }
    }
}

impl Progress for PhaseProgress {
    fn start(&self, what: &str, total: u64) {
        if self.quiet {
            return;
        }
        self.finish();
        self.done.store(0, Ordering::Relaxed);
        let bar = self.tty.then(|| {
            let b = ProgressBar::new(total);
            b.set_style(ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}]").expect("valid template"));
            b.set_message(what.to_string());
            b
        });
        if bar.is_none() {
            eprintln!("{what}: 0/{total}");
        }
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(Phase { what: what.to_string(), total, bar, next_tenth: 1, t0: Instant::now() });
    }

    fn advance(&self, n: u64) {
        if self.quiet {
            return;
        }
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = guard.as_mut() else { return };
        match &p.bar {
            Some(b) => b.set_position(done),
            None => {
                if p.total > 0 && done * 10 >= p.next_tenth * p.total && done < p.total {
                    eprintln!("{}: {done}/{} ({:.1} s)", p.what, p.total, p.t0.elapsed().as_secs_f64());
                    p.next_tenth = done * 10 / p.total + 1;
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(p) = self.state.lock().unwrap_or_else(|e| e.into_inner()).take() {
            match p.bar {
                Some(b) => b.finish_and_clear(),
                None => eprintln!("{}: {}/{} done in {:.1} s", p.what, self.done.load(Ordering::Relaxed), p.total, p.t0.elapsed().as_secs_f64()),
            }
        }
    }
}
