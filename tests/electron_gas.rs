//! The uniform electron gas against an independent exact diagonalisation: two and three
//! spin-polarised electrons in the 2D box (CoulombGas conventions: L = sqrt(pi N), Ry / r_s^2,
//! Theta = 0.15, twist (1/4, 1/4)) in a plane-wave basis, blocked by total momentum. The oracle shares no code
//! with the Monte Carlo path: its interaction is the Fourier series of the periodic Coulomb
//! potential, ṽ(q) = 2 pi / (A |q|) with the q = 0 term removed (the neutralising background), plus
//! the Madelung self-energy 2 r_s * N xi_M / (2 L) with the literature value of xi_M; the Monte
//! Carlo path uses the real-space Ewald sum.

use nct::models::electron_gas::ElectronGas;
use nct::periodic::*;
use nct::*;
use std::collections::HashMap;

const XI_SQUARE: f64 = -3.9002649200;

/// Thermodynamics of the canonical ensemble of the levels `e` at inverse temperature `beta`.
fn thermo(e: &[f64], beta: f64) -> (f64, f64, f64) {
    let e0 = e.iter().cloned().fold(f64::INFINITY, f64::min);
    let w: Vec<f64> = e.iter().map(|x| (-beta * (x - e0)).exp()).collect();
    let z: f64 = w.iter().sum();
    let f = e0 - z.ln() / beta;
    let u = e.iter().zip(&w).map(|(x, wi)| x * wi).sum::<f64>() / z;
    (f, u, beta * (u - f))
}

/// The plane waves |n|^2 <= cut of the 2D box: one-body energies and the Fourier coefficient of
/// the periodic Coulomb potential between two of them, ṽ(k_a - k_b) = 2 pi / (A |k_a - k_b|)
/// (zero for equal momenta: the neutralising background).
struct PlaneWaveBox {
    ns: Vec<[i64; 2]>,
    side: f64,
    twist: [f64; 2],
}

impl PlaneWaveBox {
    fn new(side: f64, twist: [f64; 2], cut: i64) -> Self {
        let reach = (cut as f64).sqrt() as i64;
        let ns = (-reach..=reach).flat_map(|a| (-reach..=reach).map(move |b| [a, b])).filter(|v| v[0] * v[0] + v[1] * v[1] <= cut).collect();
        PlaneWaveBox { ns, side, twist }
    }
    fn tp(&self) -> f64 {
        2.0 * std::f64::consts::PI / self.side
    }
    fn kinetic(&self, j: usize) -> f64 {
        let v = self.ns[j];
        (self.tp() * (v[0] as f64 + self.twist[0])).powi(2) + (self.tp() * (v[1] as f64 + self.twist[1])).powi(2)
    }
    fn coulomb(&self, a: usize, b: usize) -> f64 {
        let (x, y) = (self.ns[a], self.ns[b]);
        let q = self.tp() * (((x[0] - y[0]) as f64).powi(2) + ((x[1] - y[1]) as f64).powi(2)).sqrt();
        if q == 0.0 { 0.0 } else { 2.0 * std::f64::consts::PI / (self.side * self.side * q) }
    }
    fn momentum(&self, orbitals: &[usize]) -> [i64; 2] {
        orbitals.iter().fold([0, 0], |acc, &j| [acc[0] + self.ns[j][0], acc[1] + self.ns[j][1]])
    }
}

/// Every two-electron level of the 2D box of side `side` with plane waves |n|^2 <= `cut`, from the
/// antisymmetrised first-quantised matrix elements <c d|V|a b> = 2 r_s [ṽ(k_c - k_a) - ṽ(k_c - k_b)].
fn two_electron_levels(side: f64, twist: [f64; 2], rs: f64, cut: i64) -> Vec<f64> {
    let pw = PlaneWaveBox::new(side, twist, cut);
    let mut blocks: HashMap<[i64; 2], Vec<(usize, usize)>> = HashMap::new();
    for a in 0..pw.ns.len() {
        for b in a + 1..pw.ns.len() {
            blocks.entry(pw.momentum(&[a, b])).or_default().push((a, b));
        }
    }
    let madelung = 2.0 * rs * XI_SQUARE / side;
    let mut levels = Vec::new();
    for pairs in blocks.values() {
        let m = pairs.len();
        let h = nalgebra::DMatrix::from_fn(m, m, |r, c| {
            let ((a, b), (cc, _)) = (pairs[c], pairs[r]);
            // <c d| V |a b> antisymmetrised; momentum is conserved within the block.
            let v = 2.0 * rs * (pw.coulomb(cc, a) - pw.coulomb(cc, b));
            v + if r == c { pw.kinetic(a) + pw.kinetic(b) + madelung } else { 0.0 }
        });
        levels.extend(h.symmetric_eigen().eigenvalues.iter().cloned());
    }
    levels
}

/// Every level of N electrons in the 2D box with plane waves |n|^2 <= `cut`, by second
/// quantisation: V = sum_{p<q} sum_{r<s} [ṽ(k_r - k_p) - ṽ(k_r - k_q)] c+_r c+_s c_q c_p (momentum
/// conserved), occupations as bit masks, blocks of equal total momentum.
fn many_electron_levels(n: usize, side: f64, twist: [f64; 2], rs: f64, cut: i64) -> Vec<f64> {
    let pw = PlaneWaveBox::new(side, twist, cut);
    let m = pw.ns.len();
    assert!(m <= 128, "bit masks hold 128 orbitals");
    let mut pairs: HashMap<[i64; 2], Vec<(usize, usize)>> = HashMap::new();
    for r in 0..m {
        for s in r + 1..m {
            pairs.entry(pw.momentum(&[r, s])).or_default().push((r, s));
        }
    }
    // Every N-subset, by total momentum.
    let mut blocks: HashMap<[i64; 2], Vec<u128>> = HashMap::new();
    fn subsets(m: usize, left: usize, from: usize, mask: u128, out: &mut Vec<u128>) {
        if left == 0 {
            out.push(mask);
            return;
        }
        for j in from..=m - left {
            subsets(m, left - 1, j + 1, mask | 1 << j, out);
        }
    }
    let mut all = Vec::new();
    subsets(m, n, 0, 0, &mut all);
    for mask in all {
        let occ: Vec<usize> = (0..m).filter(|j| mask >> j & 1 == 1).collect();
        blocks.entry(pw.momentum(&occ)).or_default().push(mask);
    }
    // c_j or c+_j on `mask`: the sign (-1)^(occupied below j).
    let sign = |mask: u128, j: usize| if (mask & ((1u128 << j) - 1)).count_ones() % 2 == 0 { 1.0 } else { -1.0 };
    let madelung = 2.0 * rs * n as f64 * XI_SQUARE / (2.0 * side);
    let mut levels = Vec::new();
    for states in blocks.values() {
        let index: HashMap<u128, usize> = states.iter().enumerate().map(|(i, &s)| (s, i)).collect();
        let dim = states.len();
        let mut h = nalgebra::DMatrix::<f64>::zeros(dim, dim);
        for (col, &st) in states.iter().enumerate() {
            let occ: Vec<usize> = (0..m).filter(|j| st >> j & 1 == 1).collect();
            h[(col, col)] += occ.iter().map(|&j| pw.kinetic(j)).sum::<f64>() + madelung;
            for (a, &p) in occ.iter().enumerate() {
                for &q in &occ[a + 1..] {
                    // c_q c_p, then c+_s c+_r... applied as c+_r c+_s c_q c_p.
                    let s1 = sign(st, p);
                    let m1 = st & !(1u128 << p);
                    let s2 = sign(m1, q);
                    let m2 = m1 & !(1u128 << q);
                    for &(r, s) in &pairs[&pw.momentum(&[p, q])] {
                        if m2 >> r & 1 == 1 || m2 >> s & 1 == 1 {
                            continue;
                        }
                        let s3 = sign(m2, s);
                        let m3 = m2 | 1u128 << s;
                        let s4 = sign(m3, r);
                        let m4 = m3 | 1u128 << r;
                        let amp = 2.0 * rs * (pw.coulomb(r, p) - pw.coulomb(r, q));
                        h[(index[&m4], col)] += s1 * s2 * s3 * s4 * amp;
                    }
                }
            }
        }
        assert!((&h - h.transpose()).abs().max() < 1e-12, "H is symmetric");
        levels.extend(h.symmetric_eigen().eigenvalues.iter().cloned());
    }
    levels
}

const THETA: f64 = 0.15;
const TWIST: [f64; 2] = [0.25, 0.25];

fn side(n: usize) -> f64 {
    (std::f64::consts::PI * n as f64).sqrt()
}

#[test]
fn the_oracle_reduces_to_free_electrons_and_is_converged_in_its_basis() {
    let beta = 1.0 / (4.0 * THETA);
    let pw = TwistedPlaneWaves::new(side(2), &TWIST, 25);
    let free = free_electron_thermo(&pw, 2, beta);
    let (f, e, s) = thermo(&two_electron_levels(side(2), TWIST, 0.0, 25), beta);
    assert!((f - free.f).abs() < 1e-10 && (e - free.e).abs() < 1e-10 && (s - free.s).abs() < 1e-10, "{f} {e} {s} vs {free:?}");
    for rs in [1.0, 5.0] {
        let (f49, e49, _) = thermo(&two_electron_levels(side(2), TWIST, rs, 49), beta);
        let (f100, e100, _) = thermo(&two_electron_levels(side(2), TWIST, rs, 100), beta);
        eprintln!("r_s = {rs}: ED F {f100:.6} E {e100:.6} (|n|^2 <= 100), F {f49:.6} E {e49:.6} (<= 49)");
        assert!((f49 - f100).abs() < 1e-4 && (e49 - e100).abs() < 1e-4, "basis convergence at r_s = {rs}");
    }
}

/// The first-order bound F0 + <V>0 by exact sampling against its exact value: for two electrons
/// in plane waves the diagonal of V is the exchange term -2 r_s ṽ(k_a - k_b) plus the Madelung
/// energy, averaged over the canonical free-electron ensemble; it lies above the exact F.
#[test]
fn first_order_bound_is_exact_and_above_the_oracle() {
    let beta = 1.0 / (4.0 * THETA);
    for rs in [1.0, 5.0] {
        let gas = ElectronGas::new(2, 2, rs).unwrap();
        let pw = gas.orbitals(&TWIST, 25).unwrap();
        let l = gas.side();
        let e = pw.energies();
        let sets = orbital_sets(&e, 2, 1e9, 10_000).unwrap();
        let weights: Vec<f64> = sets.iter().map(|s| (-beta * s.excitation).exp()).collect();
        let z: f64 = weights.iter().sum();
        let v0: f64 = sets
            .iter()
            .zip(&weights)
            .map(|(s, w)| {
                let pair = PlaneWaveBox { ns: s.occupied.iter().map(|&j| [pw.n[j][0], pw.n[j][1]]).collect(), side: l, twist: TWIST };
                w / z * (-2.0 * rs * pair.coulomb(0, 1) + 2.0 * rs * XI_SQUARE / l)
            })
            .sum();
        let f1 = free_electron_thermo(&pw, 2, beta).f + v0;
        let (got, err) = first_order_free_energy(&pw, 2, beta, &gas, 40_000, 7);
        let (f_ed, _, _) = thermo(&two_electron_levels(l, TWIST, rs, 49), beta);
        eprintln!("r_s = {rs}: F0 + <V>0 = {f1:.5} exact, {got:.5} +- {err:.5} sampled; ED F {f_ed:.5}");
        assert!((got - f1).abs() < 4.0 * err && err < 0.02 * (1.0 + f1.abs()), "{got} +- {err} vs {f1}");
        assert!(f1 > f_ed, "Gibbs-Bogoliubov: {f1} vs {f_ed}");
    }
}

/// N = 2, r_s = 1 and 5, Theta = 0.15 (acceptance 3 of the electron-gas issue): the trained F is
/// an upper bound of the exact one within 1%, E within 2 sigma + 1%, and the flow lowers F below
/// the first-order value of the identity flow with free-electron occupations.
#[test]
fn two_electrons_trained_free_energy_is_a_tight_upper_bound_of_exact_diagonalisation() {
    use nct::driver::Driver;
    use nct::run::RunArgs;
    for rs in [1.0, 5.0] {
        let gas = ElectronGas::new(2, 2, rs).unwrap();
        let beta = gas.beta(THETA);
        let (f_ed, e_ed, s_ed) = thermo(&two_electron_levels(gas.side(), TWIST, rs, 100), beta);
        let pw = gas.orbitals(&TWIST, 25).unwrap();
        let sets = orbital_sets(&pw.energies(), 2, 20.0 / beta, 10_000).unwrap();
        let flow = Stack::new(vec![PeriodicBackflow::new(2, &[gas.side(); 2], 5).unwrap(); 2]);
        let model = ThermalGas::new(GasState::new(flow, pw, 2).unwrap(), EnumeratedOccupation::new(sets, beta));
        let zero = vec![0.0; model.n_params()];
        let first = GasThermal::new(&model, &gas, 512).stratified_estimate(&zero, 130_000, 1).unwrap().thermal;
        let args = RunArgs { steps: 600, lr: 0.05, seed: 6, batch: 512, quiet: true, ..Default::default() };
        let trained = Driver::new("ueg2", GasThermal::new(&model, &gas, 512)).run(&args, &args).unwrap();
        let est = trained.objective.stratified_estimate(&trained.theta, 130_000, 2).unwrap();
        let t = &est.thermal;
        eprintln!(
            "r_s = {rs}: ED F {f_ed:.5} E {e_ed:.5} S {s_ed:.4}; first order F {:.5} +- {:.5}; trained F {:.5} +- {:.5} ({:+.2}%), E {:.5} +- {:.5}, S {:.4}, Im E {:.1e}",
            first.f.0, first.f.1, t.f.0, t.f.1, 100.0 * (t.f.0 - f_ed) / f_ed.abs(), t.e.0, t.e.1, t.s, est.e_imag.0
        );
        assert!(t.f.0 + 3.0 * t.f.1 > f_ed, "not an upper bound at r_s = {rs}");
        assert!(t.f.0 - f_ed < 0.01 * f_ed.abs(), "F not within 1% at r_s = {rs}");
        assert!((t.e.0 - e_ed).abs() < 2.0 * t.e.1 + 0.01 * e_ed.abs(), "E at r_s = {rs}");
        assert!(t.f.0 < first.f.0 - 5.0 * (t.f.1 + first.f.1), "the flow does not lower F at r_s = {rs}");
    }
}

/// With three electrons and a backflow the phase of psi varies and Im E_loc is not zero sample by
/// sample; its average is (H is Hermitian and psi normalised).
#[test]
fn imaginary_local_energy_averages_to_zero() {
    let gas = ElectronGas::new(3, 2, 2.0).unwrap();
    let beta = gas.beta(THETA);
    let pw = gas.orbitals(&TWIST, 25).unwrap();
    let sets = orbital_sets(&pw.energies(), 3, 8.0, 10_000).unwrap();
    let flow = Stack::new(vec![PeriodicBackflow::new(3, &[gas.side(); 2], 4).unwrap(); 2]);
    let model = ThermalGas::new(GasState::new(flow, pw, 3).unwrap(), EnumeratedOccupation::new(sets, beta));
    let mut theta = vec![0.0; model.n_params()];
    for (k, t) in theta.iter_mut().enumerate().take(8) {
        *t = 1.5 * (1.7 * k as f64 + 0.3).sin();
    }
    let obj = GasThermal::new(&model, &gas, 512);
    let step = obj.step(&theta, 4000, &SeedStream::new(9), 0, false);
    let (mean, err) = step.e_imag;
    let spread = err * (4000f64).sqrt();
    eprintln!("Im E_loc: mean {mean:.3e} +- {err:.3e}, spread {spread:.3}, Re E {:?}", step.e);
    assert!(spread > 1e-2, "Im E_loc is zero sample by sample: {spread}");
    assert!(mean.abs() < 4.0 * err, "{mean} +- {err}");
}

/// Acceptance 2 of the electron-gas issue: N = 13, Theta = 0.15, twist (1/4, 1/4), E_max = 25
/// (81 plane waves). The exact recursion gives F / E / S = 24.81105176 / 27.52425824 / 4.52201079;
/// CoulombGas's transformer (2 blocks, width 16, 4 heads, MLP 32), pretrained here by maximum
/// likelihood on exact canonical samples, reaches F within 0.002 and S within 0.05.
#[test]
fn pretrained_transformer_reaches_the_free_electron_reference() {
    use nct::driver::Driver;
    use nct::run::RunArgs;
    let gas = ElectronGas::new(13, 2, 1.0).unwrap();
    let beta = gas.beta(THETA);
    let e = gas.orbitals(&TWIST, 25).unwrap().energies();
    let target = CanonicalElectrons::new(&e, 13, beta);
    assert!((-target.ln_z() / beta - 24.81105176).abs() < 1e-7);
    let tr = TransformerOccupation::new(13, &e, beta).unwrap();
    // 4000 steps of 256 exact samples (about 140 s on two cores).
    let args = RunArgs { steps: 4000, lr: 0.01, seed: 0, batch: 256, quiet: true, ..Default::default() };
    let trained = Driver::new("pretrain13", LikelihoodPretraining::new(&tr, target, 256)).run(&args, &args).unwrap();
    let est = FreeOccupation::new(&tr, &e, 256).estimate(&trained.theta, 32_768, 5);
    eprintln!("pretrained N = 13: F {:.5} +- {:.5}, E {:.4} +- {:.4}, S {:.4} +- {:.4} (exact 24.81105 / 27.52426 / 4.52201)", est.f.0, est.f.1, est.e.0, est.e.1, est.s.0, est.s.1);
    assert!(est.f.0 > 24.81105176 - 4.0 * est.f.1, "below the exact free energy");
    assert!((est.f.0 - 24.81105176).abs() < 0.002 && (est.s.0 - 4.52201079).abs() < 0.05, "F {:?} S {:?}", est.f, est.s);
}

/// Stochastic reconfiguration (block-diagonal natural gradient, plain descent) trains the same
/// two-electron model to the same tight bound in a third of Adam's steps.
#[test]
fn stochastic_reconfiguration_reaches_the_oracle_bound() {
    use nct::driver::{Driver, Optimiser};
    use nct::run::RunArgs;
    use nct::sr::SrConfig;
    let rs = 5.0;
    let gas = ElectronGas::new(2, 2, rs).unwrap();
    let beta = gas.beta(THETA);
    let (f_ed, _, _) = thermo(&two_electron_levels(gas.side(), TWIST, rs, 100), beta);
    let pw = gas.orbitals(&TWIST, 25).unwrap();
    let sets = orbital_sets(&pw.energies(), 2, 20.0 / beta, 10_000).unwrap();
    let flow = Stack::new(vec![PeriodicBackflow::new(2, &[gas.side(); 2], 5).unwrap(); 2]);
    let model = ThermalGas::new(GasState::new(flow, pw, 2).unwrap(), EnumeratedOccupation::new(sets, beta));
    let args = RunArgs { steps: 200, lr: 0.3, seed: 6, batch: 512, quiet: true, ..Default::default() };
    let objective = GasThermal::new(&model, &gas, 512).with_sr(SrConfig { damping: 1e-3, max_norm: 0.1 });
    let trained = Driver::new("ueg2-sr", objective).optimiser(Optimiser::Sgd { momentum: 0.0 }).run(&args, &args).unwrap();
    let t = trained.objective.stratified_estimate(&trained.theta, 130_000, 2).unwrap().thermal;
    eprintln!("SR, r_s = {rs}: ED F {f_ed:.5}; trained F {:.5} +- {:.5} ({:+.2}%)", t.f.0, t.f.1, 100.0 * (t.f.0 - f_ed) / f_ed.abs());
    assert!(t.f.0 + 3.0 * t.f.1 > f_ed && t.f.0 - f_ed < 0.01 * f_ed.abs());
}

/// The second-quantised oracle reproduces the two-electron one (signs of the pair excitations),
/// and gives the three-electron reference, converged in its basis.
#[test]
fn the_many_electron_oracle_agrees_with_the_two_electron_one() {
    let beta = 1.0 / (4.0 * THETA);
    let mut a = two_electron_levels(side(2), TWIST, 5.0, 16);
    let mut b = many_electron_levels(2, side(2), TWIST, 5.0, 16);
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-10));
    for rs in [1.0, 5.0] {
        let (f16, e16, _) = thermo(&many_electron_levels(3, side(3), TWIST, rs, 16), beta);
        let (f25, e25, s25) = thermo(&many_electron_levels(3, side(3), TWIST, rs, 25), beta);
        eprintln!("N = 3, r_s = {rs}: ED F {f25:.6} E {e25:.6} S {s25:.4} (|n|^2 <= 25), F {f16:.6} E {e16:.6} (<= 16)");
        assert!((f16 - f25).abs() < 2e-3 * f25.abs().max(1.0));
    }
}

/// Trains `flow` with enumerated occupations (every set within 20 k_BT) on three electrons at
/// `rs` and returns (ED F, ED E, trained estimate, identity-flow estimate).
fn train_three_electrons<B: Bijector<Dyn>>(rs: f64, flow: B, steps: u64, batch: usize, samples: usize) -> (f64, f64, GasEstimate, GasEstimate) {
    use nct::driver::Driver;
    use nct::run::RunArgs;
    let gas = ElectronGas::new(3, 2, rs).unwrap();
    let beta = gas.beta(THETA);
    let (f_ed, e_ed, _) = thermo(&many_electron_levels(3, gas.side(), TWIST, rs, 25), beta);
    let pw = gas.orbitals(&TWIST, 25).unwrap();
    let sets = orbital_sets(&pw.energies(), 3, 20.0 / beta, 10_000).unwrap();
    let model = ThermalGas::new(GasState::new(flow, pw, 3).unwrap(), EnumeratedOccupation::new(sets, beta));
    let args = RunArgs { steps, lr: 0.05, seed: 6, batch, quiet: true, ..Default::default() };
    let trained = Driver::new("ueg3", GasThermal::new(&model, &gas, batch)).run(&args, &args).unwrap();
    let est = trained.objective.stratified_estimate(&trained.theta, samples, 2).unwrap();
    let zero = trained.objective.stratified_estimate(&vec![0.0; model.n_params()], samples, 1).unwrap();
    (f_ed, e_ed, est, zero)
}

/// Three electrons at r_s = 5 against the second-quantised oracle (|n|^2 <= 25): the trained F is
/// an upper bound within 1%. (At r_s = 1, where F = 0.1026 is close to zero, the same flow stays
/// 0.0028 Ry/r_s^2 above: 2.7 % of F, measured, not asserted.)
#[test]
fn three_electrons_trained_free_energy_is_a_tight_upper_bound() {
    let rs = 5.0;
    let side = ElectronGas::new(3, 2, rs).unwrap().side();
    let flow = Stack::new(vec![PeriodicBackflow::new(3, &[side; 2], 5).unwrap(); 2]);
    let (f_ed, e_ed, est, zero) = train_three_electrons(rs, flow, 600, 512, 130_000);
    let (t, zero) = (&est.thermal, &zero.thermal);
    eprintln!("N = 3, r_s = {rs}: ED F {f_ed:.5} E {e_ed:.5}; trained F {:.5} +- {:.5} ({:+.2}%), E {:.5} +- {:.5}", t.f.0, t.f.1, 100.0 * (t.f.0 - f_ed) / f_ed.abs(), t.e.0, t.e.1);
    assert!(t.f.0 + 3.0 * t.f.1 > f_ed && t.f.0 - f_ed < 0.01 * f_ed.abs());
    assert!((t.e.0 - e_ed).abs() < 2.0 * t.e.1 + 0.01 * e_ed.abs());
    assert!(t.f.0 < zero.f.0 - 5.0 * (t.f.1 + zero.f.1), "the flow does not lower F");
}

/// The FermiNet-style flow (one- and two-body streams, contraction by its Lipschitz bound, exact
/// samples through its inverse) trained on three electrons at r_s = 5: an upper bound of the
/// second-quantised oracle within 1%, below the identity flow's value.
#[test]
fn ferminet_flow_trains_three_electrons_to_a_tight_upper_bound() {
    let rs = 5.0;
    let side = ElectronGas::new(3, 2, rs).unwrap().side();
    let flow = FermiNetBackflow::new(3, &[side; 2], 2, 16, 16).unwrap();
    let (f_ed, e_ed, est, zero) = train_three_electrons(rs, flow, 300, 256, 40_000);
    let (t, zero) = (&est.thermal, &zero.thermal);
    eprintln!("FermiNet, N = 3, r_s = {rs}: ED F {f_ed:.5} E {e_ed:.5}; identity F {:.5} +- {:.5}; trained F {:.5} +- {:.5} ({:+.2}%), E {:.5} +- {:.5}", zero.f.0, zero.f.1, t.f.0, t.f.1, 100.0 * (t.f.0 - f_ed) / f_ed.abs(), t.e.0, t.e.1);
    assert!(t.f.0 + 3.0 * t.f.1 > f_ed && t.f.0 - f_ed < 0.01 * f_ed.abs());
    assert!((t.e.0 - e_ed).abs() < 2.0 * t.e.1 + 0.01 * e_ed.abs());
    assert!(t.f.0 < zero.f.0 - 5.0 * (t.f.1 + zero.f.1), "the flow does not lower F");
}
