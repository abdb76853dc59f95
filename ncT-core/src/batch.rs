//! Deterministic data-parallel batch engine.
//!
//! A batch of `n` samples is cut into fixed chunks of `chunk_size` samples, independent of the
//! number of threads. Each chunk runs sequentially with its own accumulation buffer and its own
//! random stream (derived from `(seed, step, chunk)`), rayon runs the chunks in parallel, the
//! per-chunk results are returned in chunk order and losses and gradients are summed in a fixed
//! pairwise tree over the chunks. The result is therefore bitwise identical for any thread count
//! (and any number of MPI ranks, [`crate::parallel`]), and a run is reproducible from its seed.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use crate::parallel::{self, Wire};

/// The random number generator used throughout ncT.
pub type NctRng = Xoshiro256PlusPlus;

/// SplitMix64 finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014), used to derive independent stream seeds.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A family of seeded random streams indexed by (step, chunk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedStream {
    pub seed: u64,
}

impl SeedStream {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
    /// The stream of chunk `chunk` at training step `step`.
    pub fn rng(&self, step: u64, chunk: u64) -> NctRng {
        let s = splitmix64(splitmix64(splitmix64(self.seed) ^ step) ^ chunk.wrapping_mul(0xD1B5_4A32_D192_ED03));
        NctRng::seed_from_u64(s)
    }
    /// A stream for one-off uses (initialisation, data splits), keyed by a label.
    pub fn named(&self, label: &str) -> NctRng {
        let h = label.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        NctRng::seed_from_u64(splitmix64(self.seed ^ splitmix64(h)))
    }
}

/// Sum of per-sample losses and gradients over a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSum {
    pub loss: f64,
    pub grad: Vec<f64>,
    pub samples: usize,
}

impl BatchSum {
    /// Mean loss and gradient.
    pub fn mean(mut self) -> (f64, Vec<f64>) {
        let n = self.samples.max(1) as f64;
        self.grad.iter_mut().for_each(|g| *g /= n);
        (self.loss / n, self.grad)
    }
}

/// Fixed-chunk, order-preserving parallel map and tree sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchEngine {
    pub chunk_size: usize,
}

impl Default for BatchEngine {
    fn default() -> Self {
        Self { chunk_size: 16 }
    }
}

impl BatchEngine {
    pub fn new(chunk_size: usize) -> Self {
        Self { chunk_size: chunk_size.max(1) }
    }

    fn chunks(&self, n: usize) -> Vec<std::ops::Range<usize>> {
        (0..n.div_ceil(self.chunk_size)).map(|c| c * self.chunk_size..((c + 1) * self.chunk_size).min(n)).collect()
    }

    /// Sum over samples `0..n` of `f(sample, rng, grad_accumulator) -> loss`.
    pub fn loss_and_grad<F>(&self, n: usize, n_params: usize, stream: &SeedStream, step: u64, f: F) -> BatchSum
    where
        F: Fn(usize, &mut NctRng, &mut [f64]) -> f64 + Sync,
    {
        self.sum_chunks(n, n_params, stream, step, |range, rng| {
            let mut g = vec![0.0; n_params];
            let mut loss = 0.0;
            for i in range {
                loss += f(i, rng, &mut g);
            }
            (loss, g)
        })
    }

    /// Sum over the chunks of `0..n` of `f(chunk range, chunk stream) -> (loss, gradient)`, added
    /// in a fixed pairwise tree over the chunks ([`parallel::tree_sum`]): bitwise the same for any
    /// number of threads and MPI ranks, and over MPI only O(log chunks) partial gradients per
    /// rank are exchanged. Each gradient has `n_params` entries; `samples` is `n`.
    pub fn sum_chunks<F>(&self, n: usize, n_params: usize, stream: &SeedStream, step: u64, f: F) -> BatchSum
    where
        F: Fn(std::ops::Range<usize>, &mut NctRng) -> (f64, Vec<f64>) + Sync,
    {
        let chunks = self.chunks(n);
        let add = |mut a: (f64, Vec<f64>), b: (f64, Vec<f64>)| {
            a.0 += b.0;
            for (x, y) in a.1.iter_mut().zip(&b.1) {
                *x += y;
            }
            a
        };
        let (loss, grad) = parallel::tree_sum(chunks.len(), |c| f(chunks[c].clone(), &mut stream.rng(step, c as u64)), add, (0.0, vec![0.0; n_params]));
        BatchSum { loss, grad, samples: n }
    }

    /// Ordered parallel map over the chunks of `0..n`: `f(chunk range, chunk stream)`. The batched
    /// (matrix) paths use this so that they draw exactly the samples of the per-sample path. Over
    /// MPI each rank evaluates its share of the chunks and every rank gets all the results
    /// ([`crate::parallel`]).
    pub fn map_chunks<T, F>(&self, n: usize, stream: &SeedStream, step: u64, f: F) -> Vec<T>
    where
        T: Wire + Send,
        F: Fn(std::ops::Range<usize>, &mut NctRng) -> T + Sync,
    {
        let chunks = self.chunks(n);
        parallel::map_chunks(chunks.len(), |c| f(chunks[c].clone(), &mut stream.rng(step, c as u64)))
    }

    /// Ordered parallel map over samples `0..n` with the chunk streams.
    pub fn map<T, F>(&self, n: usize, stream: &SeedStream, step: u64, f: F) -> Vec<T>
    where
        T: Wire + Send,
        F: Fn(usize, &mut NctRng) -> T + Sync,
    {
        let parts: Vec<Vec<T>> = self.map_chunks(n, stream, step, |range, rng| range.map(|i| f(i, rng)).collect());
        parts.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    fn run(threads: usize) -> (BatchSum, Vec<f64>) {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let e = BatchEngine::new(3);
            let s = SeedStream::new(42);
            let sum = e.loss_and_grad(50, 4, &s, 7, |i, rng, g| {
                let u: f64 = rng.random();
                for (k, gk) in g.iter_mut().enumerate() {
                    *gk += (u * (k + 1) as f64 + i as f64 * 1e-3).sin() / 3.0;
                }
                u.ln() * 0.1
            });
            let m = e.map(50, &s, 7, |_, rng| rng.random::<f64>());
            (sum, m)
        })
    }

    #[test]
    fn bitwise_identical_across_thread_counts() {
        let (a, ma) = run(1);
        let (b, mb) = run(2);
        let (c, _) = run(4);
        assert_eq!(a.loss.to_bits(), b.loss.to_bits());
        assert_eq!(a.loss.to_bits(), c.loss.to_bits());
        for ((x, y), z) in a.grad.iter().zip(&b.grad).zip(&c.grad) {
            assert_eq!(x.to_bits(), y.to_bits());
            assert_eq!(x.to_bits(), z.to_bits());
        }
        assert_eq!(ma, mb);
    }

    #[test]
    fn streams_are_seeded_and_distinct() {
        let s = SeedStream::new(1);
        let a: Vec<u64> = (0..4).map(|_| s.rng(0, 0).random()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "same (seed, step, chunk) -> same stream");
        let x: u64 = s.rng(0, 1).random();
        let y: u64 = s.rng(1, 0).random();
        let z: u64 = SeedStream::new(2).rng(0, 0).random();
        assert!(x != a[0] && y != a[0] && z != a[0] && x != y);
    }
}
