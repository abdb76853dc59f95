//! Parameters live outside the layers, as one flat `Vec<f64>` with named, sliceable groups.

use std::ops::Range;

/// A named contiguous slice of the flat parameter vector (for optimiser parameter groups,
/// checkpoints and model summaries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamGroup {
    pub name: String,
    pub range: Range<usize>,
}

impl ParamGroup {
    pub fn new(name: impl Into<String>, range: Range<usize>) -> Self {
        Self { name: name.into(), range }
    }
    pub fn len(&self) -> usize {
        self.range.len()
    }
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
}

/// Shift every group by `offset` and prefix its name (used when layers are chained).
pub fn nest_groups(groups: Vec<ParamGroup>, prefix: &str, offset: usize) -> Vec<ParamGroup> {
    groups
        .into_iter()
        .map(|g| ParamGroup {
            name: if g.name.is_empty() {
                prefix.to_string()
            } else if prefix.is_empty() {
                g.name
            } else {
                format!("{prefix}.{}", g.name)
            },
            range: g.range.start + offset..g.range.end + offset,
        })
        .collect()
}

/// Common interface of everything that owns a slice of the parameter vector.
pub trait Parametrised: Send + Sync {
    /// Number of f64 parameters the object reads from its slice of theta.
    fn n_params(&self) -> usize;
    /// Seeded initialisation of the object's parameters.
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]);
    /// Named groups, relative to the object's own slice. Default: one unnamed group.
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("", 0..self.n_params())]
    }
    /// Allocate and initialise a parameter vector.
    fn new_params(&self, rng: &mut dyn rand::Rng) -> Vec<f64> {
        let mut theta = vec![0.0; self.n_params()];
        self.init_params(rng, &mut theta);
        theta
    }
}
