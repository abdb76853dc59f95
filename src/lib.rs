pub use nct_core::*;
