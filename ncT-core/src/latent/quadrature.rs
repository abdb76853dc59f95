//! Gauss-Legendre quadrature: $\int_a^b g(u)\,du \approx \sum_m w_m\, g(u_m)$, exact for
//! polynomials of degree $2n - 1$.

use std::sync::OnceLock;

/// Nodes on $[-1, 1]$ and weights of the `n`-point rule (Newton iteration on $P_n$ from the
/// Chebyshev guesses; nodes to machine precision).
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut t = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        for _ in 0..100 {
            let (p, dp) = legendre(n, t);
            let dt = p / dp;
            t -= dt;
            if dt.abs() < 1e-16 {
                break;
            }
        }
        let (_, dp) = legendre(n, t);
        let wi = 2.0 / ((1.0 - t * t) * dp * dp);
        x[i] = -t;
        x[n - 1 - i] = t;
        w[i] = wi;
        w[n - 1 - i] = wi;
    }
    (x, w)
}

/// $P_n(t)$ and $P_n'(t)$ by the three-term recurrence.
fn legendre(n: usize, t: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, t);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let p2 = ((2 * k - 1) as f64 * t * p1 - (k - 1) as f64 * p0) / k as f64;
        p0 = p1;
        p1 = p2;
    }
    (p1, n as f64 * (t * p1 - p0) / (t * t - 1.0))
}

/// Number of nodes of the rule the latent distributions use per panel.
pub const NODES: usize = 20;

/// The shared [`NODES`]-point rule.
pub fn rule() -> &'static (Vec<f64>, Vec<f64>) {
    static RULE: OnceLock<(Vec<f64>, Vec<f64>)> = OnceLock::new();
    RULE.get_or_init(|| gauss_legendre(NODES))
}

/// Nodes and weights mapped to $[a, b]$.
pub fn panel(a: f64, b: f64) -> impl Iterator<Item = (f64, f64)> {
    let (x, w) = rule();
    let (m, h) = (0.5 * (a + b), 0.5 * (b - a));
    x.iter().zip(w).map(move |(&t, &wt)| (m + h * t, h * wt))
}

/// $\int_a^b f$ by the shared rule on `panels` equal panels.
pub fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64, panels: usize) -> f64 {
    let h = (b - a) / panels as f64;
    (0..panels).map(|i| panel(a + i as f64 * h, a + (i + 1) as f64 * h).map(|(x, w)| w * f(x)).sum::<f64>()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrates_polynomials_of_degree_2n_minus_1_exactly_and_exponentials_to_rounding() {
        for n in [1, 2, 5, 20] {
            let (x, w) = gauss_legendre(n);
            for deg in 0..2 * n {
                let q: f64 = x.iter().zip(&w).map(|(t, w)| w * t.powi(deg as i32)).sum();
                let exact = if deg % 2 == 1 { 0.0 } else { 2.0 / (deg as f64 + 1.0) };
                assert!((q - exact).abs() < 1e-14, "n = {n}, degree {deg}: {q} vs {exact}");
            }
        }
        let q: f64 = panel(0.0, 3.0).map(|(u, w)| w * (-2.0 * u).exp()).sum();
        assert!((q - (1.0 - (-6.0f64).exp()) / 2.0).abs() < 1e-15);
    }
}
