//! Comparing runs: read any number of run directories (their `summary.json` in the standard schema,
//! `config.json` and `metrics.jsonl`), print one table, and draw all their loss curves into one
//! plot. The library side of the `nct-report` binary.

use super::RunError;
use super::dir::{CONFIG, METRICS, SUMMARY, read_metrics_file};
use super::plot::{Series, line_plot};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What one run directory holds.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub path: PathBuf,
    /// `None` while a run is in progress, or when it stopped without a result.
    pub summary: Option<Value>,
    pub config: Option<Value>,
    /// `(step, loss)` of every logged step.
    pub losses: Vec<(u64, f64)>,
}

/// The headline result of a summary, with its error and name: `F_var` (classical), the ground
/// state `zpe` / `energies[0]` (quantum), `F` (finite temperature), or the `valid_nll` of a
/// maximum-likelihood run.
pub fn headline(s: &Value) -> Option<(&'static str, f64, Option<f64>)> {
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    let first = |k: &str| s.get(k).and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_f64);
    if let Some(v) = num("F_var") {
        return Some(("F_var", v, num("F_var_err")));
    }
    if let Some(v) = num("F") {
        return Some(("F", v, num("F_err")));
    }
    if let Some(v) = num("zpe").or_else(|| first("energies")) {
        return Some(("E_0", v, first("energies_err")));
    }
    num("valid_nll").map(|v| ("valid_nll", v, num("valid_nll_err")))
}

/// The reference the headline compares with, where the summary has one.
pub fn reference(s: &Value) -> Option<f64> {
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    let first = |k: &str| s.get(k).and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_f64);
    num("F_exact").or_else(|| first("reference")).or_else(|| first("dvr"))
}

/// Read a run directory; an error names the file that is missing or malformed.
pub fn read_run(path: &Path) -> Result<RunRecord, RunError> {
    if !path.is_dir() {
        return Err(RunError::NoRun { path: path.into(), why: "not a directory".into() });
    }
    let json = |name: &str| -> Result<Option<Value>, RunError> {
        let p = path.join(name);
        match std::fs::read_to_string(&p) {
            Err(_) => Ok(None),
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| RunError::Data { file: p, why: format!("not valid JSON ({e})") }),
        }
    };
    let config = json(CONFIG)?;
    if config.is_none() && !path.join(METRICS).exists() {
        return Err(RunError::NoRun { path: path.into(), why: format!("neither {CONFIG} nor {METRICS} in it: not an ncT run directory") });
    }
    let losses = read_metrics_file(&path.join(METRICS))?.iter().filter_map(|r| Some((r.get("step")?.as_u64()?, r.get("loss")?.as_f64()?))).collect();
    Ok(RunRecord { path: path.into(), summary: json(SUMMARY)?, config, losses })
}

fn fmt_num(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| if x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-3) { format!("{x:.4e}") } else { format!("{x:.6}") })
}

/// The comparison table, one row per run.
pub fn table(runs: &[RunRecord]) -> String {
    let head = ["run", "kind", "model", "steps", "seconds", "final loss", "result", "+-", "reference"];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let name = r.path.display().to_string();
            let final_loss = r.losses.last().map(|l| l.1);
            match &r.summary {
                None => vec![name, "-".into(), "(no summary: in progress or stopped)".into(), r.losses.len().to_string(), "-".into(), fmt_num(final_loss), "-".into(), "-".into(), "-".into()],
                Some(s) => {
                    let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
                    let h = headline(s);
                    vec![
                        name,
                        text("kind"),
                        text("model"),
                        s.get("steps").and_then(Value::as_u64).map_or("-".into(), |v| v.to_string()),
                        s.get("seconds").and_then(Value::as_f64).map_or("-".into(), |v| format!("{v:.1}")),
                        fmt_num(final_loss),
                        h.map_or("-".into(), |(n, v, _)| format!("{n} = {}", fmt_num(Some(v)))),
                        fmt_num(h.and_then(|x| x.2)),
                        fmt_num(reference(s)),
                    ]
                }
            }
        })
        .collect();
    let widths: Vec<usize> = (0..head.len()).map(|c| rows.iter().map(|r| r[c].chars().count()).chain([head[c].len()]).max().unwrap_or(0)).collect();
    let line = |cells: &[String]| cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string();
    let mut out = line(&head.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    out.push('\n');
    out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// All loss curves in one plot, `STEM.png` and `STEM.svg` in `dir`.
pub fn loss_curves(runs: &[RunRecord], dir: &Path, stem: &str) -> Result<(), RunError> {
    let series: Vec<Series> = runs.iter().map(|r| Series { name: r.path.display().to_string(), points: r.losses.iter().map(|&(s, l)| (s as f64, l)).collect(), markers: false }).collect();
    let finite: Vec<f64> = runs.iter().flat_map(|r| r.losses.iter().map(|l| l.1)).filter(|v| v.is_finite()).collect();
    // Clip the view to the last three quarters of every run (the first steps dwarf the rest).
    let tail: Vec<f64> = runs.iter().flat_map(|r| r.losses.iter().skip(r.losses.len() / 4).map(|l| l.1)).filter(|v| v.is_finite()).collect();
    let pick = if tail.is_empty() { &finite } else { &tail };
    let y = pick.iter().fold(None, |acc: Option<(f64, f64)>, &v| Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v)))));
    let y = y.map(|(lo, hi)| {
        let pad = ((hi - lo) * 0.1).max(1e-9 * (1.0 + hi.abs()));
        (lo - pad, hi + pad)
    });
    line_plot(dir, stem, "Training loss of each run", "step", "loss", &series, None, y)
}
