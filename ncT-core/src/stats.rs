//! Error bars for Monte Carlo averages: the blocking analysis for correlated series (Markov chains)
//! and the jackknife for non-linear functions of averages (eigenvalues of estimated matrices).

/// One level of the blocking transformation.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockLevel {
    /// Samples averaged into one block at this level ($2^k$).
    pub block_size: usize,
    /// Number of blocks.
    pub blocks: usize,
    /// Naive standard error of the mean from the block averages.
    pub error: f64,
    /// Uncertainty of `error` itself, $\sigma / \sqrt{2(n_b - 1)}$.
    pub error_of_error: f64,
}

/// Result of [`blocking`].
#[derive(Clone, Debug, PartialEq)]
pub struct Blocking {
    pub mean: f64,
    /// Standard error at the chosen level (the naive error if the series is too short to block).
    pub error: f64,
    /// Index into `levels` of the chosen block size.
    pub chosen: usize,
    /// Integrated autocorrelation time estimate $\tau = (\sigma_{chosen}/\sigma_0)^2$ (in samples).
    pub tau: f64,
    pub levels: Vec<BlockLevel>,
}

/// Blocking analysis of a correlated series (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461 (1989)):
/// pairwise block averaging until fewer than 16 blocks remain; the block size is the smallest
/// $B = 2^k$ with $B^3 > 2 N (\sigma_B/\sigma_1)^4$ (Lee, Kalos & Umrigar, Phys. Rev. E 83, 066706
/// (2011)). If no level satisfies it, the largest level is used (the error is then a lower bound).
pub fn blocking(series: &[f64]) -> Blocking {
    let n = series.len();
    let mean = series.iter().sum::<f64>() / n.max(1) as f64;
    let mut levels = Vec::new();
    let mut cur: Vec<f64> = series.to_vec();
    let mut size = 1;
    while cur.len() >= 16 || levels.is_empty() {
        let nb = cur.len();
        let m = cur.iter().sum::<f64>() / nb.max(1) as f64;
        let var = cur.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (nb as f64 - 1.0).max(1.0);
        let error = (var / nb.max(1) as f64).sqrt();
        levels.push(BlockLevel { block_size: size, blocks: nb, error, error_of_error: error / (2.0 * (nb as f64 - 1.0).max(1.0)).sqrt() });
        if nb < 32 {
            break;
        }
        cur = cur.chunks_exact(2).map(|p| 0.5 * (p[0] + p[1])).collect();
        size *= 2;
    }
    let e0 = levels[0].error;
    let chosen = levels
        .iter()
        .position(|l| e0 == 0.0 || (l.block_size as f64).powi(3) > 2.0 * n as f64 * (l.error / e0).powi(4))
        .unwrap_or(levels.len() - 1);
    let error = levels[chosen].error;
    let tau = if e0 > 0.0 { (error / e0).powi(2) } else { 1.0 };
    Blocking { mean, error, chosen, tau, levels }
}

/// Jackknife over `blocks` groups: `estimate(mask)` evaluates the statistic with group `b` left out
/// (`Some(b)`) or with all groups (`None`). Returns the full-sample estimate and the jackknife
/// standard error $\sqrt{\tfrac{B-1}{B}\sum_b (\theta_{(b)} - \bar\theta_{(\cdot)})^2}$ per component.
pub fn jackknife<F>(blocks: usize, estimate: F) -> (Vec<f64>, Vec<f64>)
where
    F: Fn(Option<usize>) -> Vec<f64>,
{
    let full = estimate(None);
    let loo: Vec<Vec<f64>> = (0..blocks).map(|b| estimate(Some(b))).collect();
    let err = (0..full.len()).map(|k| jackknife_error(&loo.iter().map(|v| v[k]).collect::<Vec<_>>())).collect();
    (full, err)
}

/// Jackknife standard error from the $B$ leave-one-block-out values $\theta_{(b)}$ of a statistic:
/// $\sqrt{\tfrac{B-1}{B}\sum_b (\theta_{(b)} - \bar\theta_{(\cdot)})^2}$.
pub fn jackknife_error(leave_one_out: &[f64]) -> f64 {
    let bf = leave_one_out.len() as f64;
    let m = leave_one_out.iter().sum::<f64>() / bf;
    ((bf - 1.0) / bf * leave_one_out.iter().map(|v| (v - m).powi(2)).sum::<f64>()).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    /// AR(1) series x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t: unit variance, and the variance of the
    /// mean of N samples is (1 + rho) / (1 - rho) / N for large N.
    fn ar1(rho: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::NctRng::seed_from_u64(seed);
        let mut x: f64 = StandardNormal.sample(&mut rng);
        (0..n)
            .map(|_| {
                let e: f64 = StandardNormal.sample(&mut rng);
                x = rho * x + (1.0 - rho * rho).sqrt() * e;
                x
            })
            .collect()
    }

    #[test]
    fn blocking_recovers_the_ar1_error() {
        let n = 1 << 18;
        for &rho in &[0.0, 0.5, 0.9] {
            let b = blocking(&ar1(rho, n, 7));
            let exact = ((1.0 + rho) / (1.0 - rho) / n as f64).sqrt();
            let tau_exact = (1.0 + rho) / (1.0 - rho);
            assert!((b.error / exact - 1.0).abs() < 0.15, "rho {rho}: blocking {} vs exact {exact}", b.error);
            assert!((b.tau / tau_exact - 1.0).abs() < 0.3, "rho {rho}: tau {} vs {tau_exact}", b.tau);
            // The naive error underestimates a correlated series.
            if rho > 0.0 {
                assert!(b.levels[0].error < 0.8 * exact);
            }
        }
    }

    #[test]
    fn jackknife_of_a_mean_is_the_standard_error() {
        let x = ar1(0.0, 1000, 3);
        let blocks = 1000;
        let (m, e) = jackknife(blocks, |skip| {
            let s: f64 = x.iter().enumerate().filter(|(i, _)| Some(*i) != skip).map(|(_, v)| v).sum();
            vec![s / (x.len() - skip.is_some() as usize) as f64]
        });
        let (mm, ee) = crate::classical::mean_and_error(&x);
        assert!((m[0] - mm).abs() < 1e-14 && (e[0] - ee).abs() < 1e-12 * ee.max(1.0), "{} vs {}", e[0], ee);
    }
}
