//! Variational NCT of the 1-D quartic oscillator H = p^2/2 + omega0^2 q^2/2 + lambda q^4 with the
//! harmonic or the anharmonic latent. The exact F comes from quadrature; the latent dynamics of
//! the trained model is compared with leapfrog integration of H over ten periods from three
//! amplitudes (phase difference in rad).
//!
//! `cargo run --release --example quartic -- --lambda 0.5 --latent anharmonic --out runs/quartic`
//! (`--refine-iterations 20` then fits the conjugacy residual by Levenberg-Marquardt, which
//! sharpens the latent frequencies the dynamics uses).

use clap::Parser;
use nct::dynamics::{leapfrog, phase_difference};
use nct::models::{OneDofFlow, QuarticOscillator};
use nct::run::classical::{estimate, plots, print_summary, summary, train_variational};
use nct::run::{exit_on_error, invalid, parse_with_defaults, LatentArgs, LatentKind, RunArgs, RunError};
use nct::*;
use serde::Serialize;
use serde_json::json;

#[derive(Parser, Serialize, Debug)]
#[command(about = "Variational NCT of a 1-D quartic oscillator (units: mass 1, k_B = 1)")]
struct Cli {
    /// Quartic coupling lambda (>= 0, energy / length^4).
    #[arg(long, default_value_t = 0.1)]
    lambda: f64,
    /// Harmonic frequency omega0 (> 0).
    #[arg(long, default_value_t = 1.0)]
    omega0: f64,
    /// Inverse temperature beta (> 0).
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    /// Hidden widths of the flow's generator networks, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "32,32")]
    hidden: Vec<usize>,
    /// Amplitudes q0 (p0 = 0) of the latent-dynamics check, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,1.5")]
    amplitudes: Vec<f64>,
    /// Levenberg-Marquardt iterations on the conjugacy residual H(T(z)) - K(z) - c after training
    /// (0: none). Sharpens the latent frequencies for the latent dynamics; see nct::conjugacy.
    #[arg(long, default_value_t = 0)]
    refine_iterations: usize,
    /// Latent points of that fit (the Jacobian is points x parameters).
    #[arg(long, default_value_t = 4096)]
    refine_points: usize,
    /// Held-out latent points of that fit (early stopping).
    #[arg(long, default_value_t = 1024)]
    refine_held_out: usize,
    /// Point i of n of that fit is a latent sample scaled by spread^((i + 1/2)/n) (>= 1), so that
    /// the fit reaches into the thermal tail.
    #[arg(long, default_value_t = 1.0)]
    refine_spread: f64,
    /// Divide each residual of that fit by K(z) + a <K> (a > 0), so that the fit controls the
    /// relative error of the latent energy and pins the small-amplitude frequencies too.
    #[arg(long)]
    refine_relative: Option<f64>,
    /// Fresh fit points after every K accepted steps of that fit (0: one fixed set).
    #[arg(long, default_value_t = 0)]
    refine_redraw: usize,
    #[command(flatten)]
    #[serde(flatten)]
    latent: LatentArgs,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

fn main() {
    let cli: Cli = parse_with_defaults(&[("steps", "3000"), ("batch", "256"), ("lr", "0.003"), ("omega_lr_factor", "3"), ("eval_samples", "100000")]);
    exit_on_error(run(&cli));
}

fn run(cli: &Cli) -> Result<(), RunError> {
    if !(cli.lambda.is_finite() && cli.lambda >= 0.0) {
        return Err(invalid("--lambda", cli.lambda, "a finite coupling >= 0"));
    }
    if !(cli.omega0.is_finite() && cli.omega0 > 0.0) {
        return Err(invalid("--omega0", cli.omega0, "a finite frequency > 0"));
    }
    if let Some(a) = cli.amplitudes.iter().find(|a| !(a.is_finite() && **a > 0.0)) {
        return Err(invalid("--amplitudes", a, "finite amplitudes > 0"));
    }
    cli.latent.warn_unused();
    let h = QuarticOscillator::new().with_lambda(cli.lambda).with_omega0(cli.omega0);
    let w = &cli.hidden;
    let flow = OneDofFlow::builder().k1_hidden(w).d1_hidden(w).k2_hidden(w).d2_hidden(w).k3_hidden(w).d3_hidden(w).k4_hidden(w).d4_hidden(w).build(cli.run.seed).map_err(|e| invalid("--hidden", format!("{w:?}"), &e.to_string()))?;
    let init = [cli.omega0];
    match cli.latent.latent {
        LatentKind::Harmonic => {
            let base = LatentOscillators::new(Const::<1>, cli.beta).and_then(|b| b.with_initial_frequencies(&init)).map_err(|e| invalid("--beta", cli.beta, &e.to_string()))?;
            finish(cli, &h, ClassicalNct::new(flow, base).with_path_gradient(cli.latent.path_gradient), "quartic/harmonic")
        }
        LatentKind::Anharmonic => {
            let base = cli.latent.anharmonic(Const::<1>, cli.beta)?.with_initial_frequencies(&init).map_err(|e| invalid("--omega0", cli.omega0, &e.to_string()))?;
            finish(cli, &h, ClassicalNct::new(flow, base).with_path_gradient(cli.latent.path_gradient), "quartic/anharmonic")
        }
    }
}

fn finish<B: Latent<Const<1>>>(cli: &Cli, h: &QuarticOscillator, model: ClassicalNct<OneDofFlow, Const<1>, B>, name: &str) -> Result<(), RunError> {
    let fit = ConjugacyFit { points: cli.refine_points, held_out: cli.refine_held_out, iterations: cli.refine_iterations, seed: cli.run.seed, spread: cli.refine_spread, relative_floor: cli.refine_relative, redraw_every: cli.refine_redraw };
    let refusal = |e: ConjugacyError| match e {
        ConjugacyError::Spread(v) => invalid("--refine-spread", v, "a finite factor >= 1"),
        ConjugacyError::RelativeFloor(v) => invalid("--refine-relative", v, "a finite number > 0"),
        ConjugacyError::NonFinite { .. } => RunError::NoEstimate { what: "conjugacy fit".into(), why: e.to_string() },
        _ => invalid("--refine-points/--refine-held-out", format!("{}/{}", cli.refine_points, cli.refine_held_out), &e.to_string()),
    };
    if cli.refine_iterations > 0 {
        // Refused before training, not after.
        fit.validate(model.n_params()).map_err(refusal)?;
    }
    let mut run = train_variational(&cli.run, cli, name, &model, h)?;
    let f_exact = h.free_energy(cli.beta);
    let mut refined = None;
    if cli.refine_iterations > 0 {
        let fe = estimate(&cli.run, &model, h, &run.theta);
        let t0 = std::time::Instant::now();
        let (theta, report) = model.refine_conjugacy(&run.theta, h, &fit, &BatchEngine::default()).map_err(refusal)?;
        println!("conjugacy fit: rms residual {:.3e} -> {:.3e} (held out {:.3e} -> {:.3e}), {} accepted steps, {:.1} s", report.rms_start, report.rms, report.held_out_rms_start, report.held_out_rms, report.accepted, t0.elapsed().as_secs_f64());
        run.theta = theta;
        refined = Some(json!({ "rms_start": report.rms_start, "held_out_rms_start": report.held_out_rms_start, "rms": report.rms, "held_out_rms": report.held_out_rms, "offset": report.offset, "accepted": report.accepted, "best_iteration": report.best_iteration, "seconds": t0.elapsed().as_secs_f64(), "F_var_before": fe.f_var, "F_var_err_before": fe.f_var_err }));
    }
    let fe = estimate(&cli.run, &model, h, &run.theta);
    let mut m = summary(&cli.run, &model, &run, Some(&fe), Some(f_exact));
    if let Some(r) = refined {
        m.insert("conjugacy".into(), r);
    }
    // Latent dynamics vs leapfrog over ten periods of the latent frequency at each amplitude.
    let mut phase = Vec::new();
    for &a in &cli.amplitudes {
        let x0 = PhasePoint::<f64, Const<1>>::new(Vector::from([a]), Vector::from([0.0]));
        let omega = model.latent_frequency_at(&run.theta, &x0)[0];
        let (samples, per) = (400, 50);
        let dt = 10.0 * 2.0 * std::f64::consts::PI / omega / (samples * per) as f64;
        let reference = leapfrog(h, &x0, dt, per, samples);
        let times: Vec<f64> = (1..=samples).map(|i| (i * per) as f64 * dt).collect();
        let learned = model.trajectory(&run.theta, &x0, &times);
        phase.push(json!({ "q0": a, "omega_latent": omega, "phase_error_rad": phase_difference(&learned, &reference, 0, cli.omega0) }));
    }
    m.insert("latent_dynamics".into(), json!(phase));
    m.insert("lambda".into(), json!(cli.lambda));
    plots(&run, &model, "H + ln q / beta", Some(("exact F", f_exact)), None)?;
    if let Some(d) = &run.dir {
        d.write_summary(&serde_json::Value::Object(m.clone()))?;
    }
    print_summary(&format!("quartic oscillator lambda = {}, {name}", cli.lambda), &m, run.dir.as_ref());
    println!("  F_var - F  {:.5} +- {:.5}", fe.f_var - f_exact, fe.f_var_err);
    for p in &phase {
        println!("  q0 = {:4}: latent frequency {:.5}, phase error over ten periods {:.2e} rad", p["q0"], p["omega_latent"].as_f64().unwrap_or(f64::NAN), p["phase_error_rad"].as_f64().unwrap_or(f64::NAN));
    }
    Ok(())
}
