//! Fully connected networks with a hand-written vector-Jacobian product.
//!
//! A [`DenseNet`] with widths $n_0, \dots, n_L$ computes
//! $a_{l+1} = \sigma_l(W_l a_l + b_l)$ with $\sigma$ the hidden activation and the identity on the
//! last layer. Weights are stored column-major inside the flat parameter vector, so the forward pass
//! is a sequence of axpy updates $y \mathrel{+}= x_j W_{:,j}$ (contiguous, vectorisable) and the VJP
//! reads the same columns as dot products.
//!
//! The per-sample path is generic over the scalar (values, forward-mode tangents, and the
//! forward-over-reverse mixed terms); the batched path ([`DenseNet::forward_batch`],
//! [`DenseNet::backprop_batch`]) is f64 matrix-matrix work for training throughput.

use crate::activation::Activation;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;
use crate::gemm::{MatRef, gemm, gemm_into, matmul};
use nalgebra::DMatrix;
use rand::RngExt;

/// A multilayer perceptron with runtime widths (the input and output widths of the layers that
/// use it are fixed by their const-generic dimensions).
#[derive(Clone, Debug)]
pub struct DenseNet {
    sizes: Vec<usize>,
    activation: Activation,
    last_init_scale: f64,
    w_off: Vec<usize>,
    b_off: Vec<usize>,
    a_off: Vec<usize>,
    n_params: usize,
}

impl DenseNet {
    /// `sizes = [n_in, hidden..., n_out]`; `last_init_scale` multiplies the initial weights and
    /// biases of the last layer (0 makes the net output exactly zero at initialisation).
    pub fn new(sizes: &[usize], activation: Activation, last_init_scale: f64) -> Self {
        assert!(sizes.len() >= 2, "a DenseNet needs at least input and output widths");
        let mut w_off = Vec::new();
        let mut b_off = Vec::new();
        let mut a_off = vec![0];
        let mut off = 0;
        for l in 0..sizes.len() - 1 {
            w_off.push(off);
            off += sizes[l] * sizes[l + 1];
            b_off.push(off);
            off += sizes[l + 1];
        }
        for &n in sizes {
            a_off.push(a_off.last().unwrap() + n);
        }
        Self { sizes: sizes.to_vec(), activation, last_init_scale, w_off, b_off, a_off, n_params: off }
    }

    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
    pub fn n_in(&self) -> usize {
        self.sizes[0]
    }
    pub fn n_out(&self) -> usize {
        *self.sizes.last().unwrap()
    }
    pub fn activation(&self) -> Activation {
        self.activation
    }
    fn n_layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Multiply-add count of one forward pass (FLOPs = 2 x this).
    pub fn macs(&self) -> usize {
        self.sizes.windows(2).map(|w| w[0] * w[1]).sum()
    }

    /// Forward pass. Returns all activations $a_0 \dots a_L$ concatenated (the cache of the VJP);
    /// the output is [`DenseNet::output`] of it.
    pub fn forward<D: Scalar>(&self, theta: &[f64], x: &[D]) -> Vec<D> {
        debug_assert_eq!(x.len(), self.n_in());
        debug_assert_eq!(theta.len(), self.n_params);
        let total = *self.a_off.last().unwrap();
        let mut acts = Vec::with_capacity(total);
        acts.extend_from_slice(x);
        for l in 0..self.n_layers() {
            let (nin, nout) = (self.sizes[l], self.sizes[l + 1]);
            let start = self.a_off[l];
            let b = &theta[self.b_off[l]..self.b_off[l] + nout];
            let base = acts.len();
            acts.extend(b.iter().map(|&bi| D::from(bi)));
            let (prev, y) = acts.split_at_mut(base);
            let input = &prev[start..start + nin];
            for (j, &xj) in input.iter().enumerate() {
                let col = &theta[self.w_off[l] + j * nout..self.w_off[l] + (j + 1) * nout];
                for (yi, &w) in y.iter_mut().zip(col) {
                    *yi += xj * w;
                }
            }
            if l + 1 < self.n_layers() {
                let act = self.activation;
                for yi in y.iter_mut() {
                    *yi = act.apply(*yi);
                }
            }
        }
        acts
    }

    /// The output slice of a forward cache.
    pub fn output<'a, D>(&self, acts: &'a [D]) -> &'a [D] {
        &acts[self.a_off[self.n_layers()]..]
    }

    /// Reverse pass: given $\bar y$, accumulates $\bar y \cdot \partial y / \partial\theta$ into
    /// `g` (if given) and returns $\bar x = (\partial y / \partial x)^T \bar y$.
    pub fn backprop<D: Scalar>(&self, theta: &[f64], acts: &[D], ybar: &[D], mut g: Option<&mut [D]>) -> Vec<D> {
        debug_assert_eq!(ybar.len(), self.n_out());
        let mut abar: Vec<D> = ybar.to_vec();
        for l in (0..self.n_layers()).rev() {
            let (nin, nout) = (self.sizes[l], self.sizes[l + 1]);
            let out = &acts[self.a_off[l + 1]..self.a_off[l + 1] + nout];
            let input = &acts[self.a_off[l]..self.a_off[l] + nin];
            if l + 1 < self.n_layers() {
                let act = self.activation;
                for (zb, &a) in abar.iter_mut().zip(out) {
                    *zb *= act.derivative_from_output(a);
                }
            }
            let zbar = abar;
            if let Some(g) = g.as_deref_mut() {
                for (gb, &z) in g[self.b_off[l]..self.b_off[l] + nout].iter_mut().zip(&zbar) {
                    *gb += z;
                }
                for (j, &xj) in input.iter().enumerate() {
                    let gcol = &mut g[self.w_off[l] + j * nout..self.w_off[l] + (j + 1) * nout];
                    for (gw, &z) in gcol.iter_mut().zip(&zbar) {
                        *gw += xj * z;
                    }
                }
            }
            let mut xbar = vec![D::zero(); nin];
            for (j, xb) in xbar.iter_mut().enumerate() {
                let col = &theta[self.w_off[l] + j * nout..self.w_off[l] + (j + 1) * nout];
                let mut s = D::zero();
                for (&z, &w) in zbar.iter().zip(col) {
                    s += z * w;
                }
                *xb = s;
            }
            abar = xbar;
        }
        abar
    }

    /// $W_l$ as a GEMM operand (its transpose is [`MatRef::t`], no copy).
    fn weight<'a>(&self, theta: &'a [f64], l: usize) -> MatRef<'a> {
        let (nin, nout) = (self.sizes[l], self.sizes[l + 1]);
        MatRef::col_major(&theta[self.w_off[l]..self.w_off[l] + nin * nout], nout, nin)
    }

    /// $g_{W_l} \mathrel{+}= \bar z\, a^T$ and $g_{b_l} \mathrel{+}= \sum_{\rm samples} \bar z$.
    fn add_layer_gradient(&self, l: usize, zbar: &DMatrix<f64>, a: &DMatrix<f64>, g: &mut [f64]) {
        let nout = self.sizes[l + 1];
        add_row_sums(zbar, &mut g[self.b_off[l]..self.b_off[l] + nout]);
        self.add_weight_gradient(l, zbar, a, g);
    }

    /// $g_{W_l} \mathrel{+}= \bar z\, a^T$ (a GEMM into the weight block of `g`).
    fn add_weight_gradient(&self, l: usize, zbar: &DMatrix<f64>, a: &DMatrix<f64>, g: &mut [f64]) {
        let (nin, nout) = (self.sizes[l], self.sizes[l + 1]);
        gemm(&mut g[self.w_off[l]..self.w_off[l] + nin * nout], nout, 1.0, zbar.into(), MatRef::from(a).t(), 1.0);
    }

    /// $W_l^T \bar z$ (`n_in x B`).
    fn input_cotangent(&self, theta: &[f64], l: usize, zbar: &DMatrix<f64>) -> DMatrix<f64> {
        matmul(self.weight(theta, l).t(), zbar.into())
    }

    /// Batched forward pass on a matrix whose columns are samples (`n_in x B`); returns the
    /// activations of every layer (the last is the output, `n_out x B`).
    pub fn forward_batch(&self, theta: &[f64], x: &DMatrix<f64>) -> Vec<DMatrix<f64>> {
        let batch = x.ncols();
        let mut acts = Vec::with_capacity(self.sizes.len());
        acts.push(x.clone());
        for l in 0..self.n_layers() {
            let nout = self.sizes[l + 1];
            let b = &theta[self.b_off[l]..self.b_off[l] + nout];
            let mut z = DMatrix::<f64>::from_fn(nout, batch, |i, _| b[i]);
            gemm_into(&mut z, 1.0, self.weight(theta, l), (&acts[l]).into(), 1.0);
            if l + 1 < self.n_layers() {
                self.activation.apply_in_place(z.as_mut_slice());
            }
            acts.push(z);
        }
        acts
    }

    /// The forward-Laplacian jets of a chunk of walkers through the net: every layer is three
    /// GEMMs (values, gradients, Laplacians) and the activation one fused chain-rule pass
    /// ([`crate::jet_batch`]). Returns the output jets (`n_out` rows).
    pub fn forward_jets(&self, theta: &[f64], x: &crate::jet_batch::JetBatch) -> crate::jet_batch::JetBatch {
        let mut a = x.clone();
        for l in 0..self.n_layers() {
            let nout = self.sizes[l + 1];
            a = a.affine(self.weight(theta, l), Some(&theta[self.b_off[l]..self.b_off[l] + nout]));
            if l + 1 < self.n_layers() {
                a.map_activation(self.activation);
            }
        }
        a
    }

    /// Batched reverse pass: accumulates the parameter gradient summed over the batch into `g`
    /// and returns $\bar X$ (`n_in x B`).
    pub fn backprop_batch(&self, theta: &[f64], acts: &[DMatrix<f64>], ybar: &DMatrix<f64>, g: &mut [f64]) -> DMatrix<f64> {
        let mut abar = ybar.clone();
        for l in (0..self.n_layers()).rev() {
            if l + 1 < self.n_layers() {
                scale_by_derivative(self.activation, &mut abar, &acts[l + 1]);
            }
            self.add_layer_gradient(l, &abar, &acts[l], g);
            abar = self.input_cotangent(theta, l, &abar);
        }
        abar
    }
}

impl Parametrised for DenseNet {
    fn n_params(&self) -> usize {
        self.n_params
    }
    /// Uniform $(-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}})$ weights and biases; the last layer is scaled
    /// by `last_init_scale`.
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        for l in 0..self.n_layers() {
            let (nin, nout) = (self.sizes[l], self.sizes[l + 1]);
            let bound = 1.0 / (nin.max(1) as f64).sqrt();
            let scale = if l + 1 == self.n_layers() { self.last_init_scale } else { 1.0 };
            for v in theta[self.w_off[l]..self.b_off[l] + nout].iter_mut() {
                *v = scale * bound * (2.0 * rng.random::<f64>() - 1.0);
            }
        }
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        (0..self.n_layers())
            .flat_map(|l| {
                let nout = self.sizes[l + 1];
                [
                    ParamGroup::new(format!("W{l}"), self.w_off[l]..self.b_off[l]),
                    ParamGroup::new(format!("b{l}"), self.b_off[l]..self.b_off[l] + nout),
                ]
            })
            .collect()
    }
}

/// `u *= \sigma'` elementwise, with $\sigma'$ from the layer's output activations `a`.
fn scale_by_derivative(act: Activation, u: &mut DMatrix<f64>, a: &DMatrix<f64>) {
    for (v, &a) in u.as_mut_slice().iter_mut().zip(a.as_slice()) {
        *v *= act.derivative_from_output(a);
    }
}

/// `sums[i] += \sum_j u_{ij}`, one contiguous column at a time (each row summed in column order).
fn add_row_sums(u: &DMatrix<f64>, sums: &mut [f64]) {
    let mut acc = vec![0.0; u.nrows()];
    for col in u.as_slice().chunks_exact(u.nrows().max(1)) {
        for (s, &v) in acc.iter_mut().zip(col) {
            *s += v;
        }
    }
    for (s, a) in sums.iter_mut().zip(acc) {
        *s += a;
    }
}

/// Primal and tangent quantities of a batched forward-over-reverse pass through a [`DenseNet`].
#[derive(Clone, Debug)]
pub struct DenseTangents {
    /// Tangents of the activations $\dot a_0 \dots \dot a_L$.
    pub adots: Vec<DMatrix<f64>>,
    /// Tangents of the pre-activations $\dot z_l = W_l \dot a_l$ (one per layer).
    pub zdots: Vec<DMatrix<f64>>,
}

/// Cotangents kept from a batched reverse pass.
#[derive(Clone, Debug)]
pub struct DenseCotangents {
    /// Cotangent of each layer's output activation $\bar a_{l+1}$ (one per layer).
    pub abars: Vec<DMatrix<f64>>,
    /// Cotangent of each layer's pre-activation $\bar z_l = \sigma'(z_l) \bar a_{l+1}$.
    pub zbars: Vec<DMatrix<f64>>,
}

/// Batched forward-mode and forward-over-reverse passes (f64 matrices, columns are samples).
impl DenseNet {
    /// Tangents of every layer for the input tangent `xdot` (`n_in x B`).
    pub fn jvp_batch(&self, theta: &[f64], acts: &[DMatrix<f64>], xdot: &DMatrix<f64>) -> DenseTangents {
        let mut adots = Vec::with_capacity(self.sizes.len());
        let mut zdots = Vec::with_capacity(self.n_layers());
        adots.push(xdot.clone());
        for l in 0..self.n_layers() {
            let zd = matmul(self.weight(theta, l), (&adots[l]).into());
            let mut ad = zd.clone();
            if l + 1 < self.n_layers() {
                scale_by_derivative(self.activation, &mut ad, &acts[l + 1]);
            }
            zdots.push(zd);
            adots.push(ad);
        }
        DenseTangents { adots, zdots }
    }

    /// Reverse pass without parameter gradient that keeps every layer's cotangents (needed by
    /// [`DenseNet::tangent_backprop_batch`]). Returns $\bar x$.
    pub fn backprop_keep_batch(&self, theta: &[f64], acts: &[DMatrix<f64>], ybar: &DMatrix<f64>) -> (DMatrix<f64>, DenseCotangents) {
        let n = self.n_layers();
        let mut abars = vec![DMatrix::<f64>::zeros(0, 0); n];
        let mut zbars = vec![DMatrix::<f64>::zeros(0, 0); n];
        let mut abar = ybar.clone();
        for l in (0..n).rev() {
            let mut zbar = abar.clone();
            if l + 1 < n {
                scale_by_derivative(self.activation, &mut zbar, &acts[l + 1]);
            }
            let xbar = self.input_cotangent(theta, l, &zbar);
            abars[l] = abar;
            zbars[l] = zbar;
            abar = xbar;
        }
        (abar, DenseCotangents { abars, zbars })
    }

    /// Tangent of the reverse pass (forward-over-reverse): with the primal activations, their
    /// tangents, the primal cotangents and the tangent `ybar_dot` of the output cotangent,
    /// accumulates the tangent of the parameter gradient,
    /// $\dot g_W = \dot{\bar z} a^T + \bar z \dot a^T$, into `g` and returns the tangent of the
    /// input cotangent. Per layer $\dot{\bar z} = \sigma'(z)\dot{\bar a} + \sigma''(z)\dot z\,\bar a$.
    pub fn tangent_backprop_batch(&self, theta: &[f64], acts: &[DMatrix<f64>], tan: &DenseTangents, cot: &DenseCotangents, ybar_dot: &DMatrix<f64>, g: &mut [f64]) -> DMatrix<f64> {
        let n = self.n_layers();
        let mut abar_dot = ybar_dot.clone();
        for l in (0..n).rev() {
            let mut zbar_dot = abar_dot;
            if l + 1 < n {
                let act = self.activation;
                let (a, zd, ab) = (acts[l + 1].as_slice(), tan.zdots[l].as_slice(), cot.abars[l].as_slice());
                for (((zb, &a), &zd), &ab) in zbar_dot.as_mut_slice().iter_mut().zip(a).zip(zd).zip(ab) {
                    *zb = act.derivative_from_output(a) * *zb + act.second_derivative_from_output(a) * zd * ab;
                }
            }
            self.add_layer_gradient(l, &zbar_dot, &acts[l], g);
            self.add_weight_gradient(l, &cot.zbars[l], &tan.adots[l], g);
            abar_dot = self.input_cotangent(theta, l, &zbar_dot);
        }
        abar_dot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_dual::Dual64;
    use rand::SeedableRng;

    #[test]
    fn batched_path_equals_per_sample_path() {
        let net = DenseNet::new(&[5, 16, 7, 3], Activation::Tanh, 1.0);
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let theta = net.new_params(&mut rng);
        let b = 9;
        let x = DMatrix::<f64>::from_fn(5, b, |i, j| ((i * 7 + j * 3) as f64 * 0.37).sin());
        let ybar = DMatrix::<f64>::from_fn(3, b, |i, j| ((i + 2 * j) as f64 * 0.71).cos());
        let acts = net.forward_batch(&theta, &x);
        let mut g_batch = vec![0.0; net.n_params()];
        let xbar = net.backprop_batch(&theta, &acts, &ybar, &mut g_batch);
        let mut g_loop = vec![0.0; net.n_params()];
        for s in 0..b {
            let xs: Vec<f64> = x.column(s).iter().copied().collect();
            let a = net.forward(&theta, &xs);
            let out = net.output(&a);
            for i in 0..3 {
                assert!((out[i] - acts[3][(i, s)]).abs() < 1e-13);
            }
            let yb: Vec<f64> = ybar.column(s).iter().copied().collect();
            let xb = net.backprop(&theta, &a, &yb, Some(&mut g_loop));
            for i in 0..5 {
                assert!((xb[i] - xbar[(i, s)]).abs() < 1e-13);
            }
        }
        for (a, b) in g_batch.iter().zip(&g_loop) {
            assert!((a - b).abs() < 1e-12 * (1.0 + b.abs()));
        }
    }

    #[test]
    fn input_cotangent_matches_forward_mode() {
        let net = DenseNet::new(&[3, 8, 2], Activation::Softplus, 1.0);
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        let theta = net.new_params(&mut rng);
        let x = [0.3, -1.2, 0.8];
        let ybar = [0.7, -0.4];
        let a = net.forward(&theta, &x);
        let xbar = net.backprop(&theta, &a, &ybar, None);
        for k in 0..3 {
            let xd: Vec<Dual64> = (0..3).map(|i| Dual64::new(x[i], if i == k { 1.0 } else { 0.0 })).collect();
            let ad = net.forward(&theta, &xd);
            let out = net.output(&ad);
            let dl = out[0].eps * ybar[0] + out[1].eps * ybar[1];
            assert!((dl - xbar[k]).abs() < 1e-13, "{dl} vs {}", xbar[k]);
        }
    }
}
