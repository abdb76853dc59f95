//! Constant pressure: the reference's cell relaxation during training (`update_cell` of
//! zhangqi94/lithium). Every `every` steps from step `begin` on, the box lengths move along the
//! stress, $L_a \leftarrow L_a + \eta\,(\bar\sigma_a - P)$ with $\bar\sigma$ the mean diagonal
//! stress (GPa) of the last `recent` steps and $\eta$ (Å/GPa) decaying by `decay` per update to
//! `min_lr`; a cubic cell keeps its three lengths equal (their mean). The lattice is rescaled, the
//! harmonic modes recomputed at the new box, and the flow and occupation parameters kept.
//!
//! The box of step $s$ is a pure function of the stresses of steps $0..s$, which are measured on
//! that step's own walkers and appended (flushed to disk) to `box.jsonl` before the step returns;
//! a resumed or rolled-back run replays the rule over the logged stresses and so reaches the same
//! boxes bit for bit.

use super::deeppot::{DeepPot, PeriodicImages};
use super::modes::{CrystalModes, CrystalPotential};
use super::phonons::HarmonicModes;
use super::structure::Supercell;
use super::thermal::{CrystalThermal, thermal_model};
use super::K_PER_A3_TO_GPA;
use nct::batch::{BatchEngine, BatchSum, SeedStream};
use nct::driver::Objective;
use nct::quantum::too_many_rejected;
use nct::{Bijector, Dyn, LaplacianMethod, Parametrised};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The relaxation rule.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct NptSettings {
    /// Target pressure (GPa).
    pub pressure: f64,
    /// First step whose box may differ from the starting one.
    pub begin: u64,
    /// Steps between box updates.
    pub every: u64,
    /// Step size $\eta$ in Å per GPa, its decay per update and its floor.
    pub lr: f64,
    pub decay: f64,
    pub min_lr: f64,
    /// Steps whose stresses are averaged.
    pub recent: usize,
    /// Keep the three lengths equal.
    pub cubic: bool,
}

/// What a box of the run holds.
struct Cell<B> {
    lengths: [f64; 3],
    h: CrystalModes,
    model: CrystalThermal<B>,
}

struct State<B> {
    /// Diagonal stress (GPa) of every step done, by step.
    history: Vec<[f64; 3]>,
    cell: Cell<B>,
    /// Why the last step could not be taken (for the trainer's diagnosis).
    failure: Option<String>,
}

/// Finite-temperature NCT of a crystal at constant pressure (an [`Objective`] for the driver).
pub struct NptThermal<B> {
    flow: B,
    levels: usize,
    temperature: f64,
    laplacian: LaplacianMethod,
    dp: Arc<DeepPot>,
    images: PeriodicImages,
    lattice0: Supercell,
    effective_mass: f64,
    pub settings: NptSettings,
    batch: usize,
    log: Option<PathBuf>,
    template: CrystalThermal<B>,
    state: Mutex<State<B>>,
    engine: BatchEngine,
}

impl<B: Bijector<Dyn> + Clone + Send + Sync> NptThermal<B> {
    /// `lattice0`: the starting lattice (its box is the first); `images` fixed at that box, as in the
    /// reference. `log`: `box.jsonl` of the run directory (read when `resumed`, else started empty).
    #[allow(clippy::too_many_arguments)]
    pub fn new(flow: B, levels: usize, temperature: f64, laplacian: LaplacianMethod, dp: Arc<DeepPot>, lattice0: Supercell, effective_mass: f64, settings: NptSettings, batch: usize, log: Option<PathBuf>, resumed: bool) -> Result<Self, String> {
        if !(settings.every >= 1 && settings.recent >= 1 && settings.lr >= 0.0 && settings.min_lr >= 0.0 && settings.decay > 0.0 && settings.pressure.is_finite()) {
            return Err(format!("constant-pressure settings {settings:?}: every and recent >= 1, lr and min_lr >= 0, decay > 0, a finite pressure"));
        }
        let images = dp.images(lattice0.lengths).map_err(|e| e.to_string())?;
        let mut history = Vec::new();
        if let (Some(path), true) = (&log, resumed) {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read the box history of the resumed run ({e})", path.display()))?;
            for line in text.lines() {
                // A line cut by a kill is ignored; a later line of the same step supersedes.
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                let (Some(step), Some(st)) = (v["step"].as_u64(), v["stress_GPa"].as_array()) else { continue };
                let s: Vec<f64> = st.iter().filter_map(|x| x.as_f64()).collect();
                if s.len() != 3 || step as usize > history.len() {
                    continue;
                }
                history.truncate(step as usize);
                history.push([s[0], s[1], s[2]]);
            }
        } else if let Some(path) = log.as_ref().filter(|_| nct_core::parallel::is_root()) {
            std::fs::write(path, "").map_err(|e| format!("{}: cannot start the box history ({e})", path.display()))?;
        }
        let me_cell = Self::cell_at(&dp, &images, &lattice0, lattice0.lengths, effective_mass, flow.clone(), (temperature, levels, laplacian))?;
        let template = me_cell.model.clone();
        Ok(NptThermal { flow, levels, temperature, laplacian, dp, images, lattice0, effective_mass, settings, batch, log, template, state: Mutex::new(State { history, cell: me_cell, failure: None }), engine: BatchEngine::new(8) })
    }

    /// `thermal`: temperature, levels and Laplacian of the model.
    fn cell_at(dp: &Arc<DeepPot>, images: &PeriodicImages, lattice0: &Supercell, lengths: [f64; 3], m_eff: f64, flow: B, thermal: (f64, usize, LaplacianMethod)) -> Result<Cell<B>, String> {
        let lattice = lattice0.scaled_to(lengths);
        let modes = HarmonicModes::new(dp, images, &lattice, m_eff).map_err(|e| format!("box {lengths:?} Å: {e}"))?;
        let h = CrystalModes::new(modes, CrystalPotential::DeepPot { model: dp.clone(), images: images.clone() });
        let model = thermal_model(&h, flow, thermal.0, thermal.1, thermal.2)?;
        Ok(Cell { lengths, h, model })
    }

    /// The boxes of steps `0..=steps`, each from the stresses of the steps before it (updates need
    /// the stresses, so past the end of `history` the box stays).
    pub fn boxes(&self, history: &[[f64; 3]], steps: u64) -> Vec<[f64; 3]> {
        let s = &self.settings;
        let mut l = self.lattice0.lengths;
        let mut lr = s.lr;
        let mut out = Vec::with_capacity(steps as usize + 1);
        out.push(l);
        for k in 1..=steps {
            if k <= history.len() as u64 && k >= s.begin.max(1) && (k - s.begin.max(1)) % s.every == 0 {
                let lo = (k as usize).saturating_sub(s.recent);
                let window = &history[lo..k as usize];
                let mean: [f64; 3] = std::array::from_fn(|a| window.iter().map(|w| w[a]).sum::<f64>() / window.len() as f64);
                let mut next: [f64; 3] = std::array::from_fn(|a| l[a] + lr * (mean[a] - s.pressure));
                if s.cubic {
                    let m = (next[0] + next[1] + next[2]) / 3.0;
                    next = [m; 3];
                }
                l = next;
                lr = (lr * s.decay).max(s.min_lr);
            }
            out.push(l);
        }
        out
    }

    /// The current box, the crystal and the thermal model over its modes (after training: those of
    /// the last step).
    pub fn current(&self) -> ([f64; 3], CrystalModes, CrystalThermal<B>) {
        let st = self.state.lock().expect("state");
        (st.cell.lengths, st.cell.h.clone(), st.cell.model.clone())
    }

    /// Box lengths of every step done so far (replayed from the stresses).
    pub fn trajectory(&self) -> Vec<[f64; 3]> {
        let st = self.state.lock().expect("state");
        let mut b = self.boxes(&st.history, st.history.len() as u64);
        b.pop();
        b
    }

    fn run_step(&self, theta: &[f64], step: u64, stream: &SeedStream) -> Result<(f64, Vec<f64>), String> {
        let mut st = self.state.lock().expect("state");
        if (st.history.len() as u64) < step {
            return Err(format!("the box history holds {} steps but step {step} is asked for: box.jsonl of the run is incomplete", st.history.len()));
        }
        st.history.truncate(step as usize);
        let lengths = self.boxes(&st.history, step)[step as usize];
        if lengths != st.cell.lengths {
            if lengths.iter().any(|l| !(l.is_finite() && *l > 0.0)) {
                return Err(format!("the box update gave lengths {lengths:?} Å (lower the relaxation rate)"));
            }
            st.cell = Self::cell_at(&self.dp, &self.images, &self.lattice0, lengths, self.effective_mass, self.flow.clone(), (self.temperature, self.levels, self.laplacian))?;
        }
        let (ts, walkers) = st.cell.model.step_with_walkers(theta, &st.cell.h, self.batch, &self.engine, stream, step);
        if too_many_rejected(ts.rejected, self.batch) || walkers.is_empty() {
            return Err(format!("{} of {} walkers were rejected", ts.rejected, self.batch));
        }
        let virials = self.engine.map(walkers.len(), stream, step ^ 0x5157, |i, _| st.cell.h.mechanics(walkers[i].x.as_slice()).map(|m| m.virial));
        let mut stress = [0.0; 3];
        for (w, vir) in walkers.iter().zip(&virials) {
            let vir = vir.ok_or("the harmonic expansion has no stress")?;
            let sigma = st.cell.h.stress(w.kinetic, &vir);
            for a in 0..3 {
                stress[a] += sigma[a] * K_PER_A3_TO_GPA / walkers.len() as f64;
            }
        }
        // Over MPI rank 0 keeps the history; every rank holds the same one in memory.
        if let Some(path) = self.log.as_ref().filter(|_| nct_core::parallel::is_root()) {
            let line = serde_json::json!({"step": step, "box_A": lengths, "stress_GPa": stress, "pressure_GPa": (stress[0] + stress[1] + stress[2]) / 3.0, "F": ts.f});
            let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            writeln!(f, "{line}").and_then(|_| f.sync_data()).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        st.history.push(stress);
        Ok((ts.f, ts.grad))
    }
}

impl<B: Bijector<Dyn> + Clone + Send + Sync> Objective for NptThermal<B> {
    fn model(&self) -> &dyn Parametrised {
        &self.template
    }
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum {
        match self.run_step(theta, step, stream) {
            Ok((f, grad)) => {
                self.state.lock().expect("state").failure = None;
                BatchSum { loss: f, grad, samples: 1 }
            }
            Err(why) => {
                self.state.lock().expect("state").failure = Some(why);
                BatchSum { loss: f64::NAN, grad: vec![0.0; theta.len()], samples: 1 }
            }
        }
    }
    fn diagnose(&self, _theta: &[f64], _step: u64, _stream: &SeedStream) -> Option<String> {
        self.state.lock().expect("state").failure.clone()
    }
    fn loss_name(&self) -> &str {
        "F"
    }
    fn kind(&self) -> &'static str {
        "quantum-thermal"
    }
}
