//! Variational NCT of the 1-D harmonic oscillator H = p^2/2 + omega0^2 q^2/2 (unit mass).
//! Exact: F = -ln(2 pi / (beta omega0)) / beta; the learned latent frequency must equal omega0.
//!
//! `cargo run --release --example oscillator -- --omega0 2 --out runs/osc`

use clap::Parser;
use nct::models::HarmonicOscillator;
use nct::run::classical::{estimate, plots, print_summary, summary, train_variational};
use nct::run::{exit_on_error, RunArgs, RunError, invalid, parse_with_defaults};
use nct::*;
use serde::Serialize;

#[derive(Parser, Serialize, Debug)]
#[command(about = "Variational neural canonical transformation of a harmonic oscillator (units: mass 1, k_B = 1)")]
struct Cli {
    /// Oscillator angular frequency omega0 (> 0, inverse time units).
    #[arg(long, default_value_t = 2.0)]
    omega0: f64,
    /// Inverse temperature beta = 1/(k_B T) (> 0, inverse energy units).
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

fn main() {
    let cli: Cli = parse_with_defaults(&[("steps", "2000"), ("batch", "64"), ("lr", "0.05")]);
    exit_on_error(run(&cli));
}

fn run(cli: &Cli) -> Result<(), RunError> {
    if !(cli.omega0.is_finite() && cli.omega0 > 0.0) {
        return Err(invalid("--omega0", cli.omega0, "a finite frequency > 0"));
    }
    let h = HarmonicOscillator::new().with_omega0(cli.omega0);
    let base = LatentOscillators::new(Const::<1>, cli.beta).map_err(|e| invalid("--beta", cli.beta, &e.to_string()))?;
    let model = ClassicalNct::new(LinearSymplectic::new(Const::<1>), base);
    let run = train_variational(&cli.run, cli, "oscillator/linear", &model, &h)?;
    let fe = estimate(&cli.run, &model, &h, &run.theta);
    let f_exact = h.free_energy(cli.beta);
    let mut m = summary(&cli.run, &model, &run, Some(&fe), Some(f_exact));
    m.insert("omega0".into(), serde_json::json!(cli.omega0));
    plots(&run, &model, "H + ln q / beta", Some(("exact F", f_exact)), Some(&[cli.omega0]))?;
    if let Some(d) = &run.dir {
        d.write_summary(&serde_json::Value::Object(m.clone()))?;
    }
    print_summary("harmonic oscillator", &m, run.dir.as_ref());
    Ok(())
}
