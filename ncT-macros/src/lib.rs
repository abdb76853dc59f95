//! Procedural macros of ncT: declare Hamiltonians, flows and custom layers as short Rust
//! declarations that the compiler checks. Use them through the `nct` facade (`nct::hamiltonian!`,
//! `nct::flow!`, `#[nct::layer]`); generated code refers only to `::nct::...` paths.
//!
//! Every macro follows parse -> IR -> validate -> expand: all errors of one invocation are collected
//! with spans, and fallback items are still emitted so that one mistake gives one message.

mod body;
mod flow;
mod hamiltonian;
mod layer;

use proc_macro::TokenStream;

/// Declare a Hamiltonian, written as if for `f64`; the macro makes it generic over every num-dual
/// scalar, so forces, Hessians and Hamilton's equations come for free.
///
/// ```
/// use nct::{Const, Dyn, Hamiltonian, Separable, Vector};
///
/// nct::hamiltonian! {
///     /// Fermi-Pasta-Ulam-Tsingou chain with fixed ends.
///     pub struct Fput<const N: usize> { kappa: f64 = 1.0, alpha: f64 = 0.25 }
///     kinetic(p) = sum(i in 0..N) 0.5 * p[i] * p[i];
///     potential(q) = {
///         let mut v = 0.5 * kappa * (q[0] * q[0] + q[N - 1] * q[N - 1]);
///         for i in 0..N - 1 {
///             let d = q[i + 1] - q[i];
///             v += 0.5 * kappa * d * d + alpha / 4.0 * d.powi(4);
///         }
///         v
///     };
/// }
///
/// let h = Fput::<4>::new().with_alpha(0.5);
/// let q = Vector::<f64, Const<4>>::from([0.1, -0.2, 0.3, 0.0]);
/// let f = h.forces(&q, &Vector::zeros(Const));       // -dV/dq by forward mode
/// let d = q[1] - q[0];                               // F_0 = -q_0 + d + alpha d^3
/// assert!((f[0] - (-q[0] + d + 0.5 * d.powi(3))).abs() < 1e-12);
///
/// // The number of degrees of freedom can also be a runtime value: a `usize` parameter named by
/// // `dof = ...;` gives a model of dimension `Dyn`.
/// nct::hamiltonian! {
///     /// Harmonic chain of `n` sites with fixed ends.
///     pub struct Chain { n: usize = 8, kappa: f64 = 1.0 }
///     dof = n;
///     potential(q) = 0.5 * kappa * (q[0] * q[0] + q[n - 1] * q[n - 1] + sum(i in 0..n - 1) (q[i + 1] - q[i]).powi(2));
/// }
/// let c = Chain::new().with_n(12);
/// assert_eq!(Separable::dim(&c), Dyn(12));
/// let q = Vector::from_fn(Dyn(12), |i| 0.1 * i as f64);
/// assert!((c.potential_gradient(&q).1[11] - (2.0 * 1.1 - 1.0)).abs() < 1e-12);
/// ```
///
/// Syntax: a struct with `name: f64 = default` parameters (each gets a `with_name` builder); the
/// degrees of freedom as `<const N: usize>`, `dof = 3;` (a literal), `dof = n;` (a `usize` parameter: runtime
/// dimension `Dyn`) or `particles = P; dim = d;` (each a literal or a `usize` parameter; with a
/// parameter the dimension is `Dyn(P * d)`); optional
/// `masses = [...];` (one per degree of freedom or per particle); then either `potential(q) = ...;`
/// with an optional `kinetic(p) = ...;` (default $\sum p_i^2/2m_i$), or a non-separable
/// `energy(q, p) = ...;`. Bodies are expressions or blocks; `sum(i in a..b) expr` sums `expr`
/// (to the end of the enclosing expression: wrap it in parentheses to stop earlier). Write float
/// literals (`2.0`, not `2`); integer literals stay integers for indices and `powi`.
///
/// Checked at compile time, with spans: duplicate or reserved parameter names, names that are not
/// parameters, arguments, locals or indices in scope, `particles x dim` against `dof`, the number of
/// masses, unknown or duplicate bodies.
#[proc_macro]
pub fn hamiltonian(input: TokenStream) -> TokenStream {
    match syn::parse::<hamiltonian::HamiltonianDef>(input) {
        Ok(def) => def.expand().into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Declare a named stack of layers on phase space (`Symplectic<n>`) or configuration space
/// (`Unitary<n>`, the quantum point transformation).
///
/// ```
/// use nct::*;
///
/// nct::flow! {
///     /// Point transformation followed by linear mixing, on 8 degrees of freedom.
///     pub struct ChainFlow: Symplectic<8> {
///         point: PointTransform<RealNvp> { couplings: 4, hidden: [64, 64] },
///         mix: LinearSymplectic,
///     }
/// }
///
/// let flow = ChainFlow::new(42);                      // masks drawn from seed 42
/// let theta = flow.new_params(&mut <NctRng as rand::SeedableRng>::seed_from_u64(1));
/// let x = PhasePoint::<f64, Const<8>>::zeros(Const);
/// let (y, _) = flow.forward(&theta, &x);             // starts at the identity
/// assert_eq!(y, x);
/// println!("{flow}");                                 // layers, shapes, parameter counts
/// ```
///
/// Built-in layers and their options: `RealNvp { couplings, hidden, activation: tanh|softplus,
/// masks: halves|even_odd|random }`, `AffineCoupling { hidden, activation, condition: [indices] }`,
/// `PointTransform<RealNvp | AffineCoupling> { ... }`, `LinearSymplectic { shears, init_scale }`,
/// `SymplecticScaling`, `HamiltonianFlow { hidden, activation, steps, time }`, `Kick { hidden }`,
/// `Drift { hidden }`, and `LinearBijector` (LU map, `Unitary` stacks only). Any other type is a custom layer, built by `Default` or `field: Type = expr`.
///
/// Generated: the struct (fields named as declared), `new(seed)`, `DIM`, `LAYERS`,
/// `Parametrised` (parameter groups named `field.…`), the flow trait (`SymplecticLayer<n>` or
/// `Bijector<n>`) chaining forward, inverse and VJP in order, `BatchedSymplectic<n>` when every layer
/// is built in, and `Display` (a table of layers and parameter counts).
///
/// Checked at compile time: explicit layer dimensions against the stack's, couplings on fewer than
/// two coordinates, non-symplectic layers in a `Symplectic` stack (with the hint to wrap them in
/// `PointTransform`), phase-space layers in a `Unitary` stack, dense layers anywhere, unknown
/// options and options of the wrong type, duplicate layer names, zero dimension. Binding a flow to
/// a latent distribution or Hamiltonian of another dimension is a type error.
#[proc_macro]
pub fn flow(input: TokenStream) -> TokenStream {
    match syn::parse::<flow::FlowDef>(input) {
        Ok(def) => def.expand().into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Turn an `impl` block with scalar-generic `forward` (and `inverse`) into a layer with an
/// automatic VJP by forward mode over the layer's parameters and inputs (exact; one dual pass per
/// parameter and input coordinate, fine for physics layers with few parameters).
///
/// ```
/// use nct::*;
///
/// /// A learnable rotation of the (q, p) plane.
/// #[derive(Clone, Debug, Default)]
/// pub struct PhaseRotation;
///
/// #[nct::layer(symplectic, dim = 1, params = 1, init = 0.1)]
/// impl PhaseRotation {
///     fn forward<D: Scalar>(&self, theta: &[D], x: &PhasePoint<D, Const<1>>) -> PhasePoint<D, Const<1>> {
///         let (s, c) = theta[0].sin_cos();
///         PhasePoint::new(x.q * c + x.p * s, x.p * c - x.q * s)
///     }
///     fn inverse<D: Scalar>(&self, theta: &[D], y: &PhasePoint<D, Const<1>>) -> PhasePoint<D, Const<1>> {
///         let (s, c) = theta[0].sin_cos();
///         PhasePoint::new(y.q * c - y.p * s, y.p * c + y.q * s)
///     }
/// }
///
/// // Validate the generated VJP against differences and forward mode:
/// let report = check_symplectic(&PhaseRotation, &[0.7], &GradCheckConfig::default());
/// assert!(report.passed(1e-6, 1e-12), "{report}");
/// ```
///
/// Kinds: `symplectic, dim = N` (forward and inverse on `PhasePoint<D, Const<N>>`, implements
/// `SymplecticLayer<Const<N>>`) and `map, input = I, output = O` (forward on `Vector<D, Const<I>>`,
/// implements `Layer<Const<I>, Const<O>>`). `params = P` is the number of parameters; `init = s` draws them as `s * N(0, 1)`
/// (default 0). A hand-written VJP can replace the generated one by implementing the trait by hand.
#[proc_macro_attribute]
pub fn layer(attr: TokenStream, item: TokenStream) -> TokenStream {
    layer::expand(attr.into(), item.into()).into()
}
