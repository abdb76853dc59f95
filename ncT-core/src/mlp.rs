//! [`Mlp`]: a [`DenseNet`] with input and output dimensions of any [`Size`], as a [`Layer`].

use crate::activation::Activation;
use crate::dense::DenseNet;
use crate::layer::Layer;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;
use crate::dim::{Size, Vector};

/// Multilayer perceptron $\mathbb R^I \to \mathbb R^O$.
#[derive(Clone, Debug)]
pub struct Mlp<I: Size, O: Size> {
    input: I,
    output: O,
    net: DenseNet,
}

impl<I: Size, O: Size> Mlp<I, O> {
    /// `last_init_scale` scales the initial last layer (0 gives an exactly zero output).
    pub fn new(input: I, output: O, hidden: &[usize], activation: Activation, last_init_scale: f64) -> Self {
        let mut sizes = vec![input.value()];
        sizes.extend_from_slice(hidden);
        sizes.push(output.value());
        Self { input, output, net: DenseNet::new(&sizes, activation, last_init_scale) }
    }
    pub fn net(&self) -> &DenseNet {
        &self.net
    }
}

impl<I: Size, O: Size> Parametrised for Mlp<I, O> {
    fn n_params(&self) -> usize {
        self.net.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        self.net.init_params(rng, theta)
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        self.net.param_groups()
    }
}

impl<I: Size, O: Size> Layer<I, O> for Mlp<I, O> {
    type Cache<D: Scalar> = Vec<D>;
    fn input_dim(&self) -> I {
        self.input
    }
    fn output_dim(&self) -> O {
        self.output
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, I>) -> (Vector<D, O>, Self::Cache<D>) {
        let acts = self.net.forward(theta, x.as_slice());
        let out = self.net.output(&acts);
        (Vector::from_fn(self.output, |i| out[i]), acts)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &Vector<D, O>, g: &mut [D]) -> Vector<D, I> {
        let xbar = self.net.backprop(theta, cache, ybar.as_slice(), Some(g));
        Vector::from_fn(self.input, |i| xbar[i])
    }
}
