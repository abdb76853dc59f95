//! `#[nct::layer(...)]` on an `impl` block: the user writes scalar-generic `forward` (and `inverse`
//! for a symplectic layer) with the parameters as scalars; the macro adds `Parametrised` and the
//! layer trait with an exact VJP by forward mode over the layer's own parameters and inputs (one
//! `Dual<D>` pass per parameter and input coordinate: fine for physics layers with few parameters).
//!
//! ```text
//! #[nct::layer(symplectic, dim = 1, params = 1)]        // SymplecticLayer<1>, 1 parameter
//! #[nct::layer(map, input = 3, output = 1, params = 4)] // Layer<3, 1>
//! optional: init = 0.1   (parameters start as init * N(0, 1); default 0)
//! ```

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ImplItem, ItemImpl, Lit, Meta, Token};

struct Args {
    kind: Option<(String, Span)>,
    dim: Option<usize>,
    input: Option<usize>,
    output: Option<usize>,
    params: Option<usize>,
    init: f64,
}

fn parse_args(attr: TokenStream, errors: &mut Vec<syn::Error>) -> Args {
    let mut a = Args { kind: None, dim: None, input: None, output: None, params: None, init: 0.0 };
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr) {
        Ok(m) => m,
        Err(e) => {
            errors.push(e);
            return a;
        }
    };
    for m in metas {
        match m {
            Meta::Path(p) => {
                let s = p.get_ident().map(|i| i.to_string()).unwrap_or_default();
                if s == "symplectic" || s == "map" {
                    a.kind = Some((s, p.get_ident().map(|i| i.span()).unwrap_or_else(Span::call_site)));
                } else {
                    errors.push(syn::Error::new_spanned(p, "expected the layer kind `symplectic` or `map`"));
                }
            }
            Meta::NameValue(nv) => {
                let key = nv.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
                let num = match &nv.value {
                    Expr::Lit(l) => match &l.lit {
                        Lit::Int(i) => i.base10_parse::<f64>().ok(),
                        Lit::Float(f) => f.base10_parse::<f64>().ok(),
                        _ => None,
                    },
                    _ => None,
                };
                let as_count = |v: Option<f64>| v.filter(|x| x.fract() == 0.0 && *x >= 0.0).map(|x| x as usize);
                match key.as_str() {
                    "dim" | "input" | "output" | "params" => {
                        let Some(n) = as_count(num) else {
                            errors.push(syn::Error::new_spanned(&nv.value, format!("`{key}` takes a non-negative integer literal")));
                            continue;
                        };
                        match key.as_str() {
                            "dim" => a.dim = Some(n),
                            "input" => a.input = Some(n),
                            "output" => a.output = Some(n),
                            _ => a.params = Some(n),
                        }
                    }
                    "init" => match num {
                        Some(x) if x >= 0.0 => a.init = x,
                        _ => errors.push(syn::Error::new_spanned(&nv.value, "`init` takes a number >= 0 (standard deviation of the initial parameters)")),
                    },
                    _ => errors.push(syn::Error::new_spanned(&nv.path, format!("unknown setting `{key}`: expected dim, input, output, params or init"))),
                }
            }
            other => errors.push(syn::Error::new_spanned(other, "expected `symplectic`, `map` or `key = value`")),
        }
    }
    a
}

pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    let args = parse_args(attr, &mut errors);
    let imp: ItemImpl = match syn::parse2(item.clone()) {
        Ok(i) => i,
        Err(e) => {
            let e = syn::Error::new(e.span(), "#[nct::layer] goes on an `impl Type { fn forward<D: Scalar>(...) ... }` block");
            let c = e.to_compile_error();
            return quote!(#item #c);
        }
    };
    let ty = &imp.self_ty;
    let has = |n: &str| imp.items.iter().any(|it| matches!(it, ImplItem::Fn(f) if f.sig.ident == n));
    let Some((kind, kind_span)) = args.kind.clone() else {
        errors.push(syn::Error::new(Span::call_site(), "missing layer kind: `#[nct::layer(symplectic, dim = N, params = P)]` or `#[nct::layer(map, input = I, output = O, params = P)]`"));
        let c = errors.into_iter().map(|e| e.to_compile_error());
        return quote!(#imp #(#c)*);
    };
    let Some(p) = args.params else {
        errors.push(syn::Error::new(kind_span, "missing `params = P` (the number of scalar parameters of the layer)"));
        let c = errors.into_iter().map(|e| e.to_compile_error());
        return quote!(#imp #(#c)*);
    };
    if !has("forward") {
        errors.push(syn::Error::new_spanned(&imp.self_ty, "the impl block must define `fn forward<D: Scalar>(&self, theta: &[D], x: ...)`"));
    }
    let init = args.init;
    let parametrised = quote! {
        impl ::nct::Parametrised for #ty {
            fn n_params(&self) -> usize { #p }
            fn init_params(&self, rng: &mut dyn ::nct::rand::Rng, theta: &mut [f64]) {
                for t in theta.iter_mut() {
                    let z: f64 = ::nct::__private::standard_normal(rng);
                    *t = #init * z;
                }
            }
        }
    };
    let body = match kind.as_str() {
        "symplectic" => {
            let Some(n) = args.dim else {
                errors.push(syn::Error::new(kind_span, "a symplectic layer needs `dim = N` (degrees of freedom)"));
                let c = errors.into_iter().map(|e| e.to_compile_error());
                return quote!(#imp #(#c)*);
            };
            if !has("inverse") {
                errors.push(syn::Error::new_spanned(&imp.self_ty, "a symplectic layer must also define `fn inverse<D: Scalar>(&self, theta: &[D], y: &PhasePoint<D, N>) -> PhasePoint<D, N>`"));
            }
            if !errors.is_empty() {
                let c = errors.into_iter().map(|e| e.to_compile_error());
                return quote!(#imp #(#c)*);
            }
            let k = p + 2 * n;
            quote! {
                impl ::nct::SymplecticLayer<::nct::Const<#n>> for #ty {
                    type Cache<D: ::nct::Scalar> = ::nct::PhasePoint<D, ::nct::Const<#n>>;
                    fn dim(&self) -> ::nct::Const<#n> { ::nct::Const }
                    fn forward<D: ::nct::Scalar>(&self, theta: &[f64], x: &::nct::PhasePoint<D, ::nct::Const<#n>>) -> (::nct::PhasePoint<D, ::nct::Const<#n>>, Self::Cache<D>) {
                        let th: ::std::vec::Vec<D> = theta.iter().map(|&t| <D as ::core::convert::From<f64>>::from(t)).collect();
                        (<#ty>::forward(self, &th, x), x.clone())
                    }
                    fn inverse<D: ::nct::Scalar>(&self, theta: &[f64], y: &::nct::PhasePoint<D, ::nct::Const<#n>>) -> ::nct::PhasePoint<D, ::nct::Const<#n>> {
                        let th: ::std::vec::Vec<D> = theta.iter().map(|&t| <D as ::core::convert::From<f64>>::from(t)).collect();
                        <#ty>::inverse(self, &th, y)
                    }
                    /// Exact VJP by forward mode: one `Dual<D>` pass per parameter and input coordinate.
                    fn vjp<D: ::nct::Scalar>(&self, theta: &[f64], x: &Self::Cache<D>, ybar: &::nct::PhasePoint<D, ::nct::Const<#n>>, g: &mut [D]) -> ::nct::PhasePoint<D, ::nct::Const<#n>> {
                        type E<D> = ::nct::num_dual::Dual<D>;
                        let mut xbar = ::nct::PhasePoint::<D, ::nct::Const<#n>>::zeros(::nct::Const);
                        for dir in 0..#k {
                            let th: ::std::vec::Vec<E<D>> = theta.iter().enumerate().map(|(i, &t)| E::new(<D as ::core::convert::From<f64>>::from(t), if i == dir { D::one() } else { D::zero() })).collect();
                            let xe = x.map(|v| E::from_re(v));
                            let mut xe = xe;
                            if dir >= #p {
                                let c = dir - #p;
                                if c < #n { xe.q[c].eps = D::one(); } else { xe.p[c - #n].eps = D::one(); }
                            }
                            let y = <#ty>::forward(self, &th, &xe);
                            let mut s = D::zero();
                            for i in 0..#n {
                                s += ybar.q[i] * y.q[i].eps + ybar.p[i] * y.p[i].eps;
                            }
                            if dir < #p {
                                g[dir] += s;
                            } else {
                                let c = dir - #p;
                                if c < #n { xbar.q[c] = s; } else { xbar.p[c - #n] = s; }
                            }
                        }
                        xbar
                    }
                }
            }
        }
        _ => {
            let (Some(i), Some(o)) = (args.input, args.output) else {
                errors.push(syn::Error::new(kind_span, "a map layer needs `input = I, output = O`"));
                let c = errors.into_iter().map(|e| e.to_compile_error());
                return quote!(#imp #(#c)*);
            };
            if !errors.is_empty() {
                let c = errors.into_iter().map(|e| e.to_compile_error());
                return quote!(#imp #(#c)*);
            }
            let k = p + i;
            quote! {
                impl ::nct::Layer<::nct::Const<#i>, ::nct::Const<#o>> for #ty {
                    type Cache<D: ::nct::Scalar> = ::nct::Vector<D, ::nct::Const<#i>>;
                    fn input_dim(&self) -> ::nct::Const<#i> { ::nct::Const }
                    fn output_dim(&self) -> ::nct::Const<#o> { ::nct::Const }
                    fn forward<D: ::nct::Scalar>(&self, theta: &[f64], x: &::nct::Vector<D, ::nct::Const<#i>>) -> (::nct::Vector<D, ::nct::Const<#o>>, Self::Cache<D>) {
                        let th: ::std::vec::Vec<D> = theta.iter().map(|&t| <D as ::core::convert::From<f64>>::from(t)).collect();
                        (<#ty>::forward(self, &th, x), x.clone())
                    }
                    fn vjp<D: ::nct::Scalar>(&self, theta: &[f64], x: &Self::Cache<D>, ybar: &::nct::Vector<D, ::nct::Const<#o>>, g: &mut [D]) -> ::nct::Vector<D, ::nct::Const<#i>> {
                        type E<D> = ::nct::num_dual::Dual<D>;
                        let mut xbar = ::nct::Vector::<D, ::nct::Const<#i>>::from_element(::nct::Const, D::zero());
                        for dir in 0..#k {
                            let th: ::std::vec::Vec<E<D>> = theta.iter().enumerate().map(|(j, &t)| E::new(<D as ::core::convert::From<f64>>::from(t), if j == dir { D::one() } else { D::zero() })).collect();
                            let mut xe = x.map(|v| E::from_re(v));
                            if dir >= #p { xe[dir - #p].eps = D::one(); }
                            let y = <#ty>::forward(self, &th, &xe);
                            let mut s = D::zero();
                            for j in 0..#o { s += ybar[j] * y[j].eps; }
                            if dir < #p { g[dir] += s; } else { xbar[dir - #p] = s; }
                        }
                        xbar
                    }
                }
            }
        }
    };
    quote! {
        #imp
        #parametrised
        #body
    }
}
