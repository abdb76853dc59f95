//! Refining a trained classical NCT on the conjugacy equation $H(T(z)) = K(z) + c$.
//!
//! A symplectic map $T$ carries $H$ to the latent $K(Q, P) = \sum_k f_k(I_k)$ exactly iff the
//! residual $r(z) = H(T(z)) - K(z) - c$ vanishes for every $z$; then the latent dynamics (every
//! action conserved, every angle advancing at $f_k'(I_k)$) is the exact dynamics of $H$.
//! Variational training minimises $\mathrm{KL}(q\,\|\,e^{-\beta H}/Z) \approx \tfrac{\beta^2}{2}
//! \mathrm{Var}_p[r]$ from Monte Carlo gradients, so it fixes the frequencies only to the precision
//! the noise allows: a frequency error $\delta\omega$ at action $I$ moves $K$ by about
//! $\delta\omega\, I$, which at small amplitude hardly changes the free energy, while ten periods
//! of dynamics at $10^{-2}$ rad need $\delta\omega/\omega < 1.6\cdot10^{-4}$.
//!
//! This stage minimises $\frac1n\sum_i r(z_i)^2$ deterministically over fixed latent points
//! $z_i \sim p$ (drawn once from the latent of the starting parameters) by Levenberg-Marquardt:
//! damped Gauss-Newton steps $(J^\top J + \lambda I)\delta = J^\top r$ over every flow and latent
//! parameter and the offset $c$, solved in parameter space or, when parameters outnumber points,
//! in point space by $\delta = J^\top(JJ^\top + \lambda I)^{-1} r$. (Marquardt's column scaling,
//! tried on the quartic oscillator, converged more slowly: the latent's few parameters, seen by
//! every point, are best left almost undamped.) The damping falls by 3 after
//! an accepted step and rises by 4 after a rejected one. A second set of held-out points measures
//! generalisation, and the parameters with the lowest held-out residual are returned (early
//! stopping).
//!
//! The plain residual is largest in the thermal tail, so an unweighted fit spends its capacity
//! there and leaves the small-amplitude frequencies loose: an error $\delta f$ at action $I$ is a
//! frequency error of about $\delta f/I$. [`ConjugacyFit::relative_floor`] $= a$ divides each
//! residual by $K_0(z) + a\langle K_0\rangle$ (latent energy at the starting parameters), which
//! balances the relative error of $f$ over the amplitudes; with it, `spread` > 1 puts points into
//! the tail that the weighting would otherwise leave under-resolved. The residual has no noise,
//! so a flow with parameters to spare over-fits a fixed point set (the held-out residual stops
//! falling while the fit residual still falls); [`ConjugacyFit::redraw_every`] replaces the set
//! by a fresh seeded one every few accepted steps.
//!
//! Minimising the angle dependence of $H\circ T$ to learn action-angle variables is the idea of
//! Bondesan & Lamacraft, "Learning symmetries of classical integrable systems" (2019).
//!
//! Rows of $J$ are the flow's VJP of $\nabla H$ and the latent's [`Latent::energy_grad`]; they are
//! computed in parallel in a fixed order, so the result does not depend on the thread count.

use crate::batch::{BatchEngine, SeedStream};
use crate::classical::ClassicalNct;
use crate::dim::Size;
use crate::hamiltonian::Hamiltonian;
use crate::latent::Latent;
use crate::layer::{PhasePoint, SymplecticLayer};
use crate::params::Parametrised;
use nalgebra::{DMatrix, DVector};
use thiserror::Error;

/// Settings of [`ClassicalNct::refine_conjugacy`].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConjugacyFit {
    /// Latent points the residual is fitted on (>= 1).
    pub points: usize,
    /// Held-out latent points for early stopping (>= 1).
    pub held_out: usize,
    /// Most Levenberg-Marquardt iterations (accepted or not).
    pub iterations: usize,
    /// Seed of the two point sets.
    pub seed: u64,
    /// Point $i$ of $n$ is a latent sample scaled by `spread`$^{(i + 1/2)/n}$ (>= 1; 1: samples of
    /// $p$ as they are), so that the fit also sees the thermal tail: exact conjugacy does not
    /// depend on where the points lie, but the fit only learns where they are.
    pub spread: f64,
    /// `None`: the plain residual. `Some(a)`: point $i$'s residual is divided by
    /// $K_0(z_i) + a\,\langle K_0\rangle$ ($K_0$ the latent energy at the starting parameters,
    /// $a > 0$), so that the fit controls the relative error of $f(I)$, hence the frequency
    /// $f'(I)$, at small amplitudes too, where the plain residual is small in absolute terms.
    pub relative_floor: Option<f64>,
    /// Draw a fresh set of fit points after every `redraw_every` accepted steps (0: never). The
    /// residual has no noise, so a fixed set is over-fitted between its points once the flow has
    /// parameters to spare; fresh sets (seeded, so the fit stays reproducible) make it see many more.
    pub redraw_every: usize,
}

impl Default for ConjugacyFit {
    fn default() -> Self {
        Self { points: 4096, held_out: 1024, iterations: 30, seed: 0, spread: 1.0, relative_floor: None, redraw_every: 0 }
    }
}

/// What [`ClassicalNct::refine_conjugacy`] did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ConjugacyReport {
    /// Root-mean-square residual on the fit points and on the held-out points, before.
    pub rms_start: f64,
    pub held_out_rms_start: f64,
    /// The same for the returned parameters.
    pub rms: f64,
    pub held_out_rms: f64,
    /// The fitted offset $c$ ($H(T(z)) \approx K(z) + c$).
    pub offset: f64,
    /// Accepted steps, and the iteration whose parameters are returned (0: the starting ones).
    pub accepted: usize,
    pub best_iteration: usize,
    /// (fit rms, held-out rms) after every accepted step.
    pub history: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, Error, PartialEq)]
pub enum ConjugacyError {
    #[error("conjugacy fit: {what} = {value} is invalid: {allowed}")]
    Setting { what: &'static str, value: usize, allowed: &'static str },
    #[error("conjugacy fit: the Jacobian of {points} points x {params} parameters and its Gram matrix need {gib:.1} GiB (limit {limit:.0} GiB); use fewer points or a smaller flow")]
    TooLarge { points: usize, params: usize, gib: f64, limit: f64 },
    #[error("conjugacy fit: spread = {0} is invalid: a finite factor >= 1")]
    Spread(f64),
    #[error("conjugacy fit: relative floor = {0} is invalid: a finite number > 0")]
    RelativeFloor(f64),
    #[error("conjugacy fit: the residual at fit point {point} is not finite ({value}) at the starting parameters")]
    NonFinite { point: usize, value: f64 },
}

/// Memory the fit may use (the Jacobian, its transpose and the next iterate's Jacobian; the Gram
/// matrix and its factor).
const LIMIT_GIB: f64 = 6.0;

impl ConjugacyFit {
    /// Refuses empty point sets and sizes that cannot fit, with the estimate.
    pub fn validate(&self, n_params: usize) -> Result<(), ConjugacyError> {
        if self.points == 0 {
            return Err(ConjugacyError::Setting { what: "points", value: 0, allowed: "at least 1 latent point" });
        }
        if self.held_out == 0 {
            return Err(ConjugacyError::Setting { what: "held-out points", value: 0, allowed: "at least 1 latent point" });
        }
        if !(self.spread.is_finite() && self.spread >= 1.0) {
            return Err(ConjugacyError::Spread(self.spread));
        }
        if let Some(a) = self.relative_floor {
            if !(a.is_finite() && a > 0.0) {
                return Err(ConjugacyError::RelativeFloor(a));
            }
        }
        let m = n_params + 1;
        let side = m.min(self.points) as f64;
        let gib = (3.0 * self.points as f64 * m as f64 + 2.0 * side * side) * 8.0 / (1u64 << 30) as f64;
        if gib > LIMIT_GIB {
            return Err(ConjugacyError::TooLarge { points: self.points, params: n_params, gib, limit: LIMIT_GIB });
        }
        Ok(())
    }
}

/// The Gauss-Newton system of one iterate: $J^\top J$ and $J^\top r$ when there are no more
/// parameters than points, else $JJ^\top$.
struct Normal {
    gram: DMatrix<f64>,
    jtr: Option<DVector<f64>>,
}

impl Normal {
    fn new(j: &DMatrix<f64>, r: &DVector<f64>) -> Self {
        // Products as GEMMs (`tr_mul` would take dot products column by column).
        let jt = j.transpose();
        if j.ncols() <= j.nrows() { Normal { gram: &jt * j, jtr: Some(&jt * r) } } else { Normal { gram: j * jt, jtr: None } }
    }
    /// $\delta = (J^\top J + \lambda I)^{-1}J^\top r = J^\top(JJ^\top + \lambda I)^{-1}r$; `None` when the
    /// damped matrix is not numerically positive definite.
    fn step(&self, j: &DMatrix<f64>, r: &DVector<f64>, lambda: f64) -> Option<DVector<f64>> {
        let n = self.gram.nrows();
        let chol = (&self.gram + DMatrix::identity(n, n) * lambda).cholesky()?;
        Some(match &self.jtr {
            Some(g) => chol.solve(g),
            None => j.tr_mul(&chol.solve(r)),
        })
    }
}

fn rms(r: &[f64]) -> f64 {
    let s = r.iter().map(|x| x * x).sum::<f64>() / r.len().max(1) as f64;
    if s.is_finite() { s.sqrt() } else { f64::INFINITY }
}

impl<F: SymplecticLayer<N>, N: Size, B: Latent<N>> ClassicalNct<F, N, B> {
    /// The conjugacy residual $r(z) = H(T(z)) - K(z) - c$; with `row` (length parameters + 1),
    /// also $\partial r/\partial(\theta, c)$.
    pub fn conjugacy_residual<H: Hamiltonian<N>>(&self, theta: &[f64], offset: f64, h: &H, z: &PhasePoint<f64, N>, row: Option<&mut [f64]>) -> f64 {
        let (tf, tw) = self.split(theta);
        let nf = tf.len();
        match row {
            None => {
                let (x, _) = self.flow.forward(tf, z);
                let mut scratch = vec![0.0; tw.len()];
                h.energy(&x.q, &x.p) - self.base.energy_grad(tw, z, &mut scratch) - offset
            }
            Some(row) => {
                row.fill(0.0);
                let (x, cache) = self.flow.forward(tf, z);
                let (dq, dp) = h.gradient(&x.q, &x.p);
                self.flow.vjp(tf, &cache, &PhasePoint::new(dq, dp), &mut row[..nf]);
                let latent = &mut row[nf..nf + tw.len()];
                let k = self.base.energy_grad(tw, z, latent);
                latent.iter_mut().for_each(|v| *v = -*v);
                row[nf + tw.len()] = -1.0;
                h.energy(&x.q, &x.p) - k - offset
            }
        }
    }

    /// Levenberg-Marquardt on the conjugacy residual (see the [module docs](crate::conjugacy)),
    /// from `theta`; returns the parameters with the lowest held-out residual and a report.
    pub fn refine_conjugacy<H: Hamiltonian<N>>(&self, theta: &[f64], h: &H, fit: &ConjugacyFit, engine: &BatchEngine) -> Result<(Vec<f64>, ConjugacyReport), ConjugacyError> {
        let p = self.n_params();
        fit.validate(p)?;
        let m = p + 1;
        let tw = self.split(theta).1;
        let table = self.base.table(tw);
        let stream = SeedStream::new(fit.seed);
        let draw = |n: usize, step: u64| -> Vec<PhasePoint<f64, N>> {
            engine.map(n, &stream, step, |i, rng| {
                let s = fit.spread.powf((i as f64 + 0.5) / n as f64);
                self.base.sample(&table, tw, rng).map(|v| v * s)
            })
        };
        let (mut fit_points, held) = (draw(fit.points, 0), draw(fit.held_out, 1));
        // Residual weights, fixed at the starting parameters (so the objective does not move).
        let k0 = |zs: &[PhasePoint<f64, N>]| -> Vec<f64> { engine.map(zs.len(), &stream, 0, |i, _| self.base.energy_grad(tw, &zs[i], &mut vec![0.0; tw.len()]).abs()) };
        let floor = fit.relative_floor.map(|a| a * k0(&fit_points).iter().sum::<f64>() / fit.points as f64);
        let weights = |zs: &[PhasePoint<f64, N>]| -> Vec<f64> {
            match floor {
                None => vec![1.0; zs.len()],
                Some(f) => k0(zs).iter().map(|k| 1.0 / (k + f)).collect(),
            }
        };
        let (mut w_fit, w_held) = (weights(&fit_points), weights(&held));
        let residuals = |th: &[f64], c: f64, zs: &[PhasePoint<f64, N>], w: &[f64]| -> Vec<f64> { engine.map(zs.len(), &stream, 0, |i, _| w[i] * self.conjugacy_residual(th, c, h, &zs[i], None)) };
        let jacobian = |th: &[f64], c: f64, zs: &[PhasePoint<f64, N>], w: &[f64]| -> (Vec<f64>, DMatrix<f64>) {
            let rows: Vec<(f64, Vec<f64>)> = engine.map(zs.len(), &stream, 0, |i, _| {
                let mut row = vec![0.0; m];
                let r = self.conjugacy_residual(th, c, h, &zs[i], Some(&mut row));
                row.iter_mut().for_each(|v| *v *= w[i]);
                (w[i] * r, row)
            });
            let r = rows.iter().map(|(v, _)| *v).collect();
            let flat: Vec<f64> = rows.into_iter().flat_map(|(_, row)| row).collect();
            (r, DMatrix::from_row_slice(zs.len(), m, &flat))
        };

        let mut th = theta.to_vec();
        let mut c = 0.0;
        let (mut r, mut j) = jacobian(&th, c, &fit_points, &w_fit);
        if let Some((i, v)) = r.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ConjugacyError::NonFinite { point: i, value: *v });
        }
        // The offset starts at the (weighted) least-squares value, the mean residual when unweighted.
        c = r.iter().zip(&w_fit).map(|(v, w)| v * w).sum::<f64>() / w_fit.iter().map(|w| w * w).sum::<f64>();
        r.iter_mut().zip(&w_fit).for_each(|(v, w)| *v -= w * c);
        let held_start = rms(&residuals(&th, c, &held, &w_held));
        let mut report = ConjugacyReport { rms_start: rms(&r), held_out_rms_start: held_start, rms: f64::NAN, held_out_rms: held_start, offset: c, accepted: 0, best_iteration: 0, history: Vec::new() };
        let mut best = (th.clone(), c, held_start, rms(&r));
        let mut lambda = 1e-3;
        let mut cost = rms(&r);
        for _ in 0..fit.iterations {
            if j.iter().any(|v| !v.is_finite()) {
                break;
            }
            let rv = DVector::from_column_slice(&r);
            let normal = Normal::new(&j, &rv);
            let mut accepted = false;
            while lambda < 1e8 {
                let Some(step) = normal.step(&j, &rv, lambda) else {
                    lambda *= 4.0;
                    continue;
                };
                let mut trial = th.clone();
                for k in 0..p {
                    trial[k] -= step[k];
                }
                let trial_c = c - step[p];
                let trial_r = residuals(&trial, trial_c, &fit_points, &w_fit);
                let trial_cost = rms(&trial_r);
                if trial_cost < cost {
                    th = trial;
                    c = trial_c;
                    cost = trial_cost;
                    lambda = (lambda / 3.0).max(1e-15);
                    accepted = true;
                    break;
                }
                lambda *= 4.0;
            }
            if !accepted {
                break;
            }
            let held_rms = rms(&residuals(&th, c, &held, &w_held));
            report.accepted += 1;
            report.history.push((cost, held_rms));
            if held_rms < best.2 {
                best = (th.clone(), c, held_rms, cost);
                report.best_iteration = report.accepted;
            }
            if fit.redraw_every > 0 && report.accepted % fit.redraw_every == 0 {
                // A fresh point set (the objective's expectation is the same): the fit sees
                // `points` new points each time instead of over-fitting one set.
                fit_points = draw(fit.points, 1 + (report.accepted / fit.redraw_every) as u64);
                w_fit = weights(&fit_points);
                cost = rms(&residuals(&th, c, &fit_points, &w_fit));
            }
            let next = jacobian(&th, c, &fit_points, &w_fit);
            r = next.0;
            j = next.1;
        }
        let (th, c, held_rms, fit_rms) = best;
        report.rms = fit_rms;
        report.held_out_rms = held_rms;
        report.offset = c;
        Ok((th, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::chain::Chain;
    use crate::dim::{Const, Vector};
    use crate::latent::{AnharmonicOscillators, LatentOscillators};
    use crate::linear::LinearSymplectic;
    use crate::scalar::Scalar;
    use crate::shear::GradientShear;
    use rand::{RngExt, SeedableRng};

    type Rng = crate::batch::NctRng;

    /// $H = p^2/2 + \omega_0^2q^2/2 + \lambda q^4$.
    struct Quartic {
        omega0: f64,
        lambda: f64,
    }
    impl Hamiltonian<Const<1>> for Quartic {
        fn dim(&self) -> Const<1> {
            Const
        }
        fn energy<D: Scalar>(&self, q: &Vector<D, Const<1>>, p: &Vector<D, Const<1>>) -> D {
            p[0] * p[0] * 0.5 + q[0] * q[0] * (0.5 * self.omega0 * self.omega0) + q[0].powi(4) * self.lambda
        }
    }

    fn perturbed<M: Parametrised>(model: &M, seed: u64, size: f64) -> Vec<f64> {
        let mut theta = vec![0.0; model.n_params()];
        model.init_params(&mut Rng::seed_from_u64(seed), &mut theta);
        theta.iter_mut().enumerate().for_each(|(k, t)| *t += size * (1.3 * k as f64 + 0.4).sin());
        theta
    }

    fn rows_match_differences<B: Latent<Const<1>>>(base: B) {
        let flow = Chain::new(GradientShear::kick(Const::<1>, &[4], Activation::Tanh), LinearSymplectic::new(Const::<1>));
        let model = ClassicalNct::new(flow, base);
        let theta = perturbed(&model, 2, 0.2);
        let h = Quartic { omega0: 1.1, lambda: 0.3 };
        let mut rng = Rng::seed_from_u64(7);
        for _ in 0..3 {
            let z = model.latent_sample(&theta, &mut rng);
            let mut row = vec![0.0; theta.len() + 1];
            let r = model.conjugacy_residual(&theta, 0.25, &h, &z, Some(&mut row));
            assert_eq!(r, model.conjugacy_residual(&theta, 0.25, &h, &z, None));
            for k in 0..=theta.len() {
                let eps = 1e-6;
                let at = |d: f64| {
                    let mut t = theta.clone();
                    let mut c = 0.25;
                    if k < t.len() { t[k] += d } else { c += d }
                    model.conjugacy_residual(&t, c, &h, &z, None)
                };
                let fd = (at(eps) - at(-eps)) / (2.0 * eps);
                assert!((row[k] - fd).abs() < 1e-7 * (1.0 + fd.abs()), "parameter {k}: row {} vs differences {fd}", row[k]);
            }
        }
    }

    #[test]
    fn residual_rows_match_central_differences() {
        rows_match_differences(LatentOscillators::new(Const::<1>, 0.8).unwrap());
        rows_match_differences(AnharmonicOscillators::new(Const::<1>, 0.8, 3).unwrap());
    }

    #[test]
    fn parameter_and_point_space_steps_agree() {
        let mut rng = Rng::seed_from_u64(3);
        for (rows, cols) in [(9, 4), (4, 9)] {
            let j = DMatrix::from_fn(rows, cols, |_, _| rng.random::<f64>() - 0.5);
            let r = DVector::from_fn(rows, |_, _| rng.random::<f64>() - 0.5);
            let lambda = 0.07;
            let step = Normal::new(&j, &r).step(&j, &r, lambda).unwrap();
            let dense = (j.tr_mul(&j) + DMatrix::identity(cols, cols) * lambda).cholesky().unwrap().solve(&j.tr_mul(&r));
            assert!((&step - &dense).norm() < 1e-12 * dense.norm(), "{rows} x {cols}");
        }
    }

    #[test]
    fn recovers_the_exact_conjugacy_of_a_harmonic_oscillator_and_its_dynamics() {
        // H = p^2/2 + 1.3^2 q^2/2 is conjugate to a harmonic latent by a linear symplectic map:
        // from a random map and the wrong frequency the fit must reach the exact solution.
        let h = Quartic { omega0: 1.3, lambda: 0.0 };
        let model = ClassicalNct::new(LinearSymplectic::new(Const::<1>), LatentOscillators::new(Const::<1>, 1.0).unwrap());
        let theta = perturbed(&model, 4, 0.1);
        // The exact solution zeroes the weighted residual as well: both weightings must find it.
        for relative_floor in [None, Some(0.1)] {
            let fit = ConjugacyFit { points: 64, held_out: 32, iterations: 60, seed: 5, spread: 1.5, relative_floor, redraw_every: 0 };
            let (refined, report) = model.refine_conjugacy(&theta, &h, &fit, &BatchEngine::new(8)).unwrap();
            assert!(report.rms_start > 1e-2, "the start must be far from exact: {}", report.rms_start);
            assert!(report.rms < 1e-10 && report.held_out_rms < 1e-10, "{relative_floor:?}: {report:?}");
            assert!(report.offset.abs() < 1e-10);
            assert!((model.frequencies(&refined)[0] - 1.3).abs() < 1e-9);
        }
        let fit = ConjugacyFit { points: 64, held_out: 32, iterations: 60, seed: 5, spread: 1.5, relative_floor: None, redraw_every: 0 };
        let (refined, _) = model.refine_conjugacy(&theta, &h, &fit, &BatchEngine::new(8)).unwrap();
        // The latent dynamics is then the exact solution q cos(wt) + p/w sin(wt).
        let x0 = PhasePoint::<f64, Const<1>>::new(Vector::from([0.7]), Vector::from([-0.2]));
        let times = [0.3, 2.0, 11.0];
        for (x, t) in model.trajectory(&refined, &x0, &times).iter().zip(times) {
            let (s, c) = (1.3 * t).sin_cos();
            assert!((x.q[0] - (0.7 * c - 0.2 / 1.3 * s)).abs() < 1e-8 && (x.p[0] - (-0.7 * 1.3 * s - 0.2 * c)).abs() < 1e-8);
        }
    }

    #[test]
    fn the_fit_does_not_depend_on_the_thread_count() {
        let h = Quartic { omega0: 1.0, lambda: 0.5 };
        let flow = Chain::new(GradientShear::kick(Const::<1>, &[6], Activation::Tanh), LinearSymplectic::new(Const::<1>));
        let model = ClassicalNct::new(flow, AnharmonicOscillators::new(Const::<1>, 1.0, 3).unwrap());
        let theta = perturbed(&model, 6, 0.05);
        let fit = ConjugacyFit { points: 200, held_out: 50, iterations: 4, seed: 1, spread: 1.3, relative_floor: Some(0.3), redraw_every: 2 };
        let run = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| model.refine_conjugacy(&theta, &h, &fit, &BatchEngine::new(16)).unwrap());
        let (a, b) = (run(1), run(2));
        assert_eq!(a, b);
        assert!(a.1.rms < a.1.rms_start && a.1.accepted > 0);
    }

    #[test]
    fn refuses_empty_point_sets_and_sizes_that_cannot_fit() {
        let fit = ConjugacyFit { points: 0, ..ConjugacyFit::default() };
        assert!(matches!(fit.validate(10), Err(ConjugacyError::Setting { what: "points", .. })));
        let fit = ConjugacyFit { held_out: 0, ..ConjugacyFit::default() };
        assert!(matches!(fit.validate(10), Err(ConjugacyError::Setting { .. })));
        for a in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let fit = ConjugacyFit { relative_floor: Some(a), ..ConjugacyFit::default() };
            assert!(matches!(fit.validate(10), Err(ConjugacyError::RelativeFloor(_))), "{a}");
        }
        let err = ConjugacyFit { points: 1_000_000, ..ConjugacyFit::default() }.validate(100_000).unwrap_err();
        assert!(err.to_string().contains("GiB") && err.to_string().contains("1000000 points"), "{err}");
        assert!(ConjugacyFit::default().validate(10_000).is_ok());
    }
}
