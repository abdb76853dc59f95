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
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Softplus => "softplus",
            Activation::Identity => "identity",
        }
    }
}
