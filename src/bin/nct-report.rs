//! `nct-report RUN_DIR...`: one table comparing runs (kind, model, steps, time, final loss,
//! headline result with its error, reference) and their loss curves in one PNG and SVG.
//!
//! `cargo run --release --bin nct-report -- runs/a runs/b --plot runs/compare`

use clap::Parser;
use nct::run::report::{loss_curves, read_run, table};
use nct::run::{RunError, exit_on_error};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(about = "Compare ncT run directories: a table of their summaries and their loss curves in one plot")]
struct Cli {
    /// Run directories (written by any example or driver with --out).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Write the loss curves to PLOT.png and PLOT.svg (default: nct-report in the current directory).
    #[arg(long, default_value = "nct-report")]
    plot: PathBuf,
    /// Print the table only.
    #[arg(long)]
    no_plot: bool,
}

fn main() {
    exit_on_error(run(&Cli::parse()));
}

fn run(cli: &Cli) -> Result<(), RunError> {
    let runs = cli.runs.iter().map(|p| read_run(p)).collect::<Result<Vec<_>, _>>()?;
    print!("{}", table(&runs));
    if !cli.no_plot {
        let dir = cli.plot.parent().filter(|p| !p.as_os_str().is_empty()).map_or(PathBuf::from("."), PathBuf::from);
        let stem = cli.plot.file_name().map_or("nct-report".into(), |s| s.to_string_lossy().into_owned());
        std::fs::create_dir_all(&dir).map_err(|source| RunError::Io { path: dir.clone(), source })?;
        loss_curves(&runs, &dir, &stem)?;
        println!("loss curves: {}.png, {}.svg", cli.plot.display(), cli.plot.display());
    }
    Ok(())
}
