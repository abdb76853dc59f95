//! # ncT — neural canonical transformations
//!
//! Learnable, structure-preserving changes of variables for physics. This facade re-exports the
//! core ([`nct_core`]: scalar traits, layers with hand-written VJPs, gradient checks, batch engine,
//! optimisers), the models ([`models`]) and the procedural macros.

pub use nct_core::*;
pub use nct_models as models;
pub use nct_macros::{flow, hamiltonian, layer};

/// Paths used by macro-generated code; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use nct_core;
    pub use nct_core::nalgebra;
    pub use nct_core::num_dual;

    /// One standard-normal draw (used by generated initialisers).
    pub fn standard_normal(rng: &mut dyn nct_core::rand::Rng) -> f64 {
        use rand_distr::Distribution;
        rand_distr::StandardNormal.sample(rng)
    }
}
