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

/// Seeded initialisation of two parts whose parameters lie end to end in `theta`: `first`, then
/// `second`, from one generator in that order (composite models: chains, flow + occupations).
pub fn init_end_to_end(first: &dyn Parametrised, second: &dyn Parametrised, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
    let (a, b) = theta.split_at_mut(first.n_params());
    first.init_params(rng, a);
    second.init_params(rng, b);
}

/// The groups of two parts laid end to end, each nested under its prefix.
pub fn groups_end_to_end(first: &dyn Parametrised, first_prefix: &str, second: &dyn Parametrised, second_prefix: &str) -> Vec<ParamGroup> {
    let mut g = nest_groups(first.param_groups(), first_prefix, 0);
    g.extend(nest_groups(second.param_groups(), second_prefix, first.n_params()));
    g
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
