//! Pointwise activation functions with derivatives expressed through their outputs.

use crate::scalar::Scalar;

/// Activation of the hidden layers of a [`DenseNet`](crate::dense::DenseNet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// $\tanh z$
    Tanh,
    /// $\ln(1 + e^z)$, computed stably.
    Softplus,
    /// $z$
    Identity,
}

impl Activation {
    #[inline]
    pub fn apply<D: Scalar>(self, z: D) -> D {
        match self {
            Activation::Tanh => z.tanh(),
            Activation::Softplus => {
                if z.re() > 0.0 {
                    z + (-z).exp().ln_1p()
                } else {
                    z.exp().ln_1p()
                }
            }
            Activation::Identity => z,
        }
    }
    /// $d a / d z$ written as a function of the output $a$:
    /// tanh: $1 - a^2$; softplus: $1 - e^{-a}$; identity: 1.
    #[inline]
    pub fn derivative_from_output<D: Scalar>(self, a: D) -> D {
        match self {
            Activation::Tanh => D::one() - a * a,
            Activation::Softplus => D::one() - (-a).exp(),
            Activation::Identity => D::one(),
        }
    }
    /// $d^2 a / d z^2$ as a function of the output $a$:
    /// tanh: $-2a(1-a^2)$; softplus: $(1-e^{-a})e^{-a}$; identity: 0.
    #[inline]
    pub fn second_derivative_from_output(self, a: f64) -> f64 {
        match self {
            Activation::Tanh => -2.0 * a * (1.0 - a * a),
            Activation::Softplus => {
                let e = (-a).exp();
                (1.0 - e) * e
            }
            Activation::Identity => 0.0,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Softplus => "softplus",
            Activation::Identity => "identity",
        }
    }
}
