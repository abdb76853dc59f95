//! Affine coupling (RealNVP, Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP",
//! ICLR 2017) on configuration space.
//!
//! The coordinates are split by a mask into a conditioning part $a$ and a transformed part $b$:
//! $$ y_a = x_a, \qquad y_b = x_b \odot e^{s(x_a)} + t(x_a), \qquad s = c \odot \tanh(r(x_a)), $$
//! with $(r, t)$ the output of a [`DenseNet`] and $c$ a learnable per-coordinate scale;
//! $\ln|\det \partial y/\partial x| = \sum_b s_b$.
//!
//! Its cotangent lift (for [`PointTransform`](crate::point::PointTransform)) is analytic:
//! with $C = \partial y_b / \partial x_a$,
//! $P_b = e^{-s} \odot p_b$, $P_a = p_a - C^T P_b$.

use crate::activation::Activation;
use crate::chain::Stack;
use crate::dense::DenseNet;
use crate::error::ConfigError;
use crate::layer::{Bijector, CotangentLift, PhasePoint};
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;
use crate::dim::{Size, Vector};
use num_dual::Dual;
use rand::seq::SliceRandom;

/// One affine coupling layer on $\mathbb R^N$.
#[derive(Clone, Debug)]
pub struct AffineCoupling<N: Size> {
    dim: N,
    cond: Vec<usize>,
    trans: Vec<usize>,
    net: DenseNet,
}

/// What the coupling's VJP needs.
#[derive(Clone, Debug)]
pub struct CouplingCache<D: Scalar, N: Size> {
    x: Vector<D, N>,
    acts: Vec<D>,
    es: Vec<D>,
    th: Vec<D>,
}

impl<N: Size> AffineCoupling<N> {
    /// `cond`: the indices that condition (kept fixed); the rest are transformed.
    pub fn new(dim: N, cond: Vec<usize>, hidden: &[usize], activation: Activation) -> Result<Self, ConfigError> {
        let n = dim.value();
        if n < 2 {
            return Err(ConfigError::Dimension { layer: "AffineCoupling", dim: n, why: "a coupling splits the coordinates into two non-empty parts, so it needs N >= 2" });
        }
        let mut seen = vec![false; n];
        for &i in &cond {
            if i >= n || seen[i] {
                return Err(ConfigError::Mask { layer: "AffineCoupling", mask: cond, dim: n });
            }
            seen[i] = true;
        }
        let trans: Vec<usize> = (0..n).filter(|&i| !seen[i]).collect();
        if cond.is_empty() || trans.is_empty() {
            return Err(ConfigError::Mask { layer: "AffineCoupling", mask: cond, dim: n });
        }
        let mut sizes = vec![cond.len()];
        sizes.extend_from_slice(hidden);
        sizes.push(2 * trans.len());
        let net = DenseNet::new(&sizes, activation, 0.0);
        Ok(Self { dim, cond, trans, net })
    }

    /// Set the initial scale of the last dense layer (0 = exact identity at initialisation).
    pub fn with_last_init_scale(mut self, scale: f64) -> Self {
        let sizes = self.net.sizes().to_vec();
        self.net = DenseNet::new(&sizes, self.net.activation(), scale);
        self
    }

    pub fn conditioning(&self) -> &[usize] {
        &self.cond
    }
    pub fn transformed(&self) -> &[usize] {
        &self.trans
    }
    pub fn net(&self) -> &DenseNet {
        &self.net
    }
    fn nb(&self) -> usize {
        self.trans.len()
    }
    fn net_params(&self) -> usize {
        self.net.n_params()
    }

    fn conditioner<D: Scalar>(&self, theta: &[f64], x: &Vector<D, N>) -> (Vec<D>, Vec<D>, Vec<D>, Vec<D>, Vec<D>) {
        let xa: Vec<D> = self.cond.iter().map(|&i| x[i]).collect();
        let acts = self.net.forward(&theta[..self.net_params()], &xa);
        let out = self.net.output(&acts);
        let nb = self.nb();
        let scale = &theta[self.net_params()..];
        let th: Vec<D> = out[..nb].iter().map(|r| r.tanh()).collect();
        let s: Vec<D> = th.iter().zip(scale).map(|(&t, &c)| t * c).collect();
        let es: Vec<D> = s.iter().map(|v| v.exp()).collect();
        let t = out[nb..].to_vec();
        (acts, s, es, th, t)
    }

    /// The conditioner of a batch (columns of `x`, all coordinates): the net's activations and
    /// $\tanh s$, $e^{c \tanh s}$ (`nb x B` each); $t$ is the lower half of the net output.
    pub(crate) fn conditioner_batch(&self, theta: &[f64], x: &nalgebra::DMatrix<f64>) -> (Vec<nalgebra::DMatrix<f64>>, nalgebra::DMatrix<f64>, nalgebra::DMatrix<f64>) {
        let (nn, nb, bsz) = (self.net_params(), self.nb(), x.ncols());
        let c = &theta[nn..nn + nb];
        let acts = self.net.forward_batch(&theta[..nn], &x.select_rows(self.cond.iter()));
        let out = acts.last().expect("output layer");
        let mut th = out.rows(0, nb).into_owned();
        crate::activation::tanh_in_place(th.as_mut_slice());
        let es = nalgebra::DMatrix::from_fn(nb, bsz, |k, j| (c[k] * th[(k, j)]).exp());
        (acts, th, es)
    }

    /// Shared reverse pass. `sbar_add` is added to $\bar s$ (used for the log-det cotangent and for
    /// the momentum map). Returns $\bar x$.
    fn backprop<D: Scalar>(&self, theta: &[f64], c: &CouplingCache<D, N>, ybar: &Vector<D, N>, sbar_add: &[D], g: Option<&mut [D]>) -> Vector<D, N> {
        let nb = self.nb();
        let nn = self.net_params();
        let scale = &theta[nn..];
        let mut xbar = ybar.clone();
        let mut outbar = vec![D::zero(); 2 * nb];
        let mut cbar = vec![D::zero(); nb];
        for (k, &i) in self.trans.iter().enumerate() {
            let yb = ybar[i];
            xbar[i] = yb * c.es[k];
            let sbar = yb * c.x[i] * c.es[k] + sbar_add[k];
            cbar[k] = sbar * c.th[k];
            outbar[k] = sbar * (D::one() - c.th[k] * c.th[k]) * scale[k];
            outbar[nb + k] = yb;
        }
        let xabar = match g {
            Some(g) => {
                for (gk, cb) in g[nn..nn + nb].iter_mut().zip(&cbar) {
                    *gk += *cb;
                }
                self.net.backprop(&theta[..nn], &c.acts, &outbar, Some(&mut g[..nn]))
            }
            None => self.net.backprop(&theta[..nn], &c.acts, &outbar, None),
        };
        for (k, &i) in self.cond.iter().enumerate() {
            xbar[i] += xabar[k];
        }
        xbar
    }

    /// $C^T P_b$ restricted to the conditioning coordinates, as a full vector (zero on $b$).
    fn transpose_coupling<D: Scalar>(&self, theta: &[f64], c: &CouplingCache<D, N>, pb: &[D]) -> Vector<D, N> {
        let mut ybar = Vector::<D, N>::from_element(self.dim, D::zero());
        for (k, &i) in self.trans.iter().enumerate() {
            ybar[i] = pb[k];
        }
        let zero = vec![D::zero(); self.nb()];
        let mut h = self.backprop(theta, c, &ybar, &zero, None);
        for &i in &self.trans {
            h[i] = D::zero();
        }
        h
    }
}

impl<N: Size> Parametrised for AffineCoupling<N> {
    fn n_params(&self) -> usize {
        self.net_params() + self.nb()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        let nn = self.net_params();
        self.net.init_params(rng, &mut theta[..nn]);
        theta[nn..].fill(1.0);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        let nn = self.net_params();
        let mut g = crate::params::nest_groups(self.net.param_groups(), "net", 0);
        g.push(ParamGroup::new("scale", nn..nn + self.nb()));
        g
    }
}

impl<N: Size> Bijector<N> for AffineCoupling<N> {
    type Cache<D: Scalar> = CouplingCache<D, N>;
    fn dim(&self) -> N {
        self.dim
    }

    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, N>) -> (Vector<D, N>, D, Self::Cache<D>) {
        let (acts, s, es, th, t) = self.conditioner(theta, x);
        let mut y = x.clone();
        let mut ld = D::zero();
        for (k, &i) in self.trans.iter().enumerate() {
            y[i] = x[i] * es[k] + t[k];
            ld += s[k];
        }
        (y, ld, CouplingCache { x: x.clone(), acts, es, th })
    }

    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, N>) -> (Vector<D, N>, D) {
        let (_, s, es, _, t) = self.conditioner(theta, y);
        let mut x = y.clone();
        let mut ld = D::zero();
        for (k, &i) in self.trans.iter().enumerate() {
            x[i] = (y[i] - t[k]) / es[k];
            ld -= s[k];
        }
        (x, ld)
    }

    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &Vector<D, N>, ldbar: D, g: &mut [D]) -> Vector<D, N> {
        let add = vec![ldbar; self.nb()];
        self.backprop(theta, cache, ybar, &add, Some(g))
    }
    /// $y_b = x_b e^{c \tanh s(x_a)} + t(x_a)$ on jets: the conditioner as GEMMs, then the
    /// pointwise tanh, scale, exp and product.
    fn forward_jets(&self, theta: &[f64], x: &crate::jet_batch::JetBatch) -> Option<(crate::jet_batch::JetBatch, crate::jet_batch::JetBatch)> {
        let (nn, nb) = (self.net_params(), self.nb());
        let out = self.net.forward_jets(&theta[..nn], &x.select_rows(&self.cond));
        let mut s = out.row_range(0, nb);
        s.map_activation(crate::activation::Activation::Tanh);
        s.scale_rows(&theta[nn..nn + nb]);
        let mut es = s.clone();
        es.map(|v| {
            let e = v.exp();
            (e, e, e)
        });
        let mut yb = x.select_rows(&self.trans).product(&es);
        yb.add_assign(&out.row_range(nb, nb));
        let mut y = x.clone();
        y.set_rows(&self.trans, &yb);
        Some((y, s.sum_rows()))
    }
    fn forward_tape(&self, theta: &[f64], x: &nalgebra::DMatrix<f64>) -> Option<(nalgebra::DMatrix<f64>, Vec<f64>, crate::layer::BatchTape)> {
        let (nn, nb, bsz) = (self.net_params(), self.nb(), x.ncols());
        let c = &theta[nn..nn + nb];
        let (acts, th, es) = self.conditioner_batch(theta, x);
        let out = acts.last().expect("output layer");
        let mut y = x.clone();
        let mut ld = vec![0.0; bsz];
        for (k, &i) in self.trans.iter().enumerate() {
            for j in 0..bsz {
                y[(i, j)] = x[(i, j)] * es[(k, j)] + out[(nb + k, j)];
                ld[j] += c[k] * th[(k, j)];
            }
        }
        Some((y, ld, crate::layer::BatchTape::new((x.clone(), acts, th, es))))
    }
    fn inverse_batch(&self, theta: &[f64], y: &nalgebra::DMatrix<f64>) -> Option<(nalgebra::DMatrix<f64>, Vec<f64>)> {
        let (nn, nb, bsz) = (self.net_params(), self.nb(), y.ncols());
        let c = &theta[nn..nn + nb];
        let (acts, th, es) = self.conditioner_batch(theta, y);
        let out = acts.last().expect("output layer");
        let mut x = y.clone();
        let mut ld = vec![0.0; bsz];
        for (k, &i) in self.trans.iter().enumerate() {
            for j in 0..bsz {
                x[(i, j)] = (y[(i, j)] - out[(nb + k, j)]) / es[(k, j)];
                ld[j] -= c[k] * th[(k, j)];
            }
        }
        Some((x, ld))
    }
    fn vjp_tape(&self, theta: &[f64], tape: &crate::layer::BatchTape, ybar: &nalgebra::DMatrix<f64>, ldbar: &[f64], g: &mut [f64]) -> nalgebra::DMatrix<f64> {
        type Tape = (nalgebra::DMatrix<f64>, Vec<nalgebra::DMatrix<f64>>, nalgebra::DMatrix<f64>, nalgebra::DMatrix<f64>);
        let (x, acts, th, es): &Tape = tape.get();
        let (nn, nb, bsz) = (self.net_params(), self.nb(), x.ncols());
        let c = &theta[nn..nn + nb];
        let mut xbar = ybar.clone();
        let mut outbar = nalgebra::DMatrix::zeros(2 * nb, bsz);
        let (gnet, gc) = g.split_at_mut(nn);
        for (k, &i) in self.trans.iter().enumerate() {
            for j in 0..bsz {
                let yb = ybar[(i, j)];
                xbar[(i, j)] = yb * es[(k, j)];
                let sbar = yb * x[(i, j)] * es[(k, j)] + ldbar[j];
                let t = th[(k, j)];
                gc[k] += sbar * t;
                outbar[(k, j)] = sbar * (1.0 - t * t) * c[k];
                outbar[(nb + k, j)] = yb;
            }
        }
        let xabar = self.net.backprop_batch(&theta[..nn], acts, &outbar, gnet);
        for (k, &i) in self.cond.iter().enumerate() {
            for j in 0..bsz {
                xbar[(i, j)] += xabar[(k, j)];
            }
        }
        xbar
    }
}

/// Cache of the coupling's cotangent lift.
#[derive(Clone, Debug)]
pub struct CouplingLiftCache<D: Scalar, N: Size> {
    fwd: CouplingCache<D, N>,
    pb: Vec<D>,
}

impl<N: Size> CotangentLift<N> for AffineCoupling<N> {
    type LiftCache<D: Scalar> = CouplingLiftCache<D, N>;

    fn lift_forward<D: Scalar>(&self, theta: &[f64], x: &PhasePoint<D, N>) -> (PhasePoint<D, N>, Self::LiftCache<D>) {
        let (y, _, fwd) = Bijector::forward(self, theta, &x.q);
        let pb: Vec<D> = self.trans.iter().enumerate().map(|(k, &i)| x.p[i] / fwd.es[k]).collect();
        let h = self.transpose_coupling(theta, &fwd, &pb);
        let mut pnew = &x.p - &h;
        for (k, &i) in self.trans.iter().enumerate() {
            pnew[i] = pb[k];
        }
        (PhasePoint::new(y, pnew), CouplingLiftCache { fwd, pb })
    }

    fn lift_inverse<D: Scalar>(&self, theta: &[f64], y: &PhasePoint<D, N>) -> PhasePoint<D, N> {
        let (q, _) = Bijector::inverse(self, theta, &y.q);
        let (_, _, fwd) = Bijector::forward(self, theta, &q);
        let zero = vec![D::zero(); self.nb()];
        let p = self.backprop(theta, &fwd, &y.p, &zero, None);
        PhasePoint::new(q, p)
    }

    fn lift_vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::LiftCache<D>, ybar: &PhasePoint<D, N>, g: &mut [D]) -> PhasePoint<D, N> {
        let c = &cache.fwd;
        // Term -Pbar_a . (C^T P_b)(x, theta): forward-over-reverse with direction v = (-Pbar_a, 0).
        let mut xe = c.x.map(Dual::from_re);
        for &i in &self.cond {
            xe[i].eps = -ybar.p[i];
        }
        let (ye, _, ce) = Bijector::forward(self, theta, &xe);
        let mut ybar_e = Vector::<Dual<D>, N>::from_element(self.dim, Dual::from_re(D::zero()));
        for (k, &i) in self.trans.iter().enumerate() {
            ybar_e[i] = Dual::from_re(cache.pb[k]);
        }
        let mut ge = vec![Dual::from_re(D::zero()); self.n_params()];
        let zero_e = vec![Dual::from_re(D::zero()); self.nb()];
        let xbar_e = self.backprop(theta, &ce, &ybar_e, &zero_e, Some(&mut ge));
        for (gi, ei) in g.iter_mut().zip(&ge) {
            *gi += ei.eps;
        }
        // P_b = e^{-s} p_b with the total cotangent of P_b.
        let mut pbar = ybar.p.clone();
        let mut sbar_add = vec![D::zero(); self.nb()];
        for (k, &i) in self.trans.iter().enumerate() {
            let pb_bar = ybar.p[i] + ye[i].eps;
            pbar[i] = pb_bar / c.es[k];
            sbar_add[k] = -cache.pb[k] * pb_bar;
        }
        let mut qbar = self.backprop(theta, c, &ybar.q, &sbar_add, Some(g));
        for i in 0..self.dim.value() {
            qbar[i] += xbar_e[i].eps;
        }
        PhasePoint::new(qbar, pbar)
    }
}

/// How the coupling masks of a RealNVP stack are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskScheme {
    /// First half conditions the second, then the roles swap, and so on.
    AlternatingHalves,
    /// Even indices condition the odd ones, then the roles swap.
    EvenOdd,
    /// A fresh random permutation (from the construction RNG) split in halves for every coupling.
    RandomPermutation,
}

/// A stack of affine couplings.
pub type RealNvp<N> = Stack<AffineCoupling<N>>;

/// Build a RealNVP of `couplings` layers with the given hidden widths. Masks are stored in the model.
pub fn real_nvp<N: Size>(dim: N, couplings: usize, hidden: &[usize], activation: Activation, masks: MaskScheme, rng: &mut dyn rand::Rng) -> Result<RealNvp<N>, ConfigError> {
    if couplings == 0 {
        return Err(ConfigError::Value { what: "couplings", value: "0".into(), allowed: "at least 1" });
    }
    let n = dim.value();
    let half = n / 2;
    let mut layers = Vec::with_capacity(couplings);
    for l in 0..couplings {
        let cond: Vec<usize> = match masks {
            MaskScheme::AlternatingHalves => {
                if l % 2 == 0 { (0..half).collect() } else { (half..n).collect() }
            }
            MaskScheme::EvenOdd => (0..n).filter(|i| i % 2 == l % 2).collect(),
            MaskScheme::RandomPermutation => {
                let mut perm: Vec<usize> = (0..n).collect();
                perm.shuffle(rng);
                perm.truncate(half.max(1));
                perm.sort_unstable();
                perm
            }
        };
        layers.push(AffineCoupling::new(dim, cond, hidden, activation)?);
    }
    Ok(Stack::new(layers))
}
