//! The batched (matrix-matrix) path of the symplectic layers, used for training throughput.
//!
//! A [`PhaseBatch`] holds $B$ phase-space points as two $N \times B$ matrices. Dense layers then run
//! as GEMMs, and the forward-over-reverse terms of the point transformation become batched tangent
//! passes ([`DenseNet::jvp_batch`](crate::dense::DenseNet::jvp_batch), [`DenseNet::tangent_backprop_batch`](crate::dense::DenseNet::tangent_backprop_batch)) instead of dual numbers.
//! The per-sample, scalar-generic path stays the reference: tests require both to agree to
//! rounding. Layers without a batched kernel (the gradient shears) loop over columns.

use crate::chain::{Chain, Stack};
use crate::coupling::AffineCoupling;
use crate::layer::{CotangentLift, PhasePoint, SymplecticLayer};
use crate::linear::{LinearSymplectic, SymplecticScaling};
use crate::params::Parametrised;
use crate::point::PointTransform;
use crate::shear::{GradientShear, HamiltonianFlow};
use crate::dim::{Size, Vector};
use crate::gemm::{MatRef, gemm_into, matmul};
use nalgebra::DMatrix;

/// $B$ phase-space points as columns of two $N \times B$ matrices.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseBatch {
    pub q: DMatrix<f64>,
    pub p: DMatrix<f64>,
}

impl PhaseBatch {
    pub fn from_points<N: Size>(pts: &[PhasePoint<f64, N>]) -> Self {
        let n = pts.first().map_or(0, |x| x.q.len());
        Self { q: DMatrix::from_fn(n, pts.len(), |i, j| pts[j].q[i]), p: DMatrix::from_fn(n, pts.len(), |i, j| pts[j].p[i]) }
    }
    /// Column `j` as a phase-space point.
    ///
    /// # Panics
    /// If `N` cannot have this batch's number of rows.
    pub fn point<N: Size>(&self, j: usize) -> PhasePoint<f64, N> {
        let n = N::try_new(self.q.nrows()).expect("phase batch rows must match the dimension");
        PhasePoint::new(Vector::from_fn(n, |i| self.q[(i, j)]), Vector::from_fn(n, |i| self.p[(i, j)]))
    }
    pub fn to_points<N: Size>(&self) -> Vec<PhasePoint<f64, N>> {
        (0..self.len()).map(|j| self.point(j)).collect()
    }
    pub fn len(&self) -> usize {
        self.q.ncols()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Batched cotangent lift of a configuration-space bijector.
pub trait BatchedLift<N: Size>: CotangentLift<N> {
    type BatchLiftCache: Send;
    fn lift_forward_batch(&self, theta: &[f64], x: &PhaseBatch) -> (PhaseBatch, Self::BatchLiftCache);
    fn lift_vjp_batch(&self, theta: &[f64], cache: &Self::BatchLiftCache, ybar: &PhaseBatch, g: &mut [f64]) -> PhaseBatch;
}

/// Batched symplectic layer: `g` receives the parameter gradient summed over the batch.
pub trait BatchedSymplectic<N: Size>: SymplecticLayer<N> {
    type BatchCache: Send;
    fn forward_batch(&self, theta: &[f64], x: &PhaseBatch) -> (PhaseBatch, Self::BatchCache);
    fn vjp_batch(&self, theta: &[f64], cache: &Self::BatchCache, ybar: &PhaseBatch, g: &mut [f64]) -> PhaseBatch;
}

/// Cache of the batched coupling lift.
pub struct CouplingBatchCache {
    q: DMatrix<f64>,
    acts: Vec<DMatrix<f64>>,
    th: DMatrix<f64>,
    es: DMatrix<f64>,
    pb: DMatrix<f64>,
    cot: crate::dense::DenseCotangents,
}

impl<N: Size> BatchedLift<N> for AffineCoupling<N> {
    type BatchLiftCache = CouplingBatchCache;

    fn lift_forward_batch(&self, theta: &[f64], x: &PhaseBatch) -> (PhaseBatch, CouplingBatchCache) {
        let (net, nn, nb) = (self.net(), self.net().n_params(), self.transformed().len());
        let (cond, trans) = (self.conditioning(), self.transformed());
        let c = &theta[nn..nn + nb];
        let bsz = x.len();
        let (acts, th, es) = self.conditioner_batch(theta, &x.q);
        let out = acts.last().expect("output layer");
        let mut y = x.clone();
        let mut pb = DMatrix::zeros(nb, bsz);
        let mut outbar = DMatrix::zeros(2 * nb, bsz);
        for (k, &i) in trans.iter().enumerate() {
            for j in 0..bsz {
                let (xb, e) = (x.q[(i, j)], es[(k, j)]);
                y.q[(i, j)] = xb * e + out[(nb + k, j)];
                let pbk = x.p[(i, j)] / e;
                pb[(k, j)] = pbk;
                let t = th[(k, j)];
                outbar[(k, j)] = pbk * xb * e * c[k] * (1.0 - t * t);
                outbar[(nb + k, j)] = pbk;
            }
        }
        let (ha, cot) = net.backprop_keep_batch(&theta[..nn], &acts, &outbar);
        for (k, &i) in cond.iter().enumerate() {
            for j in 0..bsz {
                y.p[(i, j)] = x.p[(i, j)] - ha[(k, j)];
            }
        }
        for (k, &i) in trans.iter().enumerate() {
            for j in 0..bsz {
                y.p[(i, j)] = pb[(k, j)];
            }
        }
        (y, CouplingBatchCache { q: x.q.clone(), acts, th, es, pb, cot })
    }

    fn lift_vjp_batch(&self, theta: &[f64], cc: &CouplingBatchCache, ybar: &PhaseBatch, g: &mut [f64]) -> PhaseBatch {
        let (net, nn, nb) = (self.net(), self.net().n_params(), self.transformed().len());
        let (cond, trans) = (self.conditioning(), self.transformed());
        let c = &theta[nn..nn + nb];
        let bsz = ybar.len();
        let (gnet, gc) = g.split_at_mut(nn);
        // Tangent pass along v = (-Pbar_a, 0): the term -Pbar_a . (C^T P_b).
        let va = -ybar.p.select_rows(cond.iter());
        let tan = net.jvp_batch(&theta[..nn], &cc.acts, &va);
        let outdot = tan.adots.last().expect("output layer");
        let mut outbar_dot = DMatrix::zeros(2 * nb, bsz);
        let mut qbar = ybar.q.clone();
        let mut pbar = ybar.p.clone();
        let mut outbar2 = DMatrix::zeros(2 * nb, bsz);
        for (k, &i) in trans.iter().enumerate() {
            let mut gck = 0.0;
            for j in 0..bsz {
                let (xb, e, t, pbk) = (cc.q[(i, j)], cc.es[(k, j)], cc.th[(k, j)], cc.pb[(k, j)]);
                let th_dot = (1.0 - t * t) * outdot[(k, j)];
                let es_dot = e * c[k] * th_dot;
                let yb_dot = xb * es_dot + outdot[(nb + k, j)];
                let sbar1 = pbk * xb * e;
                let sbar_dot = pbk * xb * es_dot;
                gck += sbar_dot * t + sbar1 * th_dot;
                outbar_dot[(k, j)] = c[k] * (sbar_dot * (1.0 - t * t) - 2.0 * sbar1 * t * th_dot);
                // Momentum map P_b = e^{-s} p_b with the total cotangent of P_b.
                let pbt = ybar.p[(i, j)] + yb_dot;
                pbar[(i, j)] = pbt / e;
                let sbar_add = -pbk * pbt;
                // Second (primal) reverse pass with cotangent Qbar.
                let qb = ybar.q[(i, j)];
                qbar[(i, j)] = qb * e + pbk * es_dot;
                let sbar2 = qb * xb * e + sbar_add;
                gck += sbar2 * t;
                outbar2[(k, j)] = sbar2 * (1.0 - t * t) * c[k];
                outbar2[(nb + k, j)] = qb;
            }
            gc[k] += gck;
        }
        let xa_dot = net.tangent_backprop_batch(&theta[..nn], &cc.acts, &tan, &cc.cot, &outbar_dot, gnet);
        let xa2 = net.backprop_batch(&theta[..nn], &cc.acts, &outbar2, gnet);
        for (k, &i) in cond.iter().enumerate() {
            for j in 0..bsz {
                qbar[(i, j)] += xa_dot[(k, j)] + xa2[(k, j)];
            }
        }
        PhaseBatch { q: qbar, p: pbar }
    }
}

fn ranges<L: Parametrised>(layers: &[L]) -> Vec<std::ops::Range<usize>> {
    let mut off = 0;
    layers
        .iter()
        .map(|l| {
            let r = off..off + l.n_params();
            off = r.end;
            r
        })
        .collect()
}

impl<N: Size, L: BatchedLift<N>> BatchedLift<N> for Stack<L> {
    type BatchLiftCache = Vec<L::BatchLiftCache>;
    fn lift_forward_batch(&self, theta: &[f64], x: &PhaseBatch) -> (PhaseBatch, Self::BatchLiftCache) {
        let mut y = x.clone();
        let mut caches = Vec::with_capacity(self.len());
        for (l, r) in self.layers().iter().zip(ranges(self.layers())) {
            let (yn, c) = l.lift_forward_batch(&theta[r], &y);
            y = yn;
            caches.push(c);
        }
        (y, caches)
    }
    fn lift_vjp_batch(&self, theta: &[f64], cache: &Self::BatchLiftCache, ybar: &PhaseBatch, g: &mut [f64]) -> PhaseBatch {
        let mut bar = ybar.clone();
        for ((l, r), c) in self.layers().iter().zip(ranges(self.layers())).zip(cache).rev() {
            bar = l.lift_vjp_batch(&theta[r.clone()], c, &bar, &mut g[r]);
        }
        bar
    }
}

impl<N: Size, B: BatchedLift<N>> BatchedSymplectic<N> for PointTransform<B> {
    type BatchCache = B::BatchLiftCache;
    fn forward_batch(&self, theta: &[f64], x: &PhaseBatch) -> (PhaseBatch, Self::BatchCache) {
        self.inner.lift_forward_batch(theta, x)
    }
    fn vjp_batch(&self, theta: &[f64], cache: &Self::BatchCache, ybar: &PhaseBatch, g: &mut [f64]) -> PhaseBatch {
        self.inner.lift_vjp_batch(theta, cache, ybar, g)
    }
}

impl<N: Size, L: BatchedSymplectic<N>> BatchedSymplectic<N> for Stack<L> {
    type BatchCache = Vec<L::BatchCache>;
    fn forward_batch(&self, theta: &[f64], x: &PhaseBatch) -> (PhaseBatch, Self::BatchCache) {
        let mut y = x.clone();
        let mut caches = Vec::with_capacity(self.len());
        for (l, r) in self.layers().iter().zip(ranges(self.layers())) {
            let (yn, c) = l.forward_batch(&theta[r], &y);
            y = yn;
            caches.push(c);
        }
        (y, caches)
    }
    fn vjp_batch(&self, theta: &[f64], cache: &Self::BatchCache, ybar: &PhaseBatch, g: &mut [f64]) -> PhaseBatch {
        let mut bar = ybar.clone();
        for ((l, r), c) in self.layers().iter().zip(ranges(self.layers())).zip(cache).rev() {
            bar = l.vjp_batch(&theta[r.clone()], c, &bar, &mut g[r]);
        }
        bar
    }
}

impl<N: Size, A: BatchedSymplectic<N>, B: BatchedSymplectic<N>> BatchedSymplectic<N> for Chain<A, B> {
    type BatchCache = (A::BatchCache, B::BatchCache);
    fn forward_batch(&self, theta: &[f64], x: &PhaseBatch) -> (PhaseBatch, Self::BatchCache) {
        let (ta, tb) = theta.split_at(self.first.n_params());
        let (y1, c1) = self.first.forward_batch(ta, x);
        let (y2, c2) = self.second.forward_batch(tb, &y1);
        (y2, (c1, c2))
    }
    fn vjp_batch(&self, theta: &[f64], cache: &Self::BatchCache, ybar: &PhaseBatch, g: &mut [f64]) -> PhaseBatch {
        let (ta, tb) = theta.split_at(self.first.n_params());
        let (ga, gb) = g.split_at_mut(self.first.n_params());
        let b1 = self.second.vjp_batch(tb, &cache.1, ybar, gb);
        self.first.vjp_batch(ta, &cache.0, &b1, ga)
    }
}

impl<N: Size> LinearSymplectic<N> {
    fn dense_shear(&self, theta: &[f64], k: usize) -> DMatrix<f64> {
        let n = SymplecticLayer::dim(self).value();
        let m = n * (n + 1) / 2;
        let s = &theta[k * m..(k + 1) * m];
        let mut out = DMatrix::zeros(n, n);
        let mut idx = 0;
        for i in 0..n {
            for j in i..n {
                out[(i, j)] = s[idx];
                out[(j, i)] = s[idx];
                idx += 1;
            }
        }
        out
    }
}

fn sym_grad_batch(a: &DMatrix<f64>, b: &DMatrix<f64>, g: &mut [f64]) {
    let n = a.nrows();
    let m = matmul(a.into(), MatRef::from(b).t());
    let mut idx = 0;
    for i in 0..n {
        for j in i..n {
            g[idx] += if i == j { m[(i, i)] } else { m[(i, j)] + m[(j, i)] };
            idx += 1;
        }
    }
}

impl<N: Size> BatchedSymplectic<N> for LinearSymplectic<N> {
    type BatchCache = Vec<PhaseBatch>;
    fn forward_batch(&self, theta: &[f64], x: &PhaseBatch) -> (PhaseBatch, Self::BatchCache) {
        let mut y = x.clone();
        let mut cache = Vec::with_capacity(self.shears());
        for k in 0..self.shears() {
            cache.push(y.clone());
            let s = self.dense_shear(theta, k);
            if k % 2 == 0 {
                gemm_into(&mut y.p, 1.0, (&s).into(), (&y.q).into(), 1.0);
            } else {
                gemm_into(&mut y.q, 1.0, (&s).into(), (&y.p).into(), 1.0);
            }
        }
        (y, cache)
    }
    fn vjp_batch(&self, theta: &[f64], cache: &Self::BatchCache, ybar: &PhaseBatch, g: &mut [f64]) -> PhaseBatch {
        let mut bar = ybar.clone();
        let n = SymplecticLayer::dim(self).value();
        let m = n * (n + 1) / 2;
        for k in (0..self.shears()).rev() {
            let s = self.dense_shear(theta, k);
            let x = &cache[k];
            let gk = &mut g[k * m..(k + 1) * m];
            if k % 2 == 0 {
                sym_grad_batch(&bar.p, &x.q, gk);
                gemm_into(&mut bar.q, 1.0, (&s).into(), (&bar.p).into(), 1.0);
            } else {
                sym_grad_batch(&bar.q, &x.p, gk);
                gemm_into(&mut bar.p, 1.0, (&s).into(), (&bar.q).into(), 1.0);
            }
        }
        bar
    }
}

/// Column-by-column fallback through the per-sample path.
macro_rules! per_column {
    ($t:ty) => {
        impl<N: Size> BatchedSymplectic<N> for $t {
            type BatchCache = Vec<<$t as SymplecticLayer<N>>::Cache<f64>>;
            fn forward_batch(&self, theta: &[f64], x: &PhaseBatch) -> (PhaseBatch, Self::BatchCache) {
                let (ys, cs): (Vec<_>, Vec<_>) = (0..x.len()).map(|j| SymplecticLayer::forward(self, theta, &x.point::<N>(j))).unzip();
                (PhaseBatch::from_points(&ys), cs)
            }
            fn vjp_batch(&self, theta: &[f64], cache: &Self::BatchCache, ybar: &PhaseBatch, g: &mut [f64]) -> PhaseBatch {
                let xs: Vec<PhasePoint<f64, N>> = cache.iter().enumerate().map(|(j, c)| SymplecticLayer::vjp(self, theta, c, &ybar.point::<N>(j), g)).collect();
                PhaseBatch::from_points(&xs)
            }
        }
    };
}
per_column!(SymplecticScaling<N>);
per_column!(GradientShear<N>);
per_column!(HamiltonianFlow<N>);

