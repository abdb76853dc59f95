//! The run directory.

use super::args::RunArgs;
use super::atomic::write_atomic;
use super::{RunError, io_err};
use serde::Serialize;
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.json";
pub const METRICS: &str = "metrics.jsonl";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const SUMMARY: &str = "summary.json";
/// Held (advisory exclusive lock) for the lifetime of a [`RunDir`]; holds the owner's pid.
pub const LOCK: &str = ".lock";

/// Flags that control the run but not the model: they may change between a run and its resume.
const CONTROL_FLAGS: &[&str] = &["steps", "out", "resume", "overwrite", "quiet", "checkpoint_every", "on_nan", "threads", "stop_at", "eval_samples"];

fn ours(name: &str) -> bool {
    [CONFIG, METRICS, CHECKPOINT, SUMMARY, LOCK].contains(&name) || name.ends_with(".png") || name.ends_with(".svg") || name.starts_with('.') && name.ends_with(".tmp")
}

/// An open run directory.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    metrics: Option<BufWriter<File>>,
    resumed: bool,
    /// The locked `.lock` file (released when the run directory is dropped or the process dies);
    /// `None` on MPI ranks other than 0, which read the directory but never write to it.
    lock_file: Option<File>,
}

/// Take the exclusive lock of the run directory `dir` (which must exist) and record our pid.
fn lock(dir: &Path) -> Result<File, RunError> {
    let p = dir.join(LOCK);
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&p).map_err(io_err(&p))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = fs::read_to_string(&p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).unwrap_or_else(|| "unknown".into());
            return Err(RunError::Locked { path: dir.into(), pid });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&p)(e)),
    }
    f.set_len(0).map_err(io_err(&p))?;
    write!(f, "{}", std::process::id()).map_err(io_err(&p))?;
    f.flush().map_err(io_err(&p))?;
    Ok(f)
}

impl RunDir {
    /// Open the directory named by `--out` or `--resume`, or `None` if neither was given.
    /// `config` is the full resolved configuration of the example (it must serialise to a JSON
    /// object whose keys include the [`RunArgs`] fields).
    pub fn open(args: &RunArgs, config: &impl Serialize) -> Result<Option<Self>, RunError> {
        Self::open_with_control(args, config, &[])
    }

    /// [`RunDir::open`] where the example's own flags `control` (evaluation settings that do not
    /// change the model) may differ between a run and its resume, like the shared control flags.
    pub fn open_with_control(args: &RunArgs, config: &impl Serialize, control: &[&str]) -> Result<Option<Self>, RunError> {
        let config = serde_json::to_value(config).map_err(|e| RunError::InvalidArg { flag: "config".into(), value: e.to_string(), allowed: "serialisable".into() })?;
        let root = crate::parallel::is_root();
        if let Some(dir) = &args.resume {
            let cpath = dir.join(CONFIG);
            let text = fs::read_to_string(&cpath).map_err(|e| RunError::NoRun { path: dir.clone(), why: format!("{}: {e}", cpath.display()) })?;
            let stored: Value = serde_json::from_str(&text).map_err(|e| RunError::NoRun { path: dir.clone(), why: format!("{} is not valid JSON ({e})", cpath.display()) })?;
            Self::compare(&cpath, &stored, &config, control)?;
            if !dir.join(CHECKPOINT).exists() {
                return Err(RunError::NoRun { path: dir.clone(), why: format!("no {CHECKPOINT} in it") });
            }
            if !root {
                return Ok(Some(Self { path: dir.clone(), metrics: None, resumed: true, lock_file: None }));
            }
            let lock = lock(dir)?;
            write_atomic(&cpath, serde_json::to_string_pretty(&config).expect("JSON").as_bytes())?;
            return Ok(Some(Self { path: dir.clone(), metrics: None, resumed: true, lock_file: Some(lock) }));
        }
        let Some(dir) = &args.out else { return Ok(None) };
        if !root {
            // Rank 0 prepares the directory (and fails the job if it cannot).
            return Ok(Some(Self { path: dir.clone(), metrics: None, resumed: false, lock_file: None }));
        }
        let existed = dir.exists();
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        // Lock first: a directory in use by another run is never cleared.
        let lock = lock(dir)?;
        if existed {
            let entries: Vec<String> = fs::read_dir(dir).map_err(io_err(dir))?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != LOCK).collect();
            if !entries.is_empty() {
                if !args.overwrite {
                    return Err(RunError::NonEmptyDir { path: dir.clone() });
                }
                if let Some(foreign) = entries.iter().find(|n| !ours(n)) {
                    return Err(RunError::InvalidArg { flag: "--overwrite".into(), value: dir.display().to_string(), allowed: format!("only a directory that holds nothing but ncT run files (found `{foreign}`)") });
                }
                for n in &entries {
                    fs::remove_file(dir.join(n)).map_err(io_err(dir.join(n)))?;
                }
            }
        }
        write_atomic(&dir.join(CONFIG), serde_json::to_string_pretty(&config).expect("JSON").as_bytes())?;
        Ok(Some(Self { path: dir.clone(), metrics: None, resumed: false, lock_file: Some(lock) }))
    }

    fn compare(path: &Path, stored: &Value, given: &Value, control: &[&str]) -> Result<(), RunError> {
        let (Some(s), Some(g)) = (stored.as_object(), given.as_object()) else {
            return Err(RunError::NoRun { path: path.into(), why: "config is not a JSON object".into() });
        };
        for (k, gv) in g {
            if CONTROL_FLAGS.contains(&k.as_str()) || control.contains(&k.as_str()) {
                continue;
            }
            // A flag the stored run does not know (written by an older version) takes its given
            // value; every flag the run stored must match.
            let Some(sv) = s.get(k) else {
                eprintln!("note: {}: `{k}` is not in the stored config (older run); using {gv}", path.display());
                continue;
            };
            if k == "lr" && sv != gv {
                // Allowed, e.g. to continue after a NaN stop; every metrics line records its lr.
                eprintln!("note: {}: --lr changes from {sv} to {gv} at this resume. The run stays reproducible from its checkpoints and its metrics record the rate of every step, but it no longer equals an uninterrupted run at either rate", path.display());
                continue;
            }
            if sv != gv {
                return Err(RunError::ConfigMismatch { path: path.into(), field: k.clone(), stored: sv.to_string(), given: gv.to_string() });
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn is_resumed(&self) -> bool {
        self.resumed
    }
    /// Whether this process writes the run directory (rank 0 of an MPI job, or the only process).
    pub fn writes(&self) -> bool {
        self.lock_file.is_some()
    }
    pub fn checkpoint_path(&self) -> PathBuf {
        self.path.join(CHECKPOINT)
    }

    fn metrics_writer(&mut self) -> Result<&mut BufWriter<File>, RunError> {
        if self.metrics.is_none() {
            let p = self.path.join(METRICS);
            let f = OpenOptions::new().create(true).append(true).open(&p).map_err(io_err(&p))?;
            self.metrics = Some(BufWriter::new(f));
        }
        Ok(self.metrics.as_mut().expect("just opened"))
    }

    /// Append one metrics record (a JSON object with at least `step`).
    pub fn log(&mut self, record: &Value) -> Result<(), RunError> {
        if !self.writes() {
            return Ok(());
        }
        let p = self.path.join(METRICS);
        let w = self.metrics_writer()?;
        writeln!(w, "{record}").map_err(io_err(&p))
    }

    pub fn flush(&mut self) -> Result<(), RunError> {
        let p = self.path.join(METRICS);
        if let Some(w) = self.metrics.as_mut() {
            w.flush().map_err(io_err(&p))?;
        }
        Ok(())
    }

    /// Keep only the records with `step < step` (on resume and rollback).
    pub fn truncate_metrics(&mut self, step: u64) -> Result<(), RunError> {
        if !self.writes() {
            return Ok(());
        }
        self.flush()?;
        self.metrics = None;
        let kept: Vec<Value> = self.read_metrics()?.into_iter().filter(|r| r.get("step").and_then(Value::as_u64).is_some_and(|s| s < step)).collect();
        let text: String = kept.iter().map(|r| format!("{r}\n")).collect();
        write_atomic(&self.path.join(METRICS), text.as_bytes())
    }

    /// All metrics records (see [`read_metrics_file`]).
    pub fn read_metrics(&self) -> Result<Vec<Value>, RunError> {
        read_metrics_file(&self.path.join(METRICS))
    }

    /// Write `name` (JSON, pretty) atomically.
    pub fn write_json(&self, name: &str, value: &Value) -> Result<(), RunError> {
        if !self.writes() {
            return Ok(());
        }
        write_atomic(&self.path.join(name), serde_json::to_string_pretty(value).expect("JSON").as_bytes())
    }

    pub fn write_summary(&self, value: &Value) -> Result<(), RunError> {
        self.write_json(SUMMARY, value)
    }
}

/// All records of a `metrics.jsonl` (none when the file does not exist). A last line without its
/// newline is what a kill during a write leaves: it is dropped (the step is redone on resume). Any
/// other malformed line is an error naming the file and the line.
pub fn read_metrics_file(p: &Path) -> Result<Vec<Value>, RunError> {
    let Ok(text) = fs::read_to_string(p) else { return Ok(Vec::new()) };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if !complete && i + 1 == lines.len() => break,
            Err(e) => return Err(RunError::Data { file: p.to_path_buf(), why: format!("line {}: {e}", i + 1) }),
        }
    }
    Ok(out)
}
