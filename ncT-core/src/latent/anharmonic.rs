//! Latent oscillators whose frequencies depend on their amplitude.
//!
//! Each mode is an integrable oscillator in action-angle form, $K_k = f_k(I_k)$ with the action
//! $I = (P^2 + \omega^2 Q^2)/(2\omega)$, $u = I/I_s$ and
//! $$ f'(I) = \omega\Big[\epsilon + (1 - \epsilon)\Big(1 + \sum_{j=1}^{M} b_j\,\frac{u}{u + c_j}\Big)^2\Big],
//!    \qquad f(0) = 0, $$
//! integrated in closed form (logarithms of $1 + u/c_j$), with free coefficients $b_j$ (the
//! parameters), $\epsilon = 10^{-2}$: $f' \ge \epsilon\,\omega > 0$ for every parameter value,
//! $f'(0) = \omega$, and with every $b_j = 0$ the mode is exactly harmonic. The square lets the
//! signed sum fit the square root of any smooth positive frequency profile. $I_s = 1/(\beta\omega_0)$
//! is the thermal action of the initial frequency and $c_j = 2^{j-3}$ spread the basis over small
//! and large amplitudes.
//!
//! The latent density is $p(Q, P) = e^{-\beta f(I)}/(2\pi Z)$, $Z = \int_0^\infty e^{-\beta f(I)}dI$
//! (uniform angle). $Z$ and its parameter derivatives come from Gauss-Legendre panels cut at fixed
//! levels of $\Phi = \beta f$ (unit test: 1e-10 against an independent quadrature); the mean frequency is exactly
//! $\langle f'(I)\rangle = 1/(\beta Z)$.
//!
//! Sampling is exact: a standard-normal pair $(\xi, \eta)$ gives the angle and the exponential
//! variate $e = (\xi^2 + \eta^2)/2$, the action solves $S(I) = e^{-e}$ ($S$ the survival function;
//! Newton on the quadrature) and $(Q, P) = (\xi, \eta)\sqrt{I/e}\,(\omega^{-1/2}, \omega^{1/2})$.
//! For a harmonic mode this is $Q = \xi/(\sqrt\beta\omega)$, $P = \eta/\sqrt\beta$, the draw of
//! [`LatentOscillators`](super::LatentOscillators). The reparameterised gradient differentiates
//! $S(I(\theta); \theta) = e^{-e}$ implicitly (Figurnov, Mohamed & Mnih, "Implicit
//! Reparameterization Gradients", NeurIPS 2018): with $A(u) = \int_0^u e^{-\Phi}$,
//! $T(u) = \int_u^\infty e^{-\Phi}$ and their $\partial_\theta\Phi$-weighted analogues $A_\theta, T_\theta$,
//! $$ \frac{du}{d\theta} = \frac{A_\theta(u)\,T(u) - T_\theta(u)\,A(u)}{Z\,e^{-\Phi(u)}}, $$
//! free of cancellation at small and at large actions. [`Latent::reparam_vjp`] returns the path
//! derivative along $z(\epsilon, \theta)$ (the zero-mean score term left out).

use super::quadrature::panel;
use super::Latent;
use crate::dim::Size;
use crate::error::ConfigError;
use crate::layer::PhasePoint;
use crate::params::{ParamGroup, Parametrised};
use rand_distr::{Distribution, StandardNormal};
use std::f64::consts::PI;

/// Levels of $\Phi = \beta f$ at which the quadrature panels are cut (steps of at most 8, so that
/// $e^{-\Phi}$ is resolved by 20 nodes; the mass beyond the last level is below $10^{-26}$).
const LEVELS: [f64; 29] = [0.0, 0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 14.0, 16.0, 19.0, 22.0, 26.0, 30.0, 35.0, 40.0, 46.0, 52.0, 60.0];

/// Smallest $f'/\omega$ the parametrisation allows.
const FLOOR: f64 = 0.01;

/// $h(u) = u - c\ln(1 + u/c)$ given $l = \ln(1 + u/c)$, by its series where that cancels.
fn h_with(u: f64, c: f64, l: f64) -> f64 {
    let x = u / c;
    if x < 0.1 {
        // x - ln(1 + x) = sum_{n >= 2} (-1)^n x^n / n
        let mut term = x * x;
        let mut s = 0.0;
        for n in 2..=17 {
            s += if n % 2 == 0 { term / n as f64 } else { -term / n as f64 };
            term *= x;
        }
        c * s
    } else {
        u - c * l
    }
}

/// One mode's $\Phi(u) = \beta f(I_s u)$ as a function of the scaled action $u = I/I_s$:
/// $\Phi = r[\epsilon u + (1 - \epsilon) G(u)]$ with
/// $G = u + 2\sum_i b_i h_i + \sum_{ij} b_i b_j h_{ij}$, $h_{ij} = \int_0^u \frac{x^2\,dx}{(x + c_i)(x + c_j)}
/// = u + A_{ij}\ln(1 + u/c_i) + A_{ji}\ln(1 + u/c_j)$, $A_{ij} = c_i^2/(c_j - c_i)$ ($i \ne j$), and
/// $h_{ii} = u - 2c_i\ln(1 + u/c_i) + u c_i/(u + c_i)$. The cross terms are summed once per shape:
/// $\sum_{i \ne j} b_i b_j h_{ij} = u\,s_2 + 2\sum_i w_i \ln(1 + u/c_i)$.
#[derive(Clone, Debug)]
struct Shape {
    /// $\omega / \omega_0$.
    r: f64,
    b: Vec<f64>,
    /// $w_i = b_i\sum_{j \ne i} b_j A_{ij}$ and $s_2 = \sum_{i \ne j} b_i b_j$.
    w: Vec<f64>,
    s2: f64,
}

fn cross_coef(c: &[f64], i: usize, j: usize) -> f64 {
    c[i] * c[i] / (c[j] - c[i])
}

impl Shape {
    fn new(r: f64, b: Vec<f64>, c: &[f64]) -> Self {
        let m = b.len();
        let w = (0..m).map(|i| b[i] * (0..m).filter(|&j| j != i).map(|j| b[j] * cross_coef(c, i, j)).sum::<f64>()).collect();
        let total: f64 = b.iter().sum();
        let s2 = total * total - b.iter().map(|x| x * x).sum::<f64>();
        Shape { r, b, w, s2 }
    }
    /// $G(u)$.
    fn g(&self, u: f64, c: &[f64]) -> f64 {
        let mut g = u * (1.0 + self.s2);
        for (i, (&b, &ci)) in self.b.iter().zip(c).enumerate() {
            let l = (u / ci).ln_1p();
            let hii = u - 2.0 * ci * l + u * ci / (u + ci);
            g += b * (2.0 * h_with(u, ci, l) + b * hii) + 2.0 * self.w[i] * l;
        }
        g
    }
    fn phi(&self, u: f64, c: &[f64]) -> f64 {
        self.r * (FLOOR * u + (1.0 - FLOOR) * self.g(u, c))
    }
    fn dphi(&self, u: f64, c: &[f64]) -> f64 {
        let mut s = 1.0;
        for (b, c) in self.b.iter().zip(c) {
            s += b * u / (u + c);
        }
        self.r * (FLOOR + (1.0 - FLOOR) * s * s)
    }
    /// $\partial\Phi/\partial(\ln\omega, b_1, \dots, b_M)$ at fixed $u$ into `out`, returns $\Phi$:
    /// $\partial G/\partial b_k = 2h_k + 2b_k h_{kk} + 2\sum_{j \ne k} b_j h_{kj}$.
    fn dparams(&self, u: f64, c: &[f64], out: &mut [f64]) -> f64 {
        let m = self.b.len();
        let l: Vec<f64> = c.iter().map(|ci| (u / ci).ln_1p()).collect();
        let mut g = u * (1.0 + self.s2);
        for k in 0..m {
            let (ck, bk) = (c[k], self.b[k]);
            let hk = h_with(u, ck, l[k]);
            let hkk = u - 2.0 * ck * l[k] + u * ck / (u + ck);
            g += bk * (2.0 * hk + bk * hkk) + 2.0 * self.w[k] * l[k];
            let mut cross = 0.0;
            for j in (0..m).filter(|&j| j != k) {
                cross += self.b[j] * (u + cross_coef(c, k, j) * l[k] + cross_coef(c, j, k) * l[j]);
            }
            out[1 + k] = self.r * (1.0 - FLOOR) * 2.0 * (hk + bk * hkk + cross);
        }
        // The same operations as `phi`, so the value is bitwise the one `phi` gives.
        out[0] = self.r * (FLOOR * u + (1.0 - FLOOR) * g);
        out[0]
    }
}

/// The quadrature table of one mode.
#[derive(Clone, Debug)]
struct Mode {
    shape: Shape,
    /// Every $a_j$ is zero: values come from the harmonic closed forms.
    harmonic: bool,
    /// $\omega$ and the action scale $I_s$.
    omega: f64,
    scale: f64,
    edges: Vec<f64>,
    /// $\int_0^{u_i} e^{-\Phi}$ and $\int_{u_i}^\infty e^{-\Phi}$ at every edge.
    head: Vec<f64>,
    tail: Vec<f64>,
    /// The same weighted by $\partial_\theta\Phi$: `(edges.len()) x (M + 1)`, row-major.
    head_g: Vec<f64>,
    tail_g: Vec<f64>,
    /// $Z_u = \int_0^\infty e^{-\Phi}du$ and $\langle\partial_\theta\Phi\rangle$.
    z: f64,
    mean_g: Vec<f64>,
}

/// What [`AnharmonicOscillators`] precomputes for one parameter vector: the quadrature table of
/// every mode.
#[derive(Clone, Debug)]
pub struct ActionTable {
    modes: Vec<Mode>,
}

/// $N$ independent oscillators with learnable, amplitude-dependent frequencies at inverse
/// temperature $\beta$. Parameters: $\ln\omega_k$ (group `log_omega`, the layout of
/// [`LatentOscillators`](super::LatentOscillators)), then $a_{kj}$ mode by mode (group
/// `anharmonic`); every $a_{kj} = 0$ at initialisation.
#[derive(Clone, Debug, PartialEq)]
pub struct AnharmonicOscillators<N: Size> {
    dim: N,
    beta: f64,
    init_log_omega: Vec<f64>,
    /// $c_j$ (in units of the action scale).
    scales: Vec<f64>,
}

impl<N: Size> AnharmonicOscillators<N> {
    /// `basis` terms per mode ($M \ge 1$; 8 is a good default), scales $c_j = 2^{j-3}$.
    pub fn new(dim: N, beta: f64, basis: usize) -> Result<Self, ConfigError> {
        if !(beta.is_finite() && beta > 0.0) {
            return Err(ConfigError::Value { what: "beta", value: beta.to_string(), allowed: "a finite inverse temperature > 0" });
        }
        if !(1..=16).contains(&basis) {
            return Err(ConfigError::Value { what: "anharmonic basis size", value: basis.to_string(), allowed: "1 to 16 terms per mode" });
        }
        let scales = (0..basis).map(|j| 2f64.powi(j as i32 - 3)).collect();
        Ok(Self { dim, beta, init_log_omega: vec![0.0; dim.value()], scales })
    }
    /// Initial frequencies (default all 1); they also fix the action scales $I_s = 1/(\beta\omega_0)$.
    pub fn with_initial_frequencies(mut self, omega: &[f64]) -> Result<Self, ConfigError> {
        self.init_log_omega = super::log_frequencies(self.dim, omega)?;
        Ok(self)
    }
    /// Terms $M$ per mode.
    pub fn basis(&self) -> usize {
        self.scales.len()
    }
    fn m(&self) -> usize {
        self.scales.len()
    }
    fn extras<'a>(&self, theta: &'a [f64], k: usize) -> &'a [f64] {
        let (n, m) = (self.dim.value(), self.m());
        &theta[n + k * m..n + (k + 1) * m]
    }

    fn shape(&self, theta: &[f64], k: usize) -> Shape {
        Shape::new((theta[k] - self.init_log_omega[k]).exp(), self.extras(theta, k).to_vec(), &self.scales)
    }

    fn mode(&self, theta: &[f64], k: usize) -> Mode {
        let c = &self.scales;
        let m1 = self.m() + 1;
        let shape = self.shape(theta, k);
        let omega = theta[k].exp();
        let scale = 1.0 / (self.beta * self.init_log_omega[k].exp());
        let slope_min = shape.r * FLOOR;
        // Panel edges: the levels of Phi, then panels wider than 3 (u_a + c_min) split.
        let mut level_edges = vec![0.0];
        for &level in &LEVELS[1..] {
            let lo = *level_edges.last().unwrap_or(&0.0);
            level_edges.push(solve_monotone(|u| shape.phi(u, c) - level, |u| shape.dphi(u, c), lo, level / slope_min));
        }
        let mut edges = vec![0.0];
        for &b in &level_edges[1..] {
            loop {
                let a = *edges.last().unwrap_or(&0.0);
                let wmax = 3.0 * (a + c[0]);
                if b - a <= wmax * 1.5 {
                    edges.push(b);
                    break;
                }
                edges.push(a + wmax);
            }
        }
        let l = edges.len();
        let mut pan = vec![0.0; l - 1];
        let mut pan_g = vec![0.0; (l - 1) * m1];
        let mut d = vec![0.0; m1];
        for i in 0..l - 1 {
            for (u, w) in panel(edges[i], edges[i + 1]) {
                let phi = shape.dparams(u, c, &mut d);
                let e = w * (-phi).exp();
                pan[i] += e;
                for p in 0..m1 {
                    pan_g[i * m1 + p] += e * d[p];
                }
            }
        }
        // Beyond the last edge: e^{-Phi} decays at least as fast as its linearisation.
        let ul = edges[l - 1];
        let phi_l = shape.dparams(ul, c, &mut d);
        let rest = (-phi_l).exp() / shape.dphi(ul, c);
        let mut head = vec![0.0; l];
        let mut head_g = vec![0.0; l * m1];
        for i in 1..l {
            head[i] = head[i - 1] + pan[i - 1];
            for p in 0..m1 {
                head_g[i * m1 + p] = head_g[(i - 1) * m1 + p] + pan_g[(i - 1) * m1 + p];
            }
        }
        let mut tail = vec![0.0; l];
        let mut tail_g = vec![0.0; l * m1];
        tail[l - 1] = rest;
        for p in 0..m1 {
            tail_g[(l - 1) * m1 + p] = rest * d[p];
        }
        for i in (0..l - 1).rev() {
            tail[i] = tail[i + 1] + pan[i];
            for p in 0..m1 {
                tail_g[i * m1 + p] = tail_g[(i + 1) * m1 + p] + pan_g[i * m1 + p];
            }
        }
        let z = tail[0];
        let mean_g = (0..m1).map(|p| tail_g[p] / z).collect();
        let harmonic = self.extras(theta, k).iter().all(|&a| a == 0.0);
        Mode { shape, harmonic, omega, scale, edges, head, tail, head_g, tail_g, z, mean_g }
    }

    /// $f_k'(I)$, the angular frequency of mode `k` at action `action`.
    pub fn frequency_at_action(&self, theta: &[f64], k: usize, action: f64) -> f64 {
        let s = self.shape(theta, k);
        let omega0 = self.init_log_omega[k].exp();
        omega0 * s.dphi(action * self.beta * omega0, &self.scales)
    }
    /// $f_k(I)$, the energy of mode `k` at action `action`.
    pub fn energy_at_action(&self, theta: &[f64], k: usize, action: f64) -> f64 {
        let s = self.shape(theta, k);
        s.phi(action * self.beta * self.init_log_omega[k].exp(), &self.scales) / self.beta
    }
    /// $\partial F_K / \partial\theta = \beta^{-1}\langle\partial_\theta \Phi\rangle$ (the
    /// latent's slice).
    pub fn free_energy_grad(&self, t: &ActionTable, theta: &[f64]) -> Vec<f64> {
        let (n, m) = (self.dim.value(), self.m());
        let mut g = vec![0.0; theta.len()];
        for (k, md) in t.modes.iter().enumerate() {
            g[k] = md.mean_g[0] / self.beta;
            for j in 0..m {
                g[n + k * m + j] = md.mean_g[1 + j] / self.beta;
            }
        }
        g
    }
}

/// Root of an increasing function in `[lo, hi]` (`g(lo) <= 0 <= g(hi)`): Newton, safeguarded by
/// bisection.
fn solve_monotone(g: impl Fn(f64) -> f64, dg: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let mut u = 0.5 * (lo + hi);
    for _ in 0..200 {
        let v = g(u);
        if v > 0.0 {
            hi = u;
        } else {
            lo = u;
        }
        let step = v / dg(u);
        let next = u - step;
        let next = if next > lo && next < hi && step.is_finite() { next } else { 0.5 * (lo + hi) };
        if (next - u).abs() <= 4.0 * f64::EPSILON * u.abs() || hi - lo <= 4.0 * f64::EPSILON * hi.abs() {
            return next;
        }
        u = next;
    }
    u
}

impl Mode {
    fn m1(&self) -> usize {
        self.mean_g.len()
    }
    /// The scaled action $u = (P^2 + \omega^2 Q^2)/(2\omega I_s)$ of one mode.
    fn action(&self, q: f64, p: f64) -> f64 {
        let w = self.omega;
        (p * p + w * w * q * q) / (2.0 * w * self.scale)
    }
    /// The panel holding `u` (the last one beyond the table).
    fn panel_of(&self, u: f64) -> usize {
        let l = self.edges.len();
        self.edges.partition_point(|&e| e <= u).clamp(1, l - 1) - 1
    }
    /// $A(u) = \int_0^u e^{-\Phi}$ (`head`) or $T(u) = \int_u^\infty e^{-\Phi}$.
    fn partial(&self, u: f64, head: bool, c: &[f64]) -> f64 {
        let i = self.panel_of(u);
        let (a, b) = (self.edges[i], self.edges[i + 1]);
        let (lo, hi, base) = if head { (a, u, self.head[i]) } else { (u, b, self.tail[i + 1]) };
        base + panel(lo, hi).map(|(x, w)| w * (-self.shape.phi(x, c)).exp()).sum::<f64>()
    }
    /// The scaled action of an exponential variate `e`: $T(u) = Z e^{-e}$.
    fn action_of(&self, e: f64, c: &[f64]) -> f64 {
        let l = self.edges.len();
        // Head form A(u) = Z (1 - e^{-e}) for the first half of the mass (no cancellation).
        let use_head = e < std::f64::consts::LN_2;
        let target = if use_head { -self.z * (-e).exp_m1() } else { self.z * (-e).exp() };
        if !use_head && target <= self.tail[l - 1] {
            return self.edges[l - 1];
        }
        let i = if use_head { self.head.partition_point(|&h| h <= target).clamp(1, l - 1) - 1 } else { self.tail.partition_point(|&t| t > target).clamp(1, l - 1) - 1 };
        let (lo, hi) = (self.edges[i], self.edges[i + 1]);
        let p = self.head[i + 1] - self.head[i];
        let s = if use_head { (target - self.head[i]) / p } else { 1.0 - (target - self.tail[i + 1]) / p };
        // First guess: Phi linear across the panel.
        let kappa = self.shape.phi(hi, c) - self.shape.phi(lo, c);
        let x = if kappa > 1e-8 { -(-s * (-(-kappa).exp_m1())).ln_1p() / kappa } else { s };
        let u0 = lo + x.clamp(0.0, 1.0) * (hi - lo);
        // g(u) = ln(A / A*) or ln(T* / T): increasing, g' = e^{-Phi} / A (or / T).
        solve_from(
            |u| {
                let v = self.partial(u, use_head, c);
                let g = if use_head { (v / target).ln() } else { (target / v).ln() };
                (g, (-self.shape.phi(u, c)).exp() / v)
            },
            u0,
            lo,
            hi,
        )
    }
    /// $du/d\theta$ at fixed exponential variate, and $\Phi'(u)$.
    fn implicit(&self, u: f64, c: &[f64]) -> (Vec<f64>, f64) {
        let m1 = self.m1();
        let i = self.panel_of(u);
        let (a, b) = (self.edges[i], self.edges[i + 1]);
        let mut d = vec![0.0; m1];
        let mut acc = |lo: f64, hi: f64, base: f64, base_g: &[f64]| {
            let mut v = base;
            let mut vg = base_g.to_vec();
            for (x, w) in panel(lo, hi) {
                let phi = self.shape.dparams(x, c, &mut d);
                let e = w * (-phi).exp();
                v += e;
                for p in 0..m1 {
                    vg[p] += e * d[p];
                }
            }
            (v, vg)
        };
        let (ha, hg) = acc(a, u, self.head[i], &self.head_g[i * m1..(i + 1) * m1]);
        let (ta, tg) = acc(u, b, self.tail[i + 1], &self.tail_g[(i + 1) * m1..(i + 2) * m1]);
        let den = self.z * (-self.shape.phi(u, c)).exp();
        let du = (0..m1).map(|p| (hg[p] * ta - tg[p] * ha) / den).collect();
        (du, self.shape.dphi(u, c))
    }
}

/// Newton from `u0` for an increasing `g` with its root in `[lo, hi]`, safeguarded by bisection.
fn solve_from(g: impl Fn(f64) -> (f64, f64), u0: f64, mut lo: f64, mut hi: f64) -> f64 {
    let mut u = u0;
    for _ in 0..100 {
        let (v, dv) = g(u);
        if v == 0.0 {
            return u;
        }
        if v > 0.0 {
            hi = u;
        } else {
            lo = u;
        }
        let step = v / dv;
        let next = u - step;
        let next = if next >= lo && next <= hi && step.is_finite() { next } else { 0.5 * (lo + hi) };
        if (next - u).abs() <= 2.0 * f64::EPSILON * u.abs() || hi - lo <= 2.0 * f64::EPSILON * hi.abs() {
            return next;
        }
        u = next;
    }
    u
}

impl<N: Size> Latent<N> for AnharmonicOscillators<N> {
    type Table = ActionTable;
    fn dim(&self) -> N {
        self.dim
    }
    fn beta(&self) -> f64 {
        self.beta
    }
    fn table(&self, theta: &[f64]) -> ActionTable {
        ActionTable { modes: (0..self.dim.value()).map(|k| self.mode(theta, k)).collect() }
    }
    fn sample<R: rand::Rng + ?Sized>(&self, t: &ActionTable, _theta: &[f64], rng: &mut R) -> PhasePoint<f64, N> {
        let sb = self.beta.sqrt();
        let mut z = PhasePoint::zeros(self.dim);
        for (k, md) in t.modes.iter().enumerate() {
            let xi: f64 = StandardNormal.sample(rng);
            let eta: f64 = StandardNormal.sample(rng);
            if md.harmonic {
                z.q[k] = xi / (sb * md.omega);
                z.p[k] = eta / sb;
                continue;
            }
            let e = 0.5 * (xi * xi + eta * eta);
            if e == 0.0 {
                continue;
            }
            let action = md.action_of(e, &self.scales) * md.scale;
            z.q[k] = xi * (action / (md.omega * e)).sqrt();
            z.p[k] = eta * (action * md.omega / e).sqrt();
        }
        z
    }
    fn log_prob(&self, t: &ActionTable, _theta: &[f64], z: &PhasePoint<f64, N>) -> f64 {
        let mut lp = 0.0;
        for (k, md) in t.modes.iter().enumerate() {
            let w = md.omega;
            if md.harmonic {
                lp += z.p[k] * z.p[k] * (-0.5 * self.beta) + z.q[k] * z.q[k] * (-0.5 * self.beta * w * w) + (self.beta * w / (2.0 * PI)).ln();
            } else {
                lp += -md.shape.phi(md.action(z.q[k], z.p[k]), &self.scales) - (2.0 * PI * md.scale * md.z).ln();
            }
        }
        lp
    }
    fn log_prob_grad(&self, t: &ActionTable, theta: &[f64], z: &PhasePoint<f64, N>, coef: f64, g: &mut [f64]) -> (f64, PhasePoint<f64, N>) {
        let (n, m) = (self.dim.value(), self.m());
        let lp = self.log_prob(t, theta, z);
        let mut dz = PhasePoint::zeros(self.dim);
        let mut d = vec![0.0; m + 1];
        for (k, md) in t.modes.iter().enumerate() {
            let (w, q, p) = (md.omega, z.q[k], z.p[k]);
            let u = md.action(q, p);
            let phi = md.shape.dparams(u, &self.scales, &mut d);
            if md.harmonic {
                let w2 = (2.0 * theta[k]).exp();
                dz.q[k] = -self.beta * w2 * q;
                dz.p[k] = -self.beta * p;
                g[k] += coef * (1.0 - self.beta * w2 * q * q);
            } else {
                let dphi = md.shape.dphi(u, &self.scales);
                dz.q[k] = -dphi * w * q / md.scale;
                dz.p[k] = -dphi * p / (w * md.scale);
                let du_dlnw = (w * q * q - p * p / w) / (2.0 * md.scale);
                g[k] += coef * (-dphi * du_dlnw - phi + md.mean_g[0]);
            }
            for j in 0..m {
                g[n + k * m + j] += coef * (-d[1 + j] + md.mean_g[1 + j]);
            }
        }
        (lp, dz)
    }
    fn reparam_vjp(&self, t: &ActionTable, _theta: &[f64], z: &PhasePoint<f64, N>, zbar: &PhasePoint<f64, N>, c: f64, g: &mut [f64]) {
        let (n, m) = (self.dim.value(), self.m());
        for (k, md) in t.modes.iter().enumerate() {
            let (w, q, p) = (md.omega, z.q[k], z.p[k]);
            let u = md.action(q, p);
            if u <= 0.0 {
                if md.harmonic {
                    g[k] += c;
                }
                continue;
            }
            let (du, dphi) = md.implicit(u, &self.scales);
            // Path derivative of zbar . z + c ln p(z) at frozen density parameters: the cotangent
            // zbar + c grad_z ln p, grad_z ln p = -Phi' (w Q, P / w) / I_s, along
            // dQ = Q (du/u - [lnw]) / 2, dP = P (du/u + [lnw]) / 2.
            let (cq, cp) = (zbar.q[k] - c * dphi * w * q / md.scale, zbar.p[k] - c * dphi * p / (w * md.scale));
            let total = |pi: usize, is_lnw: bool| {
                let s = if is_lnw { 0.5 } else { 0.0 };
                let rel = 0.5 * du[pi] / u;
                cq * q * (rel - s) + cp * p * (rel + s)
            };
            g[k] += if md.harmonic { -zbar.q[k] * z.q[k] + c } else { total(0, true) };
            for j in 0..m {
                g[n + k * m + j] += total(1 + j, false);
            }
        }
    }
    /// $K = \beta^{-1}\sum_k\Phi_k(u_k)$ with $u = (P^2/\omega + \omega Q^2)/(2I_s)$:
    /// $\partial K/\partial\ln\omega = \beta^{-1}[\Phi + \Phi'(u)(\omega Q^2 - P^2/\omega)/(2I_s)]$
    /// (at fixed $u$, $\Phi \propto \omega$), $\partial K/\partial b_j = \beta^{-1}\partial_{b_j}\Phi$.
    fn energy_grad(&self, theta: &[f64], z: &PhasePoint<f64, N>, g: &mut [f64]) -> f64 {
        let (n, m) = (self.dim.value(), self.m());
        let mut d = vec![0.0; m + 1];
        let mut k_total = 0.0;
        for k in 0..n {
            let shape = self.shape(theta, k);
            let (w, scale) = (theta[k].exp(), 1.0 / (self.beta * self.init_log_omega[k].exp()));
            let (q, p) = (z.q[k], z.p[k]);
            let u = (p * p + w * w * q * q) / (2.0 * w * scale);
            let phi = shape.dparams(u, &self.scales, &mut d);
            k_total += phi / self.beta;
            g[k] += (phi + shape.dphi(u, &self.scales) * (w * q * q - p * p / w) / (2.0 * scale)) / self.beta;
            for j in 0..m {
                g[n + k * m + j] += d[1 + j] / self.beta;
            }
        }
        k_total
    }
    fn frequencies(&self, t: &ActionTable, _theta: &[f64]) -> Vec<f64> {
        // <f'(I)> = 1 / (beta Z_I), Z_I = I_s Z_u.
        t.modes.iter().map(|md| if md.harmonic { md.omega } else { 1.0 / (self.beta * md.scale * md.z) }).collect()
    }
    fn free_energy(&self, t: &ActionTable, _theta: &[f64]) -> f64 {
        t.modes.iter().map(|md| if md.harmonic { -(2.0 * PI / (self.beta * md.omega)).ln() / self.beta } else { -(2.0 * PI * md.scale * md.z).ln() / self.beta }).sum()
    }
    fn frequency_at(&self, t: &ActionTable, _theta: &[f64], z: &PhasePoint<f64, N>) -> Vec<f64> {
        t.modes
            .iter()
            .enumerate()
            .map(|(k, md)| {
                if md.harmonic { md.omega } else { md.shape.dphi(md.action(z.q[k], z.p[k]), &self.scales) / (self.beta * md.scale) }
            })
            .collect()
    }
    fn evolve(&self, t: &ActionTable, theta: &[f64], z0: &PhasePoint<f64, N>, time: f64) -> PhasePoint<f64, N> {
        let rates = Latent::<N>::frequency_at(self, t, theta, z0);
        let mut z = z0.clone();
        for (k, md) in t.modes.iter().enumerate() {
            let (w, q, p) = (md.omega, z0.q[k], z0.p[k]);
            let (s, c) = (rates[k] * time).sin_cos();
            z.q[k] = q * c + p / w * s;
            z.p[k] = -q * w * s + p * c;
        }
        z
    }
}

impl<N: Size> Parametrised for AnharmonicOscillators<N> {
    fn n_params(&self) -> usize {
        self.dim.value() * (1 + self.m())
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        let n = self.dim.value();
        theta[..n].copy_from_slice(&self.init_log_omega);
        theta[n..].fill(0.0);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        let n = self.dim.value();
        vec![ParamGroup::new("log_omega", 0..n), ParamGroup::new("anharmonic", n..n * (1 + self.m()))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dim::Const;
    use crate::latent::LatentOscillators;
    use rand::SeedableRng;

    type Rng = rand_xoshiro::Xoshiro256PlusPlus;

    /// Composite Simpson on [0, upper] with `n` intervals on [0, 20] and `n` beyond (an
    /// independent quadrature).
    fn simpson(f: impl Fn(f64) -> f64, upper: f64, n: usize) -> f64 {
        let rule = |a: f64, b: f64| {
            let h = (b - a) / n as f64;
            let mut s = f(a) + f(b);
            for i in 1..n {
                s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
            }
            s * h / 3.0
        };
        if upper <= 20.0 { rule(0.0, upper) } else { rule(0.0, 20.0) + rule(20.0, upper) }
    }

    #[test]
    fn partition_function_matches_an_independent_quadrature_to_1e10_and_its_closed_form_for_one_term() {
        // One term with b = -1: f'/omega = eps + (1 - eps) c^2 / (u + c)^2, so
        // Phi = r [eps u + (1 - eps) c u / (u + c)] (checks the closed-form integral G).
        let l = AnharmonicOscillators::new(Const::<1>, 1.0, 1).unwrap();
        let theta = [0.3, -1.0];
        let s = l.shape(&theta, 0);
        let (r, c) = (0.3f64.exp(), 0.125);
        for u in [1e-9, 0.01, 0.7, 5.0, 300.0] {
            let closed = r * (FLOOR * u + (1.0 - FLOOR) * c * u / (u + c));
            assert!((s.phi(u, &l.scales) - closed).abs() < 1e-14 * closed.max(1e-300) + 1e-300, "u = {u}");
        }
        // The closed-form G against the frequency it integrates: dPhi/du by differences, Phi(0) = 0.
        let l8 = AnharmonicOscillators::new(Const::<1>, 1.0, 8).unwrap();
        let th8 = [0.2, 0.09, 0.42, -0.88, 3.3, -5.1, 6.1, -1.0, 0.5];
        let s8 = l8.shape(&th8, 0);
        assert_eq!(s8.phi(0.0, &l8.scales), 0.0);
        for u in [1e-3, 0.05, 0.4, 2.0, 11.0, 90.0] {
            let hstep = 1e-5 * u;
            let fd = (s8.phi(u + hstep, &l8.scales) - s8.phi(u - hstep, &l8.scales)) / (2.0 * hstep);
            let exact = s8.dphi(u, &l8.scales);
            assert!((fd / exact - 1.0).abs() < 1e-7, "u = {u}: {fd} vs {exact}");
        }
        for (m, theta) in [(1, vec![0.3, -1.0]), (3, vec![0.3, -2.0, 1.5, -0.3]), (3, vec![-0.4, 1.0, -2.5, 0.7]), (8, vec![0.1, 0.09, 0.42, -0.88, 3.3, -5.1, 6.1, -1.0, 0.5])] {
            let l = AnharmonicOscillators::new(Const::<1>, 1.0, m).unwrap();
            let t = l.table(&theta);
            let s = l.shape(&theta, 0);
            let mut upper = 1.0;
            while s.phi(upper, &l.scales) < 75.0 {
                upper *= 1.5;
            }
            let reference = simpson(|u| (-s.phi(u, &l.scales)).exp(), upper, 400_000);
            assert!((t.modes[0].z / reference - 1.0).abs() < 1e-10, "{theta:?}: {} vs {reference}", t.modes[0].z);
            // F_K = -ln(2 pi I_s Z_u) / beta with I_s = 1 here.
            assert!((Latent::<Const<1>>::free_energy(&l, &t, &theta) + (2.0 * PI * reference).ln()).abs() < 1e-10);
        }
    }

    #[test]
    fn sampled_actions_invert_the_survival_function_and_follow_the_density() {
        let l = AnharmonicOscillators::new(Const::<1>, 1.0, 3).unwrap();
        let theta = [0.2, 0.8, -1.2, 0.4];
        let t = l.table(&theta);
        let md = &t.modes[0];
        for e in [1e-12, 1e-4, 0.3, 0.69, 0.7, 2.0, 9.0, 30.0] {
            let u = md.action_of(e, &l.scales);
            let head = md.partial(u, true, &l.scales);
            let tail = md.partial(u, false, &l.scales);
            assert!((head / (-md.z * (-e).exp_m1()) - 1.0).abs() < 1e-12 || (tail / (md.z * (-e).exp()) - 1.0).abs() < 1e-12, "e = {e}: u = {u}, A = {head}, T = {tail}");
        }
        // Mean action of the samples vs the density's first moment by Simpson.
        let s = l.shape(&theta, 0);
        let m1 = simpson(|u| u * (-s.phi(u, &l.scales)).exp(), 80.0, 200_000) / md.z;
        let mut rng = Rng::seed_from_u64(7);
        let us: Vec<f64> = (0..40_000)
            .map(|_| {
                let z = Latent::<Const<1>>::sample(&l, &t, &theta, &mut rng);
                let w = md.omega;
                (z.p[0] * z.p[0] + w * w * z.q[0] * z.q[0]) / (2.0 * w * md.scale)
            })
            .collect();
        let mean = us.iter().sum::<f64>() / us.len() as f64;
        let sd = (us.iter().map(|u| (u - mean).powi(2)).sum::<f64>() / us.len() as f64).sqrt();
        assert!((mean - m1).abs() < 4.0 * sd / (us.len() as f64).sqrt(), "{mean} vs {m1}");
        // The score d ln p / d theta at fixed z has zero mean under the sampler (what makes the
        // path-derivative gradient unbiased).
        let mut rng = Rng::seed_from_u64(8);
        let n = 20_000;
        let scores: Vec<Vec<f64>> = (0..n)
            .map(|_| {
                let z = Latent::<Const<1>>::sample(&l, &t, &theta, &mut rng);
                let mut g = vec![0.0; 4];
                Latent::<Const<1>>::log_prob_grad(&l, &t, &theta, &z, 1.0, &mut g);
                g
            })
            .collect();
        for i in 0..4 {
            let m = scores.iter().map(|g| g[i]).sum::<f64>() / n as f64;
            let sd = (scores.iter().map(|g| (g[i] - m).powi(2)).sum::<f64>() / n as f64).sqrt();
            assert!(m.abs() < 4.0 * sd / (n as f64).sqrt(), "score {i}: mean {m}, sd {sd}");
        }
        // <f'(I)> = 1 / (beta Z_I) against the sample mean of f'.
        let wmean = us.iter().map(|u| l.frequency_at_action(&theta, 0, u * md.scale)).sum::<f64>() / us.len() as f64;
        let w = Latent::<Const<1>>::frequencies(&l, &t, &theta)[0];
        assert!((wmean / w - 1.0).abs() < 3e-3, "{wmean} vs {w}");
    }

    fn fd<F: Fn(&[f64]) -> f64>(f: F, theta: &[f64], i: usize) -> f64 {
        let h = 1e-5;
        let mut tp = theta.to_vec();
        let mut tm = theta.to_vec();
        tp[i] += h;
        tm[i] -= h;
        (f(&tp) - f(&tm)) / (2.0 * h)
    }

    #[test]
    fn reparameterised_vjp_log_density_and_free_energy_gradients_match_finite_differences() {
        let l = AnharmonicOscillators::new(Const::<2>, 0.7, 3).unwrap().with_initial_frequencies(&[1.3, 0.6]).unwrap();
        let theta = [0.4, -0.7, 0.5, -1.0, 0.3, -0.2, 1.1, 0.0];
        let zbar = PhasePoint::<f64, Const<2>>::new(crate::dim::Vector::from_fn(Const::<2>, |i| [0.7, -1.3][i]), crate::dim::Vector::from_fn(Const::<2>, |i| [0.4, 0.9][i]));
        let c = 1.0 / 0.7;
        for seed in 0..6 {
            let draw = |th: &[f64]| Latent::<Const<2>>::sample(&l, &l.table(th), th, &mut Rng::seed_from_u64(seed));
            // The path derivative: the density's own parameters frozen at theta.
            let t = l.table(&theta);
            let loss = |th: &[f64]| {
                let z = draw(th);
                zbar.q.dot(&z.q) + zbar.p.dot(&z.p) + c * Latent::<Const<2>>::log_prob(&l, &t, &theta, &z)
            };
            let z = draw(&theta);
            let mut g = vec![0.0; theta.len()];
            Latent::<Const<2>>::reparam_vjp(&l, &t, &theta, &z, &zbar, c, &mut g);
            for i in 0..theta.len() {
                let f = fd(loss, &theta, i);
                assert!((g[i] - f).abs() < 2e-6 * (1.0 + f.abs()), "seed {seed}, parameter {i}: vjp {} vs fd {f}", g[i]);
            }
            // ln p at fixed z: parameters and coordinates.
            let mut gl = vec![0.0; theta.len()];
            let (lp, dz) = Latent::<Const<2>>::log_prob_grad(&l, &t, &theta, &z, 1.0, &mut gl);
            assert_eq!(lp, Latent::<Const<2>>::log_prob(&l, &t, &theta, &z));
            for i in 0..theta.len() {
                let f = fd(|th| Latent::<Const<2>>::log_prob(&l, &l.table(th), th, &z), &theta, i);
                assert!((gl[i] - f).abs() < 2e-6 * (1.0 + f.abs()), "d ln p / d theta_{i}: {} vs {f}", gl[i]);
            }
            for k in 0..2 {
                for (which, analytic) in [(0, dz.q[k]), (1, dz.p[k])] {
                    let at = |x: f64| {
                        let mut zz = z.clone();
                        if which == 0 { zz.q[k] = x } else { zz.p[k] = x }
                        Latent::<Const<2>>::log_prob(&l, &t, &theta, &zz)
                    };
                    let x0 = if which == 0 { z.q[k] } else { z.p[k] };
                    let f = (at(x0 + 1e-6) - at(x0 - 1e-6)) / 2e-6;
                    assert!((analytic - f).abs() < 1e-6 * (1.0 + f.abs()), "d ln p / dz: {analytic} vs {f}");
                }
            }
        }
        let t = l.table(&theta);
        let gf = l.free_energy_grad(&t, &theta);
        for i in 0..theta.len() {
            let f = fd(|th| Latent::<Const<2>>::free_energy(&l, &l.table(th), th), &theta, i);
            assert!((gf[i] - f).abs() < 1e-7 * (1.0 + f.abs()), "dF_K / d theta_{i}: {} vs {f}", gf[i]);
        }
    }

    #[test]
    fn zero_extra_parameters_are_the_harmonic_latent_and_tiny_ones_are_continuous_with_it() {
        let h = LatentOscillators::new(Const::<2>, 1.3).unwrap().with_initial_frequencies(&[0.8, 1.7]).unwrap();
        let l = AnharmonicOscillators::new(Const::<2>, 1.3, 4).unwrap().with_initial_frequencies(&[0.8, 1.7]).unwrap();
        let th = [0.1, 0.6];
        let mut ta = th.to_vec();
        ta.extend([0.0; 8]);
        let t = l.table(&ta);
        let zh = h.sample(&th, &mut Rng::seed_from_u64(3));
        let za = Latent::<Const<2>>::sample(&l, &t, &ta, &mut Rng::seed_from_u64(3));
        assert_eq!(zh, za);
        assert_eq!(h.log_prob(&th, &zh), Latent::<Const<2>>::log_prob(&l, &t, &ta, &za));
        assert_eq!(Latent::<Const<2>>::frequencies(&h, &(), &th), Latent::<Const<2>>::frequencies(&l, &t, &ta));
        assert_eq!(Latent::<Const<2>>::free_energy(&h, &(), &th), Latent::<Const<2>>::free_energy(&l, &t, &ta));
        // The general path (quadrature, Newton inversion, implicit gradients) at a = 1e-13.
        let mut tiny = ta.clone();
        tiny[2..].iter_mut().for_each(|a| *a = 1e-13);
        let tt = l.table(&tiny);
        let zt = Latent::<Const<2>>::sample(&l, &tt, &tiny, &mut Rng::seed_from_u64(3));
        for k in 0..2 {
            assert!((zt.q[k] - zh.q[k]).abs() < 1e-11 * zh.q[k].abs().max(1.0) && (zt.p[k] - zh.p[k]).abs() < 1e-11 * zh.p[k].abs().max(1.0), "{zt:?} vs {zh:?}");
        }
        assert!((Latent::<Const<2>>::log_prob(&l, &tt, &tiny, &zt) - h.log_prob(&th, &zh)).abs() < 1e-11);
        let zbar = PhasePoint::<f64, Const<2>>::new(zh.p.clone(), zh.q.clone());
        let (mut gh, mut gt) = (vec![0.0; 2], vec![0.0; 10]);
        Latent::<Const<2>>::reparam_vjp(&h, &(), &th, &zh, &zbar, 0.0, &mut gh);
        Latent::<Const<2>>::reparam_vjp(&l, &tt, &tiny, &zt, &zbar, 0.0, &mut gt);
        for k in 0..2 {
            assert!((gh[k] - gt[k]).abs() < 1e-9, "{gh:?} vs {gt:?}");
        }
    }

    #[test]
    fn latent_energy_is_the_integrated_frequency_profile_and_its_gradient_matches_differences() {
        let l = AnharmonicOscillators::new(Const::<2>, 0.9, 3).unwrap().with_initial_frequencies(&[0.8, 1.7]).unwrap();
        let h = LatentOscillators::new(Const::<2>, 0.9).unwrap();
        let z = PhasePoint::<f64, Const<2>>::new(crate::dim::Vector::from([0.7, -0.4]), crate::dim::Vector::from([0.3, 1.1]));
        // Harmonic limit: K = sum (P^2 + w^2 Q^2)/2, the same gradient in ln w.
        let th = [0.1, 0.6];
        let mut ta = th.to_vec();
        ta.extend([0.0; 6]);
        let (mut gh, mut ga) = (vec![0.0; 2], vec![0.0; 8]);
        let kh = Latent::<Const<2>>::energy_grad(&h, &th, &z, &mut gh);
        let ka = Latent::<Const<2>>::energy_grad(&l, &ta, &z, &mut ga);
        let direct: f64 = (0..2).map(|k| 0.5 * (z.p[k] * z.p[k] + (2.0 * th[k]).exp() * z.q[k] * z.q[k])).sum();
        assert!((kh - direct).abs() < 1e-14 && (ka - direct).abs() < 1e-13, "{kh} {ka} {direct}");
        for k in 0..2 {
            assert!((gh[k] - ga[k]).abs() < 1e-13);
        }
        // General parameters: K(z) = f(I(z)) (the integral of f' by an independent quadrature) and
        // its gradient against central differences.
        let theta = [0.2, 0.5, 0.3, -0.2, 0.5, -0.4, 0.1, 0.25];
        let mut g = vec![0.0; 8];
        let k_total = Latent::<Const<2>>::energy_grad(&l, &theta, &z, &mut g);
        let by_quadrature: f64 = (0..2)
            .map(|k| {
                let w = theta[k].exp();
                let action = (z.p[k] * z.p[k] / w + w * z.q[k] * z.q[k]) / 2.0;
                crate::latent::quadrature::integrate(|i| l.frequency_at_action(&theta, k, i), 0.0, action, 20)
            })
            .sum();
        assert!((k_total - by_quadrature).abs() < 1e-12, "{k_total} vs {by_quadrature}");
        for i in 0..theta.len() {
            let f = fd(|th| Latent::<Const<2>>::energy_grad(&l, th, &z, &mut vec![0.0; 8]), &theta, i);
            assert!((g[i] - f).abs() < 1e-7 * (1.0 + f.abs()), "dK / d theta_{i}: {} vs {f}", g[i]);
        }
    }
}
