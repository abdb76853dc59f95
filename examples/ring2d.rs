//! Variational NCT of a particle on a noisy ring, H = (|q| - R)^2 / s + |p|^2 / 2 in 2-D
//! (R = 2, s = 0.32 in Li, Dong, Zhang & Wang, PRX 10, 021020 (2020)). The exact free energy
//! is computed by quadrature: Z = (2 pi / beta) * 2 pi * int_0^inf r exp(-beta (r - R)^2 / s) dr.
//!
//! `cargo run --release --example ring2d -- --out runs/ring`

use clap::Parser;
use nct::models::Ring2d;
use nct::run::classical::{estimate, plots, print_summary, summary, train_variational};
use nct::run::plot::{Aspect, scatter_plot};
use nct::run::{exit_on_error, invalid, parse_with_defaults, LatentArgs, LatentKind, NetArgs, RunArgs, RunError};
use nct::*;
use serde::Serialize;
use serde_json::json;

nct::flow! {
    /// RealNVP point transformation (couplings and widths from the command line), then linear mixing.
    pub struct RingFlow: Symplectic<2> {
        point: PointTransform<RealNvp> { masks: halves },
        mix: LinearSymplectic,
    }
}

#[derive(Parser, Serialize, Debug)]
#[command(about = "Variational NCT of a particle on a 2-D ring (units: mass 1, k_B = 1)")]
struct Cli {
    /// Ring radius R (> 0, length units).
    #[arg(long, default_value_t = 2.0)]
    radius: f64,
    /// Width parameter s of the radial well (> 0, length^2 / energy).
    #[arg(long, default_value_t = 0.32)]
    width: f64,
    /// Inverse temperature beta (> 0).
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    #[command(flatten)]
    #[serde(flatten)]
    net: NetArgs,
    #[command(flatten)]
    #[serde(flatten)]
    latent: LatentArgs,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

fn main() {
    let cli: Cli = parse_with_defaults(&[("couplings", "6"), ("hidden", "64,64"), ("steps", "6000"), ("batch", "256"), ("lr", "0.003"), ("omega_lr_factor", "10")]);
    exit_on_error(run(&cli));
}

/// Exact F = -ln Z / beta by Simpson quadrature of the radial integral.
fn exact_free_energy(r0: f64, s: f64, beta: f64) -> f64 {
    let upper = r0 + 12.0 * (s / beta).sqrt();
    let n = 20000;
    let h = upper / n as f64;
    let f = |r: f64| r * (-beta * (r - r0).powi(2) / s).exp();
    let mut acc = f(0.0) + f(upper);
    for i in 1..n {
        acc += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    let radial = acc * h / 3.0;
    let z = (2.0 * std::f64::consts::PI / beta) * 2.0 * std::f64::consts::PI * radial;
    -z.ln() / beta
}

fn run(cli: &Cli) -> Result<(), RunError> {
    if !(cli.radius.is_finite() && cli.radius > 0.0) {
        return Err(invalid("--radius", cli.radius, "a finite radius > 0"));
    }
    if !(cli.width.is_finite() && cli.width > 0.0) {
        return Err(invalid("--width", cli.width, "a finite width > 0"));
    }
    cli.latent.warn_unused();
    let h = Ring2d::new().with_radius(cli.radius).with_width(cli.width);
    let flow = RingFlow::builder().couplings(cli.net.couplings).hidden(&cli.net.hidden).build(cli.run.seed).map_err(|e| cli.net.invalid(e))?;
    match cli.latent.latent {
        LatentKind::Harmonic => {
            let base = LatentOscillators::new(Const::<2>, cli.beta).map_err(|e| invalid("--beta", cli.beta, &e.to_string()))?;
            finish(cli, &h, ClassicalNct::new(flow, base).with_path_gradient(cli.latent.path_gradient), "ring2d/realnvp+linear")
        }
        LatentKind::Anharmonic => finish(cli, &h, ClassicalNct::new(flow, cli.latent.anharmonic(Const::<2>, cli.beta)?).with_path_gradient(cli.latent.path_gradient), "ring2d/realnvp+linear/anharmonic"),
    }
}

fn finish<B: Latent<Const<2>>>(cli: &Cli, h: &Ring2d, model: ClassicalNct<RingFlow, Const<2>, B>, name: &str) -> Result<(), RunError> {
    let run = train_variational(&cli.run, cli, name, &model, h)?;
    let fe = estimate(&cli.run, &model, h, &run.theta);
    let f_exact = exact_free_energy(cli.radius, cli.width, cli.beta);
    let mut m = summary(&cli.run, &model, &run, Some(&fe), Some(f_exact));
    // Does the slowest latent mode track the polar angle? Circular correlation between the angle
    // of x = T(z) and Q_slow, measured as |corr(cos angle, Q)| and |corr(sin angle, Q)| combined.
    let tf = model.split(&run.theta).0;
    let slow = model.mode_order(&run.theta)[0];
    let mut srng = SeedStream::new(cli.run.seed).named("analysis");
    let pts: Vec<(f64, f64, f64)> = (0..4000)
        .map(|_| {
            let z = model.latent_sample(&run.theta, &mut srng);
            let (x, _) = model.flow.forward(tf, &z);
            (x.q[0], x.q[1], z.q[slow])
        })
        .collect();
    let angle_assoc = angle_association(&pts);
    m.insert("slow_mode_angle_correlation".into(), json!(angle_assoc));
    if let Some(d) = &run.dir {
        scatter_plot(d.path(), "latent_slowest", "Samples in configuration space", "q_x", "q_y", &pts, "slowest latent Q", Aspect::Equal)?;
    }
    plots(&run, &model, "H + ln q / beta", Some(("exact F", f_exact)), None)?;
    if let Some(d) = &run.dir {
        d.write_summary(&serde_json::Value::Object(m.clone()))?;
    }
    print_summary("2-D ring", &m, run.dir.as_ref());
    println!("  angle corr {angle_assoc:.3} (multiple correlation of the slowest latent coordinate with (cos, sin) of the polar angle)");
    Ok(())
}

/// Multiple correlation R of y on (cos a, sin a): the fraction of y explained by the angle.
fn angle_association(pts: &[(f64, f64, f64)]) -> f64 {
    let n = pts.len() as f64;
    let cols: Vec<[f64; 3]> = pts.iter().map(|&(x, y, q)| { let a = y.atan2(x); [a.cos(), a.sin(), q] }).collect();
    let mean = |k: usize| cols.iter().map(|c| c[k]).sum::<f64>() / n;
    let mu = [mean(0), mean(1), mean(2)];
    let cov = |i: usize, j: usize| cols.iter().map(|c| (c[i] - mu[i]) * (c[j] - mu[j])).sum::<f64>() / n;
    let a = nalgebra::Matrix2::new(cov(0, 0), cov(0, 1), cov(1, 0), cov(1, 1));
    let b = nalgebra::Vector2::new(cov(0, 2), cov(1, 2));
    let beta = a.try_inverse().map(|ai| ai * b).unwrap_or_else(nalgebra::Vector2::zeros);
    (b.dot(&beta) / cov(2, 2)).max(0.0).sqrt()
}
