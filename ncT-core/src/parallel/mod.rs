//! Data parallelism across processes: one training spread over MPI ranks.
//!
//! The seam is the [`BatchEngine`](crate::batch::BatchEngine): a batch is already cut into fixed
//! chunks with their own random streams (keyed by step and chunk index) and reduced in chunk
//! order. Over several ranks each rank evaluates a contiguous share of the chunks
//! ([`share`]), the per-chunk results are all-gathered (encoded by [`Wire`]), and every rank then
//! holds the whole ordered list of chunk results, exactly as one process would. Everything after
//! the engine (reductions, statistics, SR solves, optimiser steps) runs identically on every rank,
//! so parameters and metrics are bitwise the same for 1, 2 or any number of ranks, and for any
//! number of threads per rank.
//!
//! Only rank 0 writes files (run directory, checkpoints, plots, summary) and prints to standard
//! output; every rank reads the same checkpoint on `--resume`. An error on any rank aborts the
//! whole job with a message naming the rank; a rank that dies is reported by the MPI launcher.
//!
//! Without the `mpi` feature (the default) there is one rank and nothing here costs anything.
//! With it, the examples call [`start`] through the run machinery's argument parsing and
//! [`finish`] through `exit_on_error`.

#[cfg(feature = "mpi")]
mod mpi_world;
mod wire;

pub use wire::{Wire, WireError};

use rayon::prelude::*;
use std::ops::Range;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The processes that share a batch: their number, this one's index, and an all-gather.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Whether collective calls may be made from the calling thread (MPI is initialised with
    /// `MPI_THREAD_FUNNELED`: only the thread that initialised it communicates).
    fn callable_here(&self) -> bool;
    /// Every rank's `mine`, in rank order (an `MPI_Allgatherv`).
    fn all_gather(&self, mine: &[u8]) -> Vec<Vec<u8>>;
    /// End the whole job with exit status `code` (an `MPI_Abort`).
    fn abort(&self, code: i32) -> !;
}

static WORLD: OnceLock<Box<dyn Collective>> = OnceLock::new();

/// Time in all-gathers (waiting for the slowest rank included), their number and bytes received.
static GATHER_NANOS: AtomicU64 = AtomicU64::new(0);
static GATHERS: AtomicU64 = AtomicU64::new(0);
static GATHER_BYTES: AtomicU64 = AtomicU64::new(0);

/// What the all-gathers of this process cost so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CommStats {
    /// Wall seconds inside all-gathers, waiting for the slowest rank included.
    pub seconds: f64,
    pub gathers: u64,
    /// Bytes received (all ranks' shares).
    pub bytes: u64,
}

pub fn comm_stats() -> CommStats {
    CommStats { seconds: GATHER_NANOS.load(Ordering::Relaxed) as f64 * 1e-9, gathers: GATHERS.load(Ordering::Relaxed), bytes: GATHER_BYTES.load(Ordering::Relaxed) }
}

/// The process group, once [`start`] has joined one with more than one rank.
pub fn world() -> Option<&'static dyn Collective> {
    WORLD.get().map(|w| w.as_ref()).filter(|w| w.size() > 1)
}

/// This process's rank (0 without MPI).
pub fn rank() -> usize {
    WORLD.get().map_or(0, |w| w.rank())
}

/// Number of ranks (1 without MPI).
pub fn ranks() -> usize {
    WORLD.get().map_or(1, |w| w.size())
}

/// Whether this process writes files and prints results (rank 0).
pub fn is_root() -> bool {
    rank() == 0
}

/// Install `world` as the process group (first call wins; returns whether it was installed).
pub fn install(world: Box<dyn Collective>) -> bool {
    WORLD.set(world).is_ok()
}

/// Join the MPI job this process was launched in (`mpirun -n R ...`; a process started without
/// a launcher is a job of one rank). Non-root ranks stop printing to standard output, and a
/// panic on any rank aborts the job. Without the `mpi` feature: nothing.
pub fn start() {
    #[cfg(feature = "mpi")]
    mpi_world::start();
}

/// Leave the job: `code == 0` finalises MPI after the last collective call; any other code
/// aborts every rank (the caller has printed why, naming the rank).
pub fn finish(code: i32) {
    #[cfg(feature = "mpi")]
    mpi_world::finish(code);
    #[cfg(not(feature = "mpi"))]
    let _ = code;
}

/// `"rank r of R: "` when running on several ranks, else empty (prefix for error messages).
pub fn rank_prefix() -> String {
    if ranks() > 1 { format!("rank {} of {}: ", rank(), ranks()) } else { String::new() }
}

/// The chunks of `0..n_chunks` that rank `rank` of `size` evaluates: a contiguous block, the
/// blocks of consecutive ranks adjacent, sizes differing by at most one.
pub fn share(n_chunks: usize, size: usize, rank: usize) -> Range<usize> {
    let (q, r) = (n_chunks / size, n_chunks % size);
    let start = rank * q + rank.min(r);
    start..start + q + usize::from(rank < r)
}

/// `f(c)` for every chunk `c` of `0..n_chunks`, in chunk order. On one rank (or when called off
/// the communicating thread, e.g. inside another parallel loop) every chunk is evaluated here on
/// rayon; on several ranks each evaluates its [`share`] and the results are all-gathered.
pub fn map_chunks<T, F>(n_chunks: usize, f: F) -> Vec<T>
where
    T: Wire + Send,
    F: Fn(usize) -> T + Sync,
{
    match world().filter(|w| w.callable_here()) {
        None => (0..n_chunks).into_par_iter().map(&f).collect(),
        Some(w) => gather_shares(w, n_chunks, f),
    }
}

fn gather_shares<T, F>(w: &dyn Collective, n_chunks: usize, f: F) -> Vec<T>
where
    T: Wire + Send,
    F: Fn(usize) -> T + Sync,
{
    let size = w.size();
    let mine: Vec<T> = share(n_chunks, size, w.rank()).into_par_iter().map(&f).collect();
    let chunk = |r: usize, i: usize| format!("the result of chunk {}", share(n_chunks, size, r).start + i);
    gather_items(w, &mine, |r| share(n_chunks, size, r).len(), chunk).into_iter().flatten().collect()
}

/// Every rank's `mine`, in rank order, exchanged by one all-gather. Rank `r` sends `count(r)`
/// items (known to every rank); `label(r, i)` names item `i` of rank `r` if it does not decode,
/// which means mismatched binaries and aborts the job.
fn gather_items<V: Wire>(w: &dyn Collective, mine: &[V], count: impl Fn(usize) -> usize, label: impl Fn(usize, usize) -> String) -> Vec<Vec<V>> {
    let mut bytes = Vec::new();
    for v in mine {
        v.put(&mut bytes);
    }
    let all = timed_gather(w, &bytes);
    all.iter()
        .enumerate()
        .map(|(r, b)| {
            let mut input = &b[..];
            let items: Vec<V> = (0..count(r))
                .map(|i| {
                    V::take(&mut input).unwrap_or_else(|e| {
                        eprintln!("error: {}{} from rank {r} does not decode ({e}); every rank must run the same binary", rank_prefix(), label(r, i));
                        w.abort(3)
                    })
                })
                .collect();
            if !input.is_empty() {
                eprintln!("error: {}rank {r} sent {} bytes more than its items hold; every rank must run the same binary", rank_prefix(), input.len());
                w.abort(3)
            }
            items
        })
        .collect()
}

/// The sum over chunks `0..n_chunks` of `leaf(c)` in a fixed pairwise tree: a node covering
/// `lo..hi` is `add(node(lo..mid), node(mid..hi))` with `mid - lo` the largest power of two below
/// `hi - lo`. The shape depends on `n_chunks` only, so the result is bitwise the same for any
/// number of threads (rayon joins the halves) and ranks: on several ranks each sums the largest
/// nodes inside its [`share`] and only those partial sums (O(log n_chunks) per rank) travel,
/// instead of one result per chunk. `zero` is the sum of no chunks.
pub fn tree_sum<V, L, A>(n_chunks: usize, leaf: L, add: A, zero: V) -> V
where
    V: Wire + Send,
    L: Fn(usize) -> V + Sync,
    A: Fn(V, V) -> V + Sync,
{
    if n_chunks == 0 {
        return zero;
    }
    match world().filter(|w| w.callable_here()) {
        None => node_sum(0, n_chunks, &leaf, &add),
        Some(w) => gathered_tree_sum(w, n_chunks, &leaf, &add),
    }
}

/// Left size of the tree node covering `len > 1` chunks.
fn left_len(len: usize) -> usize {
    len.next_power_of_two() / 2
}

fn node_sum<V: Send, L: Fn(usize) -> V + Sync, A: Fn(V, V) -> V + Sync>(lo: usize, hi: usize, leaf: &L, add: &A) -> V {
    if hi - lo == 1 {
        return leaf(lo);
    }
    let mid = lo + left_len(hi - lo);
    let (a, b) = rayon::join(|| node_sum(lo, mid, leaf, add), || node_sum(mid, hi, leaf, add));
    add(a, b)
}

/// The largest tree nodes inside `share`, left to right.
fn maximal_nodes(lo: usize, hi: usize, share: &Range<usize>, out: &mut Vec<(usize, usize)>) {
    if hi <= share.start || lo >= share.end {
        return;
    }
    if share.start <= lo && hi <= share.end {
        out.push((lo, hi));
        return;
    }
    let mid = lo + left_len(hi - lo);
    maximal_nodes(lo, mid, share, out);
    maximal_nodes(mid, hi, share, out);
}

fn gathered_tree_sum<V, L, A>(w: &dyn Collective, n_chunks: usize, leaf: &L, add: &A) -> V
where
    V: Wire + Send,
    L: Fn(usize) -> V + Sync,
    A: Fn(V, V) -> V + Sync,
{
    let size = w.size();
    let nodes = |r: usize| {
        let mut v = Vec::new();
        maximal_nodes(0, n_chunks, &share(n_chunks, size, r), &mut v);
        v
    };
    let per_rank: Vec<Vec<(usize, usize)>> = (0..size).map(nodes).collect();
    let mine: Vec<V> = per_rank[w.rank()].par_iter().map(|&(lo, hi)| node_sum(lo, hi, leaf, add)).collect();
    let label = |r: usize, i: usize| format!("the partial sum of chunks {}..{}", per_rank[r][i].0, per_rank[r][i].1);
    let gathered = gather_items(w, &mine, |r| per_rank[r].len(), label);
    let mut known: std::collections::HashMap<(usize, usize), V> = per_rank.iter().flatten().copied().zip(gathered.into_iter().flatten()).collect();
    fn combine<V, A: Fn(V, V) -> V>(lo: usize, hi: usize, known: &mut std::collections::HashMap<(usize, usize), V>, add: &A) -> V {
        if let Some(v) = known.remove(&(lo, hi)) {
            return v;
        }
        // Every node that is not some rank's maximal node spans ranks, so it has two children.
        let mid = lo + left_len(hi - lo);
        let a = combine(lo, mid, known, add);
        let b = combine(mid, hi, known, add);
        add(a, b)
    }
    combine(0, n_chunks, &mut known, add)
}

fn timed_gather(w: &dyn Collective, bytes: &[u8]) -> Vec<Vec<u8>> {
    let t0 = Instant::now();
    let all = w.all_gather(bytes);
    GATHER_NANOS.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    GATHERS.fetch_add(1, Ordering::Relaxed);
    GATHER_BYTES.fetch_add(all.iter().map(|b| b.len() as u64).sum(), Ordering::Relaxed);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier, Mutex};

    #[test]
    fn shares_cover_the_chunks_in_order() {
        for n in 0..40 {
            for size in 1..9 {
                let all: Vec<usize> = (0..size).flat_map(|r| share(n, size, r)).collect();
                assert_eq!(all, (0..n).collect::<Vec<_>>(), "n {n}, size {size}");
                let lens: Vec<usize> = (0..size).map(|r| share(n, size, r).len()).collect();
                assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1);
            }
        }
    }

    /// `size` ranks as threads of this process, exchanging through shared slots.
    struct ThreadRanks {
        rank: usize,
        size: usize,
        slots: Arc<Mutex<Vec<Vec<u8>>>>,
        barrier: Arc<Barrier>,
    }

    impl Collective for ThreadRanks {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn callable_here(&self) -> bool {
            true
        }
        fn all_gather(&self, mine: &[u8]) -> Vec<Vec<u8>> {
            self.slots.lock().unwrap()[self.rank] = mine.to_vec();
            self.barrier.wait();
            let all = self.slots.lock().unwrap().clone();
            self.barrier.wait();
            all
        }
        fn abort(&self, code: i32) -> ! {
            panic!("abort {code}")
        }
    }

    fn on_thread_ranks<T: Send>(size: usize, f: impl Fn(&ThreadRanks) -> T + Sync) -> Vec<T> {
        let slots = Arc::new(Mutex::new(vec![Vec::new(); size]));
        let barrier = Arc::new(Barrier::new(size));
        std::thread::scope(|s| {
            let f = &f;
            let hs: Vec<_> = (0..size)
                .map(|rank| {
                    let w = ThreadRanks { rank, size, slots: slots.clone(), barrier: barrier.clone() };
                    s.spawn(move || f(&w))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn tree_sums_are_bitwise_independent_of_ranks_and_threads() {
        // Terms of very different magnitude: any change of the summation order shows in the bits.
        let leaf = |c: usize| -> (f64, Vec<f64>) { (1e16f64.powi((c % 3) as i32) * (c as f64 + 0.1).sin(), vec![(c as f64).exp().sin() * 1e8f64.powi((c % 2) as i32), 1.0 / (c as f64 + 0.3)]) };
        let add = |a: (f64, Vec<f64>), b: (f64, Vec<f64>)| (a.0 + b.0, a.1.iter().zip(&b.1).map(|(x, y)| x + y).collect());
        let bits = |v: &(f64, Vec<f64>)| (v.0.to_bits(), v.1.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        for n in [1, 2, 3, 7, 16, 33] {
            let one = tree_sum(n, leaf, add, (0.0, vec![0.0; 2]));
            // The same tree written out sequentially, as an independent oracle.
            fn seq(lo: usize, hi: usize, leaf: &dyn Fn(usize) -> (f64, Vec<f64>)) -> (f64, Vec<f64>) {
                if hi - lo == 1 {
                    return leaf(lo);
                }
                let mid = lo + (hi - lo).next_power_of_two() / 2;
                let (a, b) = (seq(lo, mid, leaf), seq(mid, hi, leaf));
                (a.0 + b.0, a.1.iter().zip(&b.1).map(|(x, y)| x + y).collect())
            }
            assert_eq!(bits(&one), bits(&seq(0, n, &leaf)));
            let threads = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(|| tree_sum(n, leaf, add, (0.0, vec![0.0; 2])));
            assert_eq!(bits(&one), bits(&threads));
            for size in 1..6 {
                for got in on_thread_ranks(size, |w| gathered_tree_sum(w, n, &leaf, &add)) {
                    assert_eq!(bits(&got), bits(&one), "n {n}, {size} ranks");
                }
            }
        }
        assert_eq!(tree_sum(0, leaf, add, (0.0, vec![0.0; 2])), (0.0, vec![0.0; 2]));
    }

    #[test]
    fn gathered_shares_equal_the_single_process_result_bitwise() {
        let f = |c: usize| -> (f64, Vec<f64>) { ((c as f64).sin(), (0..c % 5).map(|k| (k as f64 + 0.1 * c as f64).exp()).collect()) };
        for n_chunks in [0, 1, 5, 17] {
            let single: Vec<(f64, Vec<f64>)> = (0..n_chunks).map(f).collect();
            for size in 1..5 {
                let got = on_thread_ranks(size, |w| gather_shares(w, n_chunks, f));
                for g in got {
                    assert_eq!(g.len(), single.len());
                    for (a, b) in g.iter().zip(&single) {
                        assert_eq!(a.0.to_bits(), b.0.to_bits());
                        assert_eq!(a.1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), b.1.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
                    }
                }
            }
        }
    }
}
