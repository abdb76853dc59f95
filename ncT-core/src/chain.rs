//! Static composition: [`Stack`] (a homogeneous sequence) and [`Chain`] (two different layers).
//! Parameters of the parts are laid out one after the other in the flat vector; the VJP runs the
//! parts in reverse order, each accumulating into its own slice of the gradient.

use crate::jet_batch::JetBatch;
use crate::layer::{BatchTape, Bijector, CotangentLift, PhasePoint, SymplecticLayer};
use crate::params::{ParamGroup, Parametrised, groups_end_to_end, init_end_to_end, nest_groups};
use crate::scalar::Scalar;
use crate::dim::{Size, Vector};

/// The dimension of a sequence of layers: that of its first layer, or the static one.
fn first_dim<N: Size>(first: Option<N>) -> N {
    first.or_else(|| N::STATIC.and_then(N::try_new)).expect("an empty stack of runtime dimension has no dimension")
}

/// A sequence of layers of one type, applied first to last.
#[derive(Clone, Debug)]
pub struct Stack<L> {
    layers: Vec<L>,
    offsets: Vec<usize>,
}

impl<L: Parametrised> Stack<L> {
    pub fn new(layers: Vec<L>) -> Self {
        let mut offsets = vec![0];
        for l in &layers {
            offsets.push(offsets.last().unwrap() + l.n_params());
        }
        Self { layers, offsets }
    }
    pub fn layers(&self) -> &[L] {
        &self.layers
    }
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
    fn slice<'a>(&self, theta: &'a [f64], i: usize) -> &'a [f64] {
        &theta[self.offsets[i]..self.offsets[i + 1]]
    }
    fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i]..self.offsets[i + 1]
    }
}

impl<L: Parametrised> Parametrised for Stack<L> {
    fn n_params(&self) -> usize {
        *self.offsets.last().unwrap()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        for (i, l) in self.layers.iter().enumerate() {
            l.init_params(rng, &mut theta[self.range(i)]);
        }
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        self.layers.iter().enumerate().flat_map(|(i, l)| nest_groups(l.param_groups(), &i.to_string(), self.offsets[i])).collect()
    }
}

impl<N: Size, L: Bijector<N>> Bijector<N> for Stack<L> {
    type Cache<D: Scalar> = Vec<L::Cache<D>>;
    fn dim(&self) -> N {
        first_dim(self.layers.first().map(|l| l.dim()))
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, N>) -> (Vector<D, N>, D, Self::Cache<D>) {
        let mut y = x.clone();
        let mut ld = D::zero();
        let mut caches = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let (yn, li, c) = l.forward(self.slice(theta, i), &y);
            y = yn;
            ld += li;
            caches.push(c);
        }
        (y, ld, caches)
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, N>) -> (Vector<D, N>, D) {
        let mut x = y.clone();
        let mut ld = D::zero();
        for (i, l) in self.layers.iter().enumerate().rev() {
            let (xn, li) = l.inverse(self.slice(theta, i), &x);
            x = xn;
            ld += li;
        }
        (x, ld)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &Vector<D, N>, ldbar: D, g: &mut [D]) -> Vector<D, N> {
        let mut bar = ybar.clone();
        for (i, l) in self.layers.iter().enumerate().rev() {
            bar = l.vjp(self.slice(theta, i), &cache[i], &bar, ldbar, &mut g[self.range(i)]);
        }
        bar
    }
    fn forward_jets(&self, theta: &[f64], x: &JetBatch) -> Option<(JetBatch, JetBatch)> {
        let mut y = x.clone();
        let mut ld = JetBatch::constant(nalgebra::DMatrix::zeros(1, x.walkers()), x.vars());
        for (i, l) in self.layers.iter().enumerate() {
            let (yn, li) = l.forward_jets(self.slice(theta, i), &y)?;
            y = yn;
            ld.add_assign(&li);
        }
        Some((y, ld))
    }
    fn forward_tape(&self, theta: &[f64], x: &nalgebra::DMatrix<f64>) -> Option<(nalgebra::DMatrix<f64>, Vec<f64>, BatchTape)> {
        let mut y = x.clone();
        let mut ld = vec![0.0; x.ncols()];
        let mut tapes = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let (yn, li, t) = l.forward_tape(self.slice(theta, i), &y)?;
            y = yn;
            ld.iter_mut().zip(li).for_each(|(a, b)| *a += b);
            tapes.push(t);
        }
        Some((y, ld, BatchTape::new(tapes)))
    }
    fn inverse_batch(&self, theta: &[f64], y: &nalgebra::DMatrix<f64>) -> Option<(nalgebra::DMatrix<f64>, Vec<f64>)> {
        let mut x = y.clone();
        let mut ld = vec![0.0; y.ncols()];
        for (i, l) in self.layers.iter().enumerate().rev() {
            let (xn, li) = l.inverse_batch(self.slice(theta, i), &x)?;
            x = xn;
            ld.iter_mut().zip(li).for_each(|(a, b)| *a += b);
        }
        Some((x, ld))
    }
    fn vjp_tape(&self, theta: &[f64], tape: &BatchTape, ybar: &nalgebra::DMatrix<f64>, ldbar: &[f64], g: &mut [f64]) -> nalgebra::DMatrix<f64> {
        let tapes: &Vec<BatchTape> = tape.get();
        let mut bar = ybar.clone();
        for (i, l) in self.layers.iter().enumerate().rev() {
            bar = l.vjp_tape(self.slice(theta, i), &tapes[i], &bar, ldbar, &mut g[self.range(i)]);
        }
        bar
    }
}

impl<N: Size, L: CotangentLift<N>> CotangentLift<N> for Stack<L> {
    type LiftCache<D: Scalar> = Vec<L::LiftCache<D>>;
    fn lift_forward<D: Scalar>(&self, theta: &[f64], x: &PhasePoint<D, N>) -> (PhasePoint<D, N>, Self::LiftCache<D>) {
        let mut y = x.clone();
        let mut caches = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let (yn, c) = l.lift_forward(self.slice(theta, i), &y);
            y = yn;
            caches.push(c);
        }
        (y, caches)
    }
    fn lift_inverse<D: Scalar>(&self, theta: &[f64], y: &PhasePoint<D, N>) -> PhasePoint<D, N> {
        let mut x = y.clone();
        for (i, l) in self.layers.iter().enumerate().rev() {
            x = l.lift_inverse(self.slice(theta, i), &x);
        }
        x
    }
    fn lift_vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::LiftCache<D>, ybar: &PhasePoint<D, N>, g: &mut [D]) -> PhasePoint<D, N> {
        let mut bar = ybar.clone();
        for (i, l) in self.layers.iter().enumerate().rev() {
            bar = l.lift_vjp(self.slice(theta, i), &cache[i], &bar, &mut g[self.range(i)]);
        }
        bar
    }
}

impl<N: Size, L: SymplecticLayer<N>> SymplecticLayer<N> for Stack<L> {
    type Cache<D: Scalar> = Vec<L::Cache<D>>;
    fn dim(&self) -> N {
        first_dim(self.layers.first().map(|l| l.dim()))
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &PhasePoint<D, N>) -> (PhasePoint<D, N>, Self::Cache<D>) {
        let mut y = x.clone();
        let mut caches = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let (yn, c) = l.forward(self.slice(theta, i), &y);
            y = yn;
            caches.push(c);
        }
        (y, caches)
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &PhasePoint<D, N>) -> PhasePoint<D, N> {
        let mut x = y.clone();
        for (i, l) in self.layers.iter().enumerate().rev() {
            x = l.inverse(self.slice(theta, i), &x);
        }
        x
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &PhasePoint<D, N>, g: &mut [D]) -> PhasePoint<D, N> {
        let mut bar = ybar.clone();
        for (i, l) in self.layers.iter().enumerate().rev() {
            bar = l.vjp(self.slice(theta, i), &cache[i], &bar, &mut g[self.range(i)]);
        }
        bar
    }
}

/// `first` then `second`.
#[derive(Clone, Debug)]
pub struct Chain<A, B> {
    pub first: A,
    pub second: B,
}

impl<A: Parametrised, B: Parametrised> Chain<A, B> {
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
    fn split<'a>(&self, theta: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        theta.split_at(self.first.n_params())
    }
}

impl<A: Parametrised, B: Parametrised> Parametrised for Chain<A, B> {
    fn n_params(&self) -> usize {
        self.first.n_params() + self.second.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        init_end_to_end(&self.first, &self.second, rng, theta);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        groups_end_to_end(&self.first, "0", &self.second, "1")
    }
}

impl<N: Size, A: Bijector<N>, B: Bijector<N>> Bijector<N> for Chain<A, B> {
    type Cache<D: Scalar> = (A::Cache<D>, B::Cache<D>);
    fn dim(&self) -> N {
        self.first.dim()
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, N>) -> (Vector<D, N>, D, Self::Cache<D>) {
        let (ta, tb) = self.split(theta);
        let (y1, l1, c1) = self.first.forward(ta, x);
        let (y2, l2, c2) = self.second.forward(tb, &y1);
        (y2, l1 + l2, (c1, c2))
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, N>) -> (Vector<D, N>, D) {
        let (ta, tb) = self.split(theta);
        let (x1, l2) = self.second.inverse(tb, y);
        let (x0, l1) = self.first.inverse(ta, &x1);
        (x0, l1 + l2)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &Vector<D, N>, ldbar: D, g: &mut [D]) -> Vector<D, N> {
        let (ta, tb) = self.split(theta);
        let (ga, gb) = g.split_at_mut(self.first.n_params());
        let b1 = self.second.vjp(tb, &cache.1, ybar, ldbar, gb);
        self.first.vjp(ta, &cache.0, &b1, ldbar, ga)
    }
    fn forward_jets(&self, theta: &[f64], x: &JetBatch) -> Option<(JetBatch, JetBatch)> {
        let (ta, tb) = self.split(theta);
        let (y1, mut l1) = self.first.forward_jets(ta, x)?;
        let (y2, l2) = self.second.forward_jets(tb, &y1)?;
        l1.add_assign(&l2);
        Some((y2, l1))
    }
    fn forward_tape(&self, theta: &[f64], x: &nalgebra::DMatrix<f64>) -> Option<(nalgebra::DMatrix<f64>, Vec<f64>, BatchTape)> {
        let (ta, tb) = self.split(theta);
        let (y1, mut l1, t1) = self.first.forward_tape(ta, x)?;
        let (y2, l2, t2) = self.second.forward_tape(tb, &y1)?;
        l1.iter_mut().zip(l2).for_each(|(a, b)| *a += b);
        Some((y2, l1, BatchTape::new((t1, t2))))
    }
    fn inverse_batch(&self, theta: &[f64], y: &nalgebra::DMatrix<f64>) -> Option<(nalgebra::DMatrix<f64>, Vec<f64>)> {
        let (ta, tb) = self.split(theta);
        let (x1, mut l2) = self.second.inverse_batch(tb, y)?;
        let (x0, l1) = self.first.inverse_batch(ta, &x1)?;
        l2.iter_mut().zip(l1).for_each(|(a, b)| *a += b);
        Some((x0, l2))
    }
    fn vjp_tape(&self, theta: &[f64], tape: &BatchTape, ybar: &nalgebra::DMatrix<f64>, ldbar: &[f64], g: &mut [f64]) -> nalgebra::DMatrix<f64> {
        let (ta, tb) = self.split(theta);
        let (t1, t2): &(BatchTape, BatchTape) = tape.get();
        let (ga, gb) = g.split_at_mut(self.first.n_params());
        let b1 = self.second.vjp_tape(tb, t2, ybar, ldbar, gb);
        self.first.vjp_tape(ta, t1, &b1, ldbar, ga)
    }
}

impl<N: Size, A: CotangentLift<N>, B: CotangentLift<N>> CotangentLift<N> for Chain<A, B> {
    type LiftCache<D: Scalar> = (A::LiftCache<D>, B::LiftCache<D>);
    fn lift_forward<D: Scalar>(&self, theta: &[f64], x: &PhasePoint<D, N>) -> (PhasePoint<D, N>, Self::LiftCache<D>) {
        let (ta, tb) = self.split(theta);
        let (y1, c1) = self.first.lift_forward(ta, x);
        let (y2, c2) = self.second.lift_forward(tb, &y1);
        (y2, (c1, c2))
    }
    fn lift_inverse<D: Scalar>(&self, theta: &[f64], y: &PhasePoint<D, N>) -> PhasePoint<D, N> {
        let (ta, tb) = self.split(theta);
        let x1 = self.second.lift_inverse(tb, y);
        self.first.lift_inverse(ta, &x1)
    }
    fn lift_vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::LiftCache<D>, ybar: &PhasePoint<D, N>, g: &mut [D]) -> PhasePoint<D, N> {
        let (ta, tb) = self.split(theta);
        let (ga, gb) = g.split_at_mut(self.first.n_params());
        let b1 = self.second.lift_vjp(tb, &cache.1, ybar, gb);
        self.first.lift_vjp(ta, &cache.0, &b1, ga)
    }
}

impl<N: Size, A: SymplecticLayer<N>, B: SymplecticLayer<N>> SymplecticLayer<N> for Chain<A, B> {
    type Cache<D: Scalar> = (A::Cache<D>, B::Cache<D>);
    fn dim(&self) -> N {
        self.first.dim()
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &PhasePoint<D, N>) -> (PhasePoint<D, N>, Self::Cache<D>) {
        let (ta, tb) = self.split(theta);
        let (y1, c1) = self.first.forward(ta, x);
        let (y2, c2) = self.second.forward(tb, &y1);
        (y2, (c1, c2))
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &PhasePoint<D, N>) -> PhasePoint<D, N> {
        let (ta, tb) = self.split(theta);
        let x1 = self.second.inverse(tb, y);
        self.first.inverse(ta, &x1)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &PhasePoint<D, N>, g: &mut [D]) -> PhasePoint<D, N> {
        let (ta, tb) = self.split(theta);
        let (ga, gb) = g.split_at_mut(self.first.n_params());
        let b1 = self.second.vjp(tb, &cache.1, ybar, gb);
        self.first.vjp(ta, &cache.0, &b1, ga)
    }
}
