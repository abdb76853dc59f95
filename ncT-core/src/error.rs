//! Error types of the core crate.

use thiserror::Error;

/// Invalid layer or model configuration (raised at construction, never by a panic later).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ConfigError {
    #[error("{layer}: dimension {dim} is too small: {why}")]
    Dimension { layer: &'static str, dim: usize, why: &'static str },
    #[error("{layer}: mask {mask:?} is not a split of 0..{dim} into two non-empty parts")]
    Mask { layer: &'static str, mask: Vec<usize>, dim: usize },
    #[error("{what} = {value} is invalid: {allowed}")]
    Value { what: &'static str, value: String, allowed: &'static str },
}
