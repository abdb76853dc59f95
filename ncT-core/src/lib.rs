//! # nct-core
//!
//! The differentiation core of ncT (neural canonical transformations): the [`Scalar`] trait over
//! num-dual numbers, [`Hamiltonian`]s with derivatives by forward mode, layers with hand-written
//! vector-Jacobian products ([`Bijector`], [`SymplecticLayer`], [`Layer`]), a public
//! [`check_gradients`] utility, a deterministic [`BatchEngine`], optimisers, and the [`Backend`]
//! seam for batched (and, later, GPU) execution.
//!
//! Coordinate derivatives (forces, Jacobians, Laplacians) come from num-dual; parameter gradients
//! from the VJPs, which are generic over the scalar so that running them on dual inputs gives the
//! mixed second derivatives (forward-over-reverse).

pub mod activation;
pub mod backend;
pub mod batch;
pub mod batched;
pub mod chain;
pub mod derivative;
pub mod driver;
pub mod dynamics;
pub mod dim;
pub mod conjugacy;
pub mod coupling;
pub mod dense;
pub mod diagonal;
pub mod error;
pub mod fermion;
pub mod gemm;
pub mod gradcheck;
pub mod hamiltonian;
pub mod jet;
pub mod jet_batch;
pub mod latent;
pub mod layer;
pub mod linear;
pub mod lu;
pub mod mlp;
pub mod classical;
pub mod optim;
pub mod parallel;
pub mod params;
pub mod periodic;
pub mod point;
pub mod progress;
pub mod quantum;
pub mod run;
pub mod scalar;
pub mod shear;
pub mod sr;
pub mod stats;
pub mod train;

pub use activation::Activation;
pub use backend::{Backend, CpuBackend};
pub use batched::{BatchedLift, BatchedSymplectic, PhaseBatch};
pub use batch::{BatchEngine, BatchSum, NctRng, SeedStream};
pub use chain::{Chain, Stack};
pub use derivative::{ScalarField, block_width};
pub use dim::{Const, Dyn, Size, Vector};
pub use conjugacy::{ConjugacyError, ConjugacyFit, ConjugacyReport};
pub use coupling::{AffineCoupling, MaskScheme, RealNvp, real_nvp};
pub use dense::{DenseCotangents, DenseNet, DenseTangents};
pub use diagonal::{DiagonalAffine, IdentityFlow};
pub use error::ConfigError;
pub use gradcheck::{AsBijector, AsLayer, AsSymplectic, Checkable, GradCheckConfig, GradCheckReport, check_bijector, check_gradients, check_symplectic};
pub use hamiltonian::{Hamiltonian, Separable};
pub use jet::{Lap, LapJet};
pub use jet_batch::JetBatch;
pub use layer::{BatchTape, Bijector, CotangentLift, Layer, PhasePoint, SymplecticLayer};
pub use latent::{AnharmonicOscillators, Latent, LatentOscillators};
pub use classical::{ClassicalNct, FreeEnergy, VariationalSample, free_energy_from_samples, maxwell_boltzmann, mean_and_error, symplectic_inverse_vjp, symplectic_jvp};
pub use linear::{LinearSymplectic, SymplecticScaling};
pub use lu::LinearBijector;
pub use mlp::Mlp;
pub use optim::{Adam, Checkpointed, GroupRates, Optimizer, OptimizerState, Sgd};
pub use params::{ParamGroup, Parametrised};
pub use point::PointTransform;
pub use progress::{NoProgress, Progress};
pub use quantum::{LaplacianMethod, QuantumNct, StateEnergy, Weights};
pub use quantum::occupation::{AutoregressiveOccupation, CategoricalOccupation, OccupationModel, ProductOccupation, ThermalNct};
pub use scalar::Scalar;
pub use train::{Schedule, StepStats, TrainError, run_steps};
pub use shear::{GradientShear, HamiltonianFlow, ShearTarget};

/// Helpers for macro-generated code; not part of the public API.
#[doc(hidden)]
pub mod __private {
    /// One standard-normal draw (used by generated initialisers).
    pub fn standard_normal(rng: &mut dyn rand::Rng) -> f64 {
        use rand_distr::Distribution;
        rand_distr::StandardNormal.sample(rng)
    }
}

/// Re-exports for generated code and for users who need no direct dependency on these crates.
pub use nalgebra;
pub use num_dual;
pub use rand;
