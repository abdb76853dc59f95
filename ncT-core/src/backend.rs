//! The batch seam: batched entry points that model code calls, with a CPU implementation on the
//! deterministic rayon [`BatchEngine`]. A GPU backend implements the same trait (dense layers as
//! device GEMMs, energies and forces as kernels) without touching model code.

use crate::batch::BatchEngine;
use crate::dense::DenseNet;
use crate::hamiltonian::{Hamiltonian, Separable};
use crate::dim::{Size, Vector};
use crate::layer::PhasePoint;
use crate::parallel::Wire;
use nalgebra::DMatrix;
use rayon::prelude::*;

/// Batched evaluation of the expensive pieces of a training step.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    /// The potential $V(x)$ of every configuration, in order (the machine-learned potentials of
    /// the quantum training steps, e.g. DeepPot-SE over a batch of walkers, come through here).
    fn potentials<H: Separable<N>, N: Size>(&self, h: &H, xs: &[Vector<f64, N>]) -> Vec<f64>;
    /// Energies and $(\partial H/\partial q, \partial H/\partial p)$ at every phase-space point.
    fn energies_and_gradients<H: Hamiltonian<N>, N: Size>(&self, h: &H, points: &[PhasePoint<f64, N>]) -> Vec<(f64, PhasePoint<f64, N>)>;
    /// Dense net applied to the columns of `x`; returns every layer's activations.
    fn dense_forward(&self, net: &DenseNet, theta: &[f64], x: &DMatrix<f64>) -> Vec<DMatrix<f64>>;
    /// Reverse pass of [`Backend::dense_forward`]: adds the batch-summed parameter gradient to `g`,
    /// returns the input cotangents.
    fn dense_vjp(&self, net: &DenseNet, theta: &[f64], acts: &[DMatrix<f64>], ybar: &DMatrix<f64>, g: &mut [f64]) -> DMatrix<f64>;
}

/// CPU backend: fixed column chunks on rayon, ordered reduction (bitwise independent of threads).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend {
    pub engine: BatchEngine,
}

impl CpuBackend {
    pub fn new(chunk_size: usize) -> Self {
        Self { engine: BatchEngine::new(chunk_size) }
    }
    /// `f` of every item, in order: fixed chunks on rayon, shared out over MPI ranks.
    fn per_chunk<X: Sync, T: Wire + Send>(&self, items: &[X], f: impl Fn(&X) -> T + Sync) -> Vec<T> {
        let c = self.engine.chunk_size.max(1);
        let parts: Vec<Vec<T>> = crate::parallel::map_chunks(items.len().div_ceil(c), |k| items[k * c..((k + 1) * c).min(items.len())].iter().map(&f).collect());
        parts.into_iter().flatten().collect()
    }
    fn col_chunks(&self, b: usize) -> Vec<(usize, usize)> {
        let c = self.engine.chunk_size.max(1);
        (0..b.div_ceil(c)).map(|k| (k * c, c.min(b - k * c))).collect()
    }
}

fn hcat(parts: Vec<DMatrix<f64>>) -> DMatrix<f64> {
    let rows = parts.first().map_or(0, |p| p.nrows());
    let cols: usize = parts.iter().map(|p| p.ncols()).sum();
    let mut out = DMatrix::zeros(rows, cols);
    let mut c0 = 0;
    for p in parts {
        out.columns_mut(c0, p.ncols()).copy_from(&p);
        c0 += p.ncols();
    }
    out
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn potentials<H: Separable<N>, N: Size>(&self, h: &H, xs: &[Vector<f64, N>]) -> Vec<f64> {
        self.per_chunk(xs, |x| h.potential(x))
    }
    fn energies_and_gradients<H: Hamiltonian<N>, N: Size>(&self, h: &H, points: &[PhasePoint<f64, N>]) -> Vec<(f64, PhasePoint<f64, N>)> {
        self.per_chunk(points, |x| {
            let e = h.energy(&x.q, &x.p);
            let (dq, dp) = h.gradient(&x.q, &x.p);
            (e, PhasePoint::new(dq, dp))
        })
    }
    fn dense_forward(&self, net: &DenseNet, theta: &[f64], x: &DMatrix<f64>) -> Vec<DMatrix<f64>> {
        let parts: Vec<Vec<DMatrix<f64>>> = self.col_chunks(x.ncols()).into_par_iter().map(|(c0, n)| net.forward_batch(theta, &x.columns(c0, n).into_owned())).collect();
        let layers = net.sizes().len();
        (0..layers).map(|l| hcat(parts.iter().map(|p| p[l].clone()).collect())).collect()
    }
    fn dense_vjp(&self, net: &DenseNet, theta: &[f64], acts: &[DMatrix<f64>], ybar: &DMatrix<f64>, g: &mut [f64]) -> DMatrix<f64> {
        let np = g.len();
        let parts: Vec<(Vec<f64>, DMatrix<f64>)> = self
            .col_chunks(ybar.ncols())
            .into_par_iter()
            .map(|(c0, n)| {
                let a: Vec<DMatrix<f64>> = acts.iter().map(|m| m.columns(c0, n).into_owned()).collect();
                let mut gl = vec![0.0; np];
                let xb = net.backprop_batch(theta, &a, &ybar.columns(c0, n).into_owned(), &mut gl);
                (gl, xb)
            })
            .collect();
        let mut xbars = Vec::with_capacity(parts.len());
        for (gl, xb) in parts {
            for (t, v) in g.iter_mut().zip(&gl) {
                *t += v;
            }
            xbars.push(xb);
        }
        hcat(xbars)
    }
}
