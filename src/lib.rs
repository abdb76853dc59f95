//! # ncT — neural canonical transformations
//!
//! Learnable, structure-preserving changes of variables for physics. This facade re-exports the
//! core ([`nct_core`]: scalar traits, layers with hand-written VJPs, gradient checks, batch engine,
//! optimisers), the models ([`models`]) and the procedural macros.

pub use nct_core::*;
pub use nct_models as models;
pub use nct_macros::{flow, hamiltonian, layer};

