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

/// Declare a Hamiltonian. See the `nct` crate documentation for the syntax and an example.
#[proc_macro]
pub fn hamiltonian(input: TokenStream) -> TokenStream {
    match syn::parse::<hamiltonian::HamiltonianDef>(input) {
        Ok(def) => def.expand().into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Declare a named stack of layers on phase space (`Symplectic<n>`) or configuration space
/// (`Unitary<n>`). See the `nct` crate documentation.
#[proc_macro]
pub fn flow(input: TokenStream) -> TokenStream {
    match syn::parse::<flow::FlowDef>(input) {
        Ok(def) => def.expand().into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Turn an `impl` block with scalar-generic `forward` (and `inverse`) into a layer with an
/// automatic VJP by forward mode over the layer's parameters and inputs.
#[proc_macro_attribute]
pub fn layer(attr: TokenStream, item: TokenStream) -> TokenStream {
    layer::expand(attr.into(), item.into()).into()
}
