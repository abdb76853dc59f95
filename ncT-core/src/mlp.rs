//! [`Mlp`]: a [`DenseNet`] with const-generic input and output dimensions, as a [`Layer`].

use crate::activation::Activation;
use crate::dense::DenseNet;
use crate::layer::Layer;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;
use nalgebra::SVector;

/// Multilayer perceptron $\mathbb R^I \to \mathbb R^O$.
#[derive(Clone, Debug)]
pub struct Mlp<const I: usize, const O: usize> {
    net: DenseNet,
}

impl<const I: usize, const O: usize> Mlp<I, O> {
    /// `last_init_scale` scales the initial last layer (0 gives an exactly zero output).
    pub fn new(hidden: &[usize], activation: Activation, last_init_scale: f64) -> Self {
        let mut sizes = vec![I];
        sizes.extend_from_slice(hidden);
        sizes.push(O);
        Self { net: DenseNet::new(&sizes, activation, last_init_scale) }
    }
    pub fn net(&self) -> &DenseNet {
        &self.net
    }
}

impl<const I: usize, const O: usize> Parametrised for Mlp<I, O> {
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

impl<const I: usize, const O: usize> Layer<I, O> for Mlp<I, O> {
    type Cache<D: Scalar> = Vec<D>;
    fn forward<D: Scalar>(&self, theta: &[f64], x: &SVector<D, I>) -> (SVector<D, O>, Self::Cache<D>) {
        let acts = self.net.forward(theta, x.as_slice());
        (SVector::from_column_slice(self.net.output(&acts)), acts)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &SVector<D, O>, g: &mut [D]) -> SVector<D, I> {
        SVector::from_column_slice(&self.net.backprop(theta, cache, ybar.as_slice(), Some(g)))
    }
}
