//! A tour of the DSL: a new model from scratch in one short file. The Fermi-Pasta-Ulam-Tsingou
//! chain (quartic bonds, fixed ends) is declared with `hamiltonian!`, a flow with `flow!`, trained
//! by minimising the variational free energy, and analysed: free energies, latent frequencies
//! against the harmonic (alpha = 0) limit, the slowest learned normal mode, and a trajectory from
//! the analytic latent dynamics compared with leapfrog integration of the true Hamiltonian.
//!
//! `cargo run --release --example dsl_tour [-- --alpha 0.5 --out runs/fput]`

use clap::Parser;
use nct::run::classical::{estimate, plots, print_summary, summary, train_variational};
use nct::run::{exit_on_error, RunArgs, RunError, invalid, parse_with_defaults};
use nct::*;
use serde::Serialize;
use serde_json::json;

const N: usize = 8;

nct::hamiltonian! {
    /// Fermi-Pasta-Ulam-Tsingou chain with fixed ends (unit masses).
    pub struct Fput<const N: usize> { kappa: f64 = 1.0, alpha: f64 = 0.25 }
    potential(q) = {
        let bond = |d: D| 0.5 * kappa * d * d + alpha / 4.0 * d.powi(4);
        bond(q[0]) + bond(q[N - 1]) + sum(i in 0..N - 1) bond(q[i + 1] - q[i])
    };
}

nct::flow! {
    /// Nonlinear point transformation, then linear symplectic mixing.
    pub struct FputFlow: Symplectic<8> {
        point: PointTransform<RealNvp> { couplings: 4, hidden: [32, 32] },
        mix: LinearSymplectic { shears: 6, init_scale: 0.05 },
    }
}

#[derive(Parser, Serialize, Debug)]
#[command(about = "DSL tour: variational NCT of the FPUT chain (units: mass 1, k_B = 1)")]
struct Cli {
    /// Quartic coupling alpha (>= 0, energy / length^4).
    #[arg(long, default_value_t = 0.25)]
    alpha: f64,
    /// Inverse temperature beta (> 0).
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

fn main() {
    let cli: Cli = parse_with_defaults(&[("steps", "3000"), ("batch", "128"), ("lr", "0.003"), ("omega_lr_factor", "10")]);
    exit_on_error(run(&cli));
}

fn run(cli: &Cli) -> Result<(), RunError> {
    if !(cli.alpha.is_finite() && cli.alpha >= 0.0) {
        return Err(invalid("--alpha", cli.alpha, "a finite quartic coupling >= 0"));
    }
    let h = Fput::<N>::new().with_alpha(cli.alpha);
    let flow = FputFlow::new(cli.run.seed);
    print!("{flow}");
    let base = LatentOscillators::new(Const::<N>, cli.beta).map_err(|e| invalid("--beta", cli.beta, &e.to_string()))?;
    let model = ClassicalNct::new(flow, base);
    let run = train_variational(&cli.run, cli, "dsl_tour/fput8", &model, &h)?;
    let fe = estimate(&cli.run, &model, &h, &run.theta);
    // Harmonic limit (alpha = 0): exact frequencies and free energy of the chain.
    let harmonic: Vec<f64> = (1..=N).map(|k| 2.0 * (k as f64 * std::f64::consts::PI / (2.0 * (N as f64 + 1.0))).sin()).collect();
    let f_harmonic = -harmonic.iter().map(|w| (2.0 * std::f64::consts::PI / (cli.beta * w)).ln()).sum::<f64>() / cli.beta;
    let mut m = summary(&cli.run, &model, &run, Some(&fe), if cli.alpha == 0.0 { Some(f_harmonic) } else { None });
    m.insert("omega_harmonic".into(), json!(harmonic));
    m.insert("F_harmonic".into(), json!(f_harmonic));
    // Slowest learned normal mode at the origin, against the lowest sine mode.
    let modes = model.normal_modes(&run.theta, &PhasePoint::zeros(Const));
    let row = modes.row(0);
    let sine: Vec<f64> = (1..=N).map(|i| (i as f64 * std::f64::consts::PI / (N as f64 + 1.0)).sin()).collect();
    let overlap = (row.iter().zip(&sine).map(|(a, b)| a * b).sum::<f64>() / (row.norm() * sine.iter().map(|s| s * s).sum::<f64>().sqrt())).abs();
    m.insert("slowest_mode_overlap_with_sine".into(), json!(overlap));
    // Latent dynamics vs leapfrog integration of the true Hamiltonian from the same start.
    let x0 = PhasePoint::<f64, Const<N>>::new(Vector::from_fn(Const, |i| 0.3 * sine[i]), Vector::zeros(Const));
    let times: Vec<f64> = (0..=40).map(|k| 0.25 * k as f64).collect();
    let latent = model.trajectory(&run.theta, &x0, &times);
    let (mut x, dt, mut t, mut err) = (x0, 0.001, 0.0, 0.0f64);
    for (tk, xl) in times.iter().zip(&latent) {
        while t < *tk - 1e-12 {
            x.p += h.forces(&x.q, &x.p) * (0.5 * dt);
            x.q += x.p * dt;
            x.p += h.forces(&x.q, &x.p) * (0.5 * dt);
            t += dt;
        }
        err = err.max((xl.q - x.q).amax());
    }
    m.insert("trajectory_max_deviation".into(), json!(err));
    plots(&run, &model, "H + ln q / beta", if cli.alpha == 0.0 { Some(("exact F", f_harmonic)) } else { None }, Some(&harmonic))?;
    if let Some(d) = &run.dir {
        d.write_summary(&serde_json::Value::Object(m.clone()))?;
    }
    print_summary(&format!("FPUT chain n = {N}, alpha = {}", cli.alpha), &m, run.dir.as_ref());
    println!("  harmonic   F = {f_harmonic:.4}, omega = [{}]", harmonic.iter().map(|w| format!("{w:.4}")).collect::<Vec<_>>().join(", "));
    println!("  slowest learned normal mode vs sin(i pi/9): overlap {overlap:.4}");
    println!("  latent dynamics vs leapfrog of H over t in [0, 10], amplitude 0.3: max |dq| = {err:.3e}");
    Ok(())
}
