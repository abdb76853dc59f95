//! Run machinery: resume, atomic checkpoints, corrupted files, NaN handling, input errors, CLI.

use clap::Parser;
use nct::models::HarmonicChain;
use nct::run::atomic::FailPoint;
use nct::run::classical::train_variational;
use nct::run::{Checkpoint, ModelDescription, OnNan, RunArgs, RunDir, RunError, parse_from_with_defaults};
use nct::*;
use nct::Schedule;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

#[derive(Parser, Serialize, Debug, Clone)]
struct Cli {
    /// Spring constant kappa (> 0, energy / length^2).
    #[arg(long, default_value_t = 1.0)]
    kappa: f64,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

fn cli(args: &[&str]) -> Cli {
    let mut argv = vec!["test"];
    argv.extend_from_slice(args);
    parse_from_with_defaults(argv, &[("steps", "40"), ("batch", "16"), ("lr", "0.02"), ("checkpoint_every", "7"), ("eval_samples", "100")]).unwrap()
}

fn model() -> ClassicalNct<LinearSymplectic<Const<4>>, Const<4>> {
    ClassicalNct::new(LinearSymplectic::new(Const::<4>).with_init_scale(0.05), LatentOscillators::new(Const::<4>, 1.0).unwrap())
}

fn metrics_without_time(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

#[test]
fn interrupted_and_resumed_run_is_bitwise_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let h = HarmonicChain::<4>::new().with_kappa(1.0);
    let m = model();
    let full = cli(&["--out", a.to_str().unwrap(), "--quiet"]);
    let ra = train_variational(&full.run, &full, "chain4", &m, &h).unwrap();
    let first = cli(&["--out", b.to_str().unwrap(), "--quiet", "--stop-at", "17"]);
    let rb1 = train_variational(&first.run, &first, "chain4", &m, &h).unwrap();
    assert!(rb1.outcome.interrupted && rb1.outcome.steps_done == 17);
    drop(rb1); // releases the run directory's lock, as the process's exit would
    let resume = cli(&["--resume", b.to_str().unwrap(), "--quiet"]);
    let rb2 = train_variational(&resume.run, &resume, "chain4", &m, &h).unwrap();
    assert_eq!(rb2.outcome.resumed_from, Some(17));
    assert_eq!(ra.theta.len(), rb2.theta.len());
    for (x, y) in ra.theta.iter().zip(&rb2.theta) {
        assert_eq!(x.to_bits(), y.to_bits(), "parameters differ after resume");
    }
    assert_eq!(metrics_without_time(&a), metrics_without_time(&b));
    assert_eq!(metrics_without_time(&a).len(), 40);
}

#[test]
fn resume_checks_the_model_and_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("run");
    let h = HarmonicChain::<4>::new().with_kappa(1.0);
    let m = model();
    let c = cli(&["--out", d.to_str().unwrap(), "--quiet", "--steps", "5"]);
    train_variational(&c.run, &c, "chain4", &m, &h).unwrap();
    // Same directory again without --resume/--overwrite.
    let e = train_variational(&c.run, &c, "chain4", &m, &h).err().unwrap().to_string();
    assert!(e.contains(d.to_str().unwrap()) && e.contains("--resume") && e.contains("--overwrite"), "{e}");
    // Resume with a different model flag.
    let c2 = cli(&["--resume", d.to_str().unwrap(), "--kappa", "2", "--quiet"]);
    let e = train_variational(&c2.run, &c2, "chain4", &m, &h).err().unwrap().to_string();
    assert!(e.contains("kappa") && e.contains("1.0") && e.contains("2.0"), "{e}");
    // A config written by an older version lacks a newer flag: that flag is accepted, but the
    // flags it stores must still match.
    let cfg = d.join("config.json");
    let mut stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    stored.as_object_mut().unwrap().remove("kappa");
    std::fs::write(&cfg, stored.to_string()).unwrap();
    let c6 = cli(&["--resume", d.to_str().unwrap(), "--quiet", "--steps", "6"]);
    train_variational(&c6.run, &c6, "chain4", &m, &h).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert!(stored.get("kappa").is_some(), "the resumed run stores the full config again");
    let e = train_variational(&c2.run, &c2, "chain4", &m, &h).err().unwrap().to_string();
    assert!(e.contains("kappa"), "{e}");
    // Resume a directory that is not a run.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let c3 = cli(&["--resume", empty.to_str().unwrap(), "--quiet"]);
    let e = train_variational(&c3.run, &c3, "chain4", &m, &h).err().unwrap().to_string();
    assert!(e.contains("cannot resume") && e.contains("config.json"), "{e}");
    // A checkpoint of another model.
    let other = ClassicalNct::new(LinearSymplectic::with_shears(Const::<4>, 2), LatentOscillators::new(Const::<4>, 1.0).unwrap());
    let c4 = cli(&["--resume", d.to_str().unwrap(), "--quiet", "--steps", "8"]);
    let e = train_variational(&c4.run, &c4, "chain4", &other, &h).err().unwrap().to_string();
    assert!(e.contains("another model"), "{e}");
    // --overwrite replaces the run.
    let c5 = cli(&["--out", d.to_str().unwrap(), "--quiet", "--steps", "3", "--overwrite"]);
    train_variational(&c5.run, &c5, "chain4", &m, &h).unwrap();
    assert_eq!(metrics_without_time(&d).len(), 3);
}

fn checkpoint(n: usize, step: u64, fill: f64) -> Checkpoint {
    let desc = ModelDescription { name: "test".into(), n_params: n, groups: vec![("all".into(), n)] };
    let optimizer = nct::optim::OptimizerState { kind: "adam".into(), lr: 0.01, t: step, tensors: vec![("m".into(), vec![fill * 0.1; n]), ("v".into(), vec![fill * 0.01; n])] };
    Checkpoint { model: desc, step, seed: 3, theta: (0..n).map(|i| fill + i as f64).collect(), optimizer, lr_factor: 1.0, rollbacks: 0, schedule: Some(Schedule::Exponential { gamma: 0.9, every: 7, floor: 0.1 }) }
}

#[test]
fn failed_checkpoint_write_keeps_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("checkpoint.safetensors");
    let good = checkpoint(50, 10, 1.5);
    good.save(&path).unwrap();
    let newer = checkpoint(50, 20, 2.5);
    for fail in [FailPoint::AfterBytes(100), FailPoint::AfterBytes(0), FailPoint::BeforeRename] {
        let e = newer.save_with(&path, fail).unwrap_err().to_string();
        assert!(e.contains("injected"), "{e}");
        let back = Checkpoint::load(&path, &good.model).unwrap();
        assert_eq!(back.step, 10);
        assert_eq!(back.theta, good.theta);
        assert_eq!(back.optimizer, good.optimizer);
    }
    newer.save(&path).unwrap();
    assert_eq!(Checkpoint::load(&path, &good.model).unwrap().step, 20);
    // A state with NaN is never written.
    let mut bad = checkpoint(50, 30, 1.0);
    bad.theta[3] = f64::NAN;
    assert!(bad.save(&path).unwrap_err().to_string().contains("NaN"));
    assert_eq!(Checkpoint::load(&path, &good.model).unwrap().step, 20);
}

#[test]
fn corrupted_truncated_and_foreign_checkpoints_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ck.safetensors");
    let ck = checkpoint(40, 5, 0.5);
    let bytes = ck.to_bytes().unwrap();
    let expect_err = |b: &[u8], needle: &str| {
        std::fs::write(&path, b).unwrap();
        let e = Checkpoint::load(&path, &ck.model).unwrap_err().to_string();
        assert!(e.contains("ck.safetensors") && e.contains(needle), "{needle}: {e}");
    };
    expect_err(&bytes[..bytes.len() - 9], "not a valid safetensors");
    expect_err(&bytes[..5], "not a valid safetensors");
    expect_err(b"definitely not a checkpoint at all, just text", "not a valid safetensors");
    let mut flipped = bytes.clone();
    flipped[8] = b'[';
    expect_err(&flipped, "not a valid safetensors");
    // Another model's checkpoint.
    let other = checkpoint(41, 5, 0.5);
    std::fs::write(&path, other.to_bytes().unwrap()).unwrap();
    let e = Checkpoint::load(&path, &ck.model).unwrap_err().to_string();
    assert!(e.contains("another model") && e.contains("41"), "{e}");
    // A safetensors file without ncT metadata (e.g. model weights from elsewhere).
    let data = vec![0u8; 16];
    let view = safetensors_view(&data);
    std::fs::write(&path, view).unwrap();
    let e = Checkpoint::load(&path, &ck.model).unwrap_err().to_string();
    assert!(e.contains("metadata"), "{e}");
    // Missing file.
    let e = Checkpoint::load(&tmp.path().join("nope.safetensors"), &ck.model).unwrap_err().to_string();
    assert!(e.contains("nope.safetensors"), "{e}");
}

/// A minimal valid safetensors file with one tensor and no metadata (header written by hand).
fn safetensors_view(data: &[u8]) -> Vec<u8> {
    let header = format!("{{\"w\":{{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,{}]}}}}", data.len());
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// Potential that is NaN beyond q_0 = 1.5 (a hole in the surface).
struct Holey;
impl Separable<Const<4>> for Holey {
    fn dim(&self) -> Const<4> {
        Const
    }
    fn potential<D: Scalar>(&self, q: &Vector<D, Const<4>>) -> D {
        let mut v = D::zero();
        for i in 0..4 {
            v += q[i] * q[i] * 0.5;
        }
        v + (D::from(1.5) - q[0]).sqrt() * 0.0
    }
}

#[test]
fn nan_is_detected_reported_and_never_checkpointed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("nan");
    let m = model();
    let c = cli(&["--out", d.to_str().unwrap(), "--quiet", "--batch", "64"]);
    let e = train_variational(&c.run, &c, "chain4", &m, &Holey).err().expect("NaN must stop the run");
    let msg = e.to_string();
    assert!(matches!(e, RunError::NonFinite { .. }), "{msg}");
    assert!(msg.contains("step") && msg.contains("sample") && msg.contains("latent Q"), "{msg}");
    let ck = Checkpoint::load(&d.join("checkpoint.safetensors"), &ModelDescription::of("chain4", &m)).unwrap();
    assert!(ck.theta.iter().all(|v| v.is_finite()));
    // Rollback: reloads the last good checkpoint, halves the learning rate, gives up after 3.
    let d2 = tmp.path().join("nan2");
    let mut c2 = cli(&["--out", d2.to_str().unwrap(), "--quiet", "--batch", "64"]);
    c2.run.on_nan = OnNan::Rollback;
    let e = train_variational(&c2.run, &c2, "chain4", &m, &Holey).err().expect("still NaN after rollbacks");
    assert!(matches!(e, RunError::NonFinite { .. }));
    let ck = Checkpoint::load(&d2.join("checkpoint.safetensors"), &ModelDescription::of("chain4", &m)).unwrap();
    assert_eq!(ck.rollbacks, 0, "the stored checkpoint is the last good state");
    assert!(ck.theta.iter().all(|v| v.is_finite()));
}

#[test]
fn invalid_flags_name_the_flag_the_value_and_the_range() {
    for (args, needle) in [(vec!["--batch", "0"], "--batch: 0"), (vec!["--lr", "-1"], "--lr: -1"), (vec!["--steps", "0"], "--steps: 0"), (vec!["--checkpoint-every", "0"], "--checkpoint-every"), (vec!["--omega-lr-factor", "0"], "--omega-lr-factor")] {
        let c = cli(&args);
        let e = c.run.validate().unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("invalid value"), "{e}");
    }
    let c = cli(&["--resume", "x", "--overwrite"]);
    assert!(c.run.validate().unwrap_err().to_string().contains("--overwrite"));
    // Unknown flags and malformed numbers are clap errors.
    assert!(parse_from_with_defaults::<Cli, _, _>(["t", "--batch", "many"], &[]).is_err());
    assert!(parse_from_with_defaults::<Cli, _, _>(["t", "--bogus"], &[]).is_err());
}

#[test]
fn help_text_explains_flags_and_units() {
    let e = parse_from_with_defaults::<Cli, _, _>(["t", "--help"], &[("steps", "123")]).unwrap_err();
    let help = e.to_string();
    for needle in ["--steps", "123", "--batch", "--lr", "learning rate", "--seed", "--out", "--resume", "--overwrite", "--quiet", "--on-nan", "rollback", "energy / length^2"] {
        assert!(help.contains(needle), "help lacks {needle}:\n{help}");
    }
    assert!(!help.contains("--stop-at"), "test-only flag is hidden");
}

#[test]
fn run_dir_refuses_to_wipe_foreign_files() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("thesis.tex"), "precious").unwrap();
    let c = cli(&["--out", tmp.path().to_str().unwrap(), "--overwrite"]);
    let e = RunDir::open(&c.run, &c).unwrap_err().to_string();
    assert!(e.contains("thesis.tex"), "{e}");
    assert!(tmp.path().join("thesis.tex").exists());
}

/// Every state a kill can leave: the metrics ahead of the checkpoint, a half-written last line, a
/// leftover temporary checkpoint. Resuming from each gives the uninterrupted run bit for bit.
#[test]
fn resume_accepts_any_state_a_kill_leaves() {
    let tmp = tempfile::tempdir().unwrap();
    let h = HarmonicChain::<4>::new().with_kappa(1.0);
    let m = model();
    let a = tmp.path().join("a");
    let full = cli(&["--out", a.to_str().unwrap(), "--quiet"]);
    let ra = train_variational(&full.run, &full, "chain4", &m, &h).unwrap();
    let reference = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    let lines: Vec<&str> = reference.lines().collect();
    for (case, (stop, extra_lines, partial)) in [(14u64, 5usize, true), (21, 0, true), (7, 3, false), (35, 4, true)].into_iter().enumerate() {
        let b = tmp.path().join(format!("b{case}"));
        let first = cli(&["--out", b.to_str().unwrap(), "--quiet", "--stop-at", &stop.to_string()]);
        train_variational(&first.run, &first, "chain4", &m, &h).unwrap();
        // The kill came later: more steps logged after the checkpoint, the last line cut short,
        // and a temporary checkpoint file left behind.
        let mut text = std::fs::read_to_string(b.join("metrics.jsonl")).unwrap();
        for l in &lines[stop as usize..stop as usize + extra_lines] {
            text.push_str(l);
            text.push('\n');
        }
        if partial {
            text.push_str(&lines[stop as usize + extra_lines][..17]);
        }
        std::fs::write(b.join("metrics.jsonl"), text).unwrap();
        std::fs::write(b.join(".checkpoint.safetensors.tmp"), b"half a checkpoint").unwrap();
        let resume = cli(&["--resume", b.to_str().unwrap(), "--quiet"]);
        let rb = train_variational(&resume.run, &resume, "chain4", &m, &h).unwrap();
        assert_eq!(rb.outcome.resumed_from, Some(stop));
        assert!(ra.theta.iter().zip(&rb.theta).all(|(x, y)| x.to_bits() == y.to_bits()), "case {case}: parameters differ");
        assert_eq!(metrics_without_time(&a), metrics_without_time(&b), "case {case}");
    }
    // A malformed line that is not the interrupted last one is real corruption: an error.
    let c = tmp.path().join("c");
    let first = cli(&["--out", c.to_str().unwrap(), "--quiet", "--stop-at", "14"]);
    train_variational(&first.run, &first, "chain4", &m, &h).unwrap();
    let text = std::fs::read_to_string(c.join("metrics.jsonl")).unwrap().replacen("\"loss\"", "\"lo", 1);
    std::fs::write(c.join("metrics.jsonl"), text).unwrap();
    let resume = cli(&["--resume", c.to_str().unwrap(), "--quiet"]);
    let e = train_variational(&resume.run, &resume, "chain4", &m, &h).err().unwrap().to_string();
    assert!(e.contains("metrics.jsonl") && e.contains("line 1"), "{e}");
}

#[test]
fn flipped_bits_and_checkpoints_of_other_runs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let h = HarmonicChain::<4>::new().with_kappa(1.0);
    let m = model();
    let run = |name: &str, extra: &[&str]| {
        let d = tmp.path().join(name);
        let mut args = vec!["--out", d.to_str().unwrap(), "--quiet", "--stop-at", "14"];
        args.extend_from_slice(extra);
        let c = cli(&args);
        train_variational(&c.run, &c, "chain4", &m, &h).unwrap();
        d
    };
    let resume = |d: &Path, extra: &[&str]| {
        let mut args = vec!["--resume", d.to_str().unwrap(), "--quiet"];
        args.extend_from_slice(extra);
        let c = cli(&args);
        train_variational(&c.run, &c, "chain4", &m, &h).err().map(|e| e.to_string())
    };
    // One flipped bit in the stored parameters (the last bytes of the file are tensor data).
    let d = run("flip", &[]);
    let ck = d.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&ck).unwrap();
    let k = bytes.len() - 5;
    bytes[k] ^= 0x10;
    std::fs::write(&ck, &bytes).unwrap();
    let e = resume(&d, &[]).expect("refused");
    assert!(e.contains("CRC-32") && e.contains("checkpoint.safetensors"), "{e}");
    // A checkpoint of the same architecture from a run with another seed.
    let mine = run("mine", &[]);
    let other = run("other", &["--seed", "9"]);
    std::fs::copy(other.join("checkpoint.safetensors"), mine.join("checkpoint.safetensors")).unwrap();
    let e = resume(&mine, &[]).expect("refused");
    assert!(e.contains("--seed 9") && e.contains("another run"), "{e}");
    // A checkpoint further along than this run's own metrics.
    let short = run("short", &[]);
    let c = cli(&["--out", tmp.path().join("long").to_str().unwrap(), "--quiet", "--stop-at", "35"]);
    train_variational(&c.run, &c, "chain4", &m, &h).unwrap();
    std::fs::copy(tmp.path().join("long/checkpoint.safetensors"), short.join("checkpoint.safetensors")).unwrap();
    let e = resume(&short, &[]).expect("refused");
    assert!(e.contains("step 35") && e.contains("14 steps"), "{e}");
}

#[test]
fn a_run_directory_in_use_is_refused_with_the_pid() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("busy");
    let c = cli(&["--out", d.to_str().unwrap(), "--quiet"]);
    let held = RunDir::open(&c.run, &c).unwrap().expect("a run directory");
    let again = cli(&["--out", d.to_str().unwrap(), "--quiet", "--overwrite"]);
    let e = RunDir::open(&again.run, &again).err().unwrap().to_string();
    assert!(e.contains(&format!("pid {}", std::process::id())) && e.contains("in use"), "{e}");
    assert!(d.join("config.json").exists(), "the directory in use was not cleared");
    drop(held);
    assert!(RunDir::open(&again.run, &again).unwrap().is_some(), "free again once the first run is gone");
}

#[test]
fn schedules_round_trip_and_a_resume_with_more_steps_keeps_the_plan() {
    for s in [Schedule::Constant, Schedule::Cosine { total: 40, min_factor: 0.02 }, Schedule::Exponential { gamma: 0.3f64.sqrt(), every: 9, floor: 1.0 / 3.0 }] {
        assert_eq!(Schedule::decode(&s.encode()), Some(s));
    }
    assert_eq!(Schedule::decode("cosine:40"), None);
    let e = Schedule::Exponential { gamma: 0.5, every: 10, floor: 0.2 };
    assert_eq!((e.factor(0), e.factor(10), e.factor(100)), (1.0, 0.5, 0.2));
    // The checkpoint stores the schedule (and refuses a malformed one).
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(5, 3, 0.5);
    let p = tmp.path().join("ck.safetensors");
    ck.save(&p).unwrap();
    assert_eq!(Checkpoint::load(&p, &ck.model).unwrap().schedule, ck.schedule);
    // A 40-step run stopped at 20 and resumed with --steps 60: steps 20..39 follow the original
    // cosine plan bit for bit, steps 40..59 stay at the floor (2% of the base rate).
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let h = HarmonicChain::<4>::new().with_kappa(1.0);
    let m = model();
    let full = cli(&["--out", a.to_str().unwrap(), "--quiet"]);
    train_variational(&full.run, &full, "chain4", &m, &h).unwrap();
    let first = cli(&["--out", b.to_str().unwrap(), "--quiet", "--stop-at", "20"]);
    drop(train_variational(&first.run, &first, "chain4", &m, &h).unwrap());
    let more = cli(&["--resume", b.to_str().unwrap(), "--steps", "60", "--quiet"]);
    let r = train_variational(&more.run, &more, "chain4", &m, &h).unwrap();
    assert_eq!(r.outcome.steps_done, 60);
    let (ma, mb) = (metrics_without_time(&a), metrics_without_time(&b));
    assert_eq!(ma[..], mb[..40], "the first 40 steps equal the uninterrupted 40-step run");
    for rec in &mb[40..] {
        assert_eq!(rec["lr"].as_f64().unwrap(), 0.02 * 0.02, "{rec}");
    }
}
