//! `hamiltonian!`: parse -> IR -> validate -> expand.

use crate::body::{Lift, ScopeCheck, rewrite_sums, zero};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Attribute, Expr, Ident, LitInt, Token, Visibility, braced, bracketed, parenthesized};

/// A declared parameter `name: f64 = default`.
struct Param {
    name: Ident,
    ty: syn::Type,
    default: Expr,
}

/// A body `name(args) = expr;`.
struct Body {
    name: Ident,
    args: Vec<Ident>,
    tokens: TokenStream,
}

/// Parsed invocation (the IR).
pub struct HamiltonianDef {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    generic_n: Option<Ident>,
    params: Vec<Param>,
    dof: Option<LitInt>,
    /// `dof = field;`: the degrees of freedom are the value of a `usize` parameter (runtime size).
    dof_field: Option<Ident>,
    /// `particles = field;` / `dim = field;`: runtime particle count or spatial dimension.
    particles_field: Option<Ident>,
    dim_field: Option<Ident>,
    particles: Option<LitInt>,
    dim: Option<LitInt>,
    masses: Option<(Span, Vec<Expr>)>,
    bodies: Vec<Body>,
}

impl Parse for HamiltonianDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        let mut generic_n = None;
        if input.peek(Token![<]) {
            input.parse::<Token![<]>()?;
            input.parse::<Token![const]>()?;
            generic_n = Some(input.parse::<Ident>()?);
            input.parse::<Token![:]>()?;
            let ty: Ident = input.parse()?;
            if ty != "usize" {
                return Err(syn::Error::new(ty.span(), "the degrees-of-freedom parameter must be `const N: usize`"));
            }
            input.parse::<Token![>]>()?;
        }
        let content;
        braced!(content in input);
        let mut params = Vec::new();
        while !content.is_empty() {
            let name: Ident = content.parse()?;
            content.parse::<Token![:]>()?;
            let ty: syn::Type = content.parse()?;
            content.parse::<Token![=]>()?;
            let default: Expr = content.parse()?;
            params.push(Param { name, ty, default });
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        let mut def = HamiltonianDef { attrs, vis, name, generic_n, params, dof: None, dof_field: None, particles_field: None, dim_field: None, particles: None, dim: None, masses: None, bodies: Vec::new() };
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                match key.to_string().as_str() {
                    "dof" if input.peek(Ident) => def.dof_field = Some(input.parse()?),
                    "dof" => def.dof = Some(input.parse()?),
                    "particles" if input.peek(Ident) => def.particles_field = Some(input.parse()?),
                    "particles" => def.particles = Some(input.parse()?),
                    "dim" if input.peek(Ident) => def.dim_field = Some(input.parse()?),
                    "dim" => def.dim = Some(input.parse()?),
                    "masses" => {
                        let c;
                        let br = bracketed!(c in input);
                        let list = c.parse_terminated(Expr::parse, Token![,])?;
                        def.masses = Some((br.span.join(), list.into_iter().collect()));
                    }
                    other => return Err(syn::Error::new(key.span(), format!("unknown setting `{other}`: expected `dof`, `particles`, `dim` or `masses`"))),
                }
                input.parse::<Token![;]>()?;
                continue;
            }
            let c;
            parenthesized!(c in input);
            let args = c.parse_terminated(Ident::parse, Token![,])?.into_iter().collect();
            input.parse::<Token![=]>()?;
            let mut tokens = TokenStream::new();
            while !input.is_empty() && !input.peek(Token![;]) {
                let tt: proc_macro2::TokenTree = input.parse()?;
                tokens.extend(std::iter::once(tt));
            }
            input.parse::<Token![;]>()?;
            def.bodies.push(Body { name: key, args, tokens });
        }
        Ok(def)
    }
}

fn int(l: &LitInt) -> syn::Result<usize> {
    l.base10_parse::<usize>()
}

impl HamiltonianDef {
    /// Validate and expand; every error is collected and spanned.
    pub fn expand(self) -> TokenStream {
        let mut errors: Vec<syn::Error> = Vec::new();
        // Duplicate parameter names.
        for (i, p) in self.params.iter().enumerate() {
            if self.params[..i].iter().any(|q| q.name == p.name) {
                errors.push(syn::Error::new(p.name.span(), format!("duplicate parameter `{}`", p.name)));
            }
            if ["q", "p", "D"].contains(&p.name.to_string().as_str()) {
                errors.push(syn::Error::new(p.name.span(), format!("parameter name `{}` is reserved (arguments are `q` and `p`, the scalar type is `D`)", p.name)));
            }
        }
        // Degrees of freedom.
        let dof_tokens: TokenStream;
        let mut dof_value: Option<usize> = None;
        let is_usize = |t: &syn::Type| matches!(t, syn::Type::Path(tp) if tp.path.is_ident("usize"));
        let runtime = self.dof_field.is_some() || self.particles_field.is_some() || self.dim_field.is_some();
        for (setting, f) in [("dof", &self.dof_field), ("particles", &self.particles_field), ("dim", &self.dim_field)] {
            let Some(f) = f else { continue };
            match self.params.iter().find(|p| p.name == *f) {
                Some(p) if is_usize(&p.ty) => {}
                Some(p) => errors.push(syn::Error::new(p.name.span(), format!("`{setting} = {f};` needs `{f}` to be a `usize` parameter"))),
                None => errors.push(syn::Error::new(f.span(), format!("`{setting} = {f};` names no parameter: declare `{f}: usize = ...` in the struct"))),
            }
        }
        // The runtime number of degrees of freedom, as an expression of `self`.
        let runtime_dof: Option<TokenStream> = if !runtime {
            None
        } else if let Some(f) = &self.dof_field {
            if self.generic_n.is_some() || self.particles.is_some() || self.dim.is_some() || self.particles_field.is_some() || self.dim_field.is_some() {
                errors.push(syn::Error::new(f.span(), "a runtime `dof = field;` cannot be combined with `<const N: usize>`, `particles` or `dim`"));
            }
            Some(quote!(self.#f))
        } else {
            let part = |field: &Option<Ident>, lit: &Option<LitInt>| match (field, lit) {
                (Some(f), _) => Some(quote!(self.#f)),
                (None, Some(l)) => Some(quote!(#l)),
                _ => None,
            };
            let span = self.particles_field.as_ref().or(self.dim_field.as_ref()).map_or(self.name.span(), |f| f.span());
            if self.generic_n.is_some() || self.dof.is_some() {
                errors.push(syn::Error::new(span, "runtime `particles`/`dim` give the degrees of freedom; do not also write `<const N: usize>` or `dof = ...;`"));
            }
            match (part(&self.particles_field, &self.particles), part(&self.dim_field, &self.dim)) {
                (Some(p), Some(k)) => Some(quote!((#p) * (#k))),
                _ => {
                    errors.push(syn::Error::new(span, "runtime particle systems need both `particles = ...;` and `dim = ...;` (each a literal or a `usize` parameter)"));
                    Some(quote!(0))
                }
            }
        };
        match (&self.generic_n, if runtime { &None } else { &self.dof }, if runtime { &None } else { &self.particles }, if runtime { &None } else { &self.dim }) {
            (Some(n), None, None, None) => dof_tokens = quote!(#n),
            (None, Some(d), p, k) => {
                dof_value = int(d).ok();
                if let (Some(p), Some(k)) = (p, k) {
                    if let (Ok(pv), Ok(kv), Some(dv)) = (int(p), int(k), dof_value) {
                        if pv * kv != dv {
                            errors.push(syn::Error::new(d.span(), format!("particles x dim = {pv} x {kv} = {} does not equal the degrees of freedom dof = {dv}", pv * kv)));
                        }
                    }
                }
                dof_tokens = quote!(#d);
            }
            (None, None, Some(p), Some(k)) => {
                let v = int(p).unwrap_or(0) * int(k).unwrap_or(0);
                dof_value = Some(v);
                let lit = LitInt::new(&v.to_string(), p.span());
                dof_tokens = quote!(#lit);
            }
            (Some(n), _, _, _) => {
                errors.push(syn::Error::new(n.span(), "give the degrees of freedom either as `<const N: usize>` or as `dof = ...;` / `particles = ...; dim = ...;`, not both"));
                dof_tokens = quote!(#n);
            }
            _ if runtime => dof_tokens = quote!(0),
            _ => {
                errors.push(syn::Error::new(self.name.span(), "missing degrees of freedom: write `struct Name<const N: usize>` or add `dof = 3;` (or `particles = 2; dim = 3;`)"));
                dof_tokens = quote!(1);
            }
        }
        if let Some((span, masses)) = &self.masses {
            let per_particle = self.particles.as_ref().and_then(|p| int(p).ok());
            match dof_value {
                Some(d) if masses.len() == d => {}
                Some(_) if per_particle == Some(masses.len()) => {}
                Some(d) => errors.push(syn::Error::new(*span, format!("{} masses given, but the model has {d} degrees of freedom{}", masses.len(), per_particle.map(|p| format!(" ({p} particles)")).unwrap_or_default()))),
                None => errors.push(syn::Error::new(*span, "`masses = [...]` needs a fixed number of degrees of freedom (`dof = ...;`); with a runtime size write `kinetic(p) = ...;`")),
            }
        }
        // Bodies.
        let names: Vec<String> = self.bodies.iter().map(|b| b.name.to_string()).collect();
        for (i, b) in self.bodies.iter().enumerate() {
            let n = b.name.to_string();
            let expected: &[&str] = match n.as_str() {
                "kinetic" => &["p"],
                "potential" => &["q"],
                "energy" => &["q", "p"],
                other => {
                    errors.push(syn::Error::new(b.name.span(), format!("unknown body `{other}`: expected `potential(q) = ...;`, `kinetic(p) = ...;` or `energy(q, p) = ...;`")));
                    continue;
                }
            };
            let got: Vec<String> = b.args.iter().map(|a| a.to_string()).collect();
            if got != expected {
                errors.push(syn::Error::new(b.name.span(), format!("`{n}` takes ({}), found ({})", expected.join(", "), got.join(", "))));
            }
            if names[..i].contains(&n) {
                errors.push(syn::Error::new(b.name.span(), format!("`{n}` is defined twice")));
            }
        }
        let has = |n: &str| names.iter().any(|x| x == n);
        let separable = has("potential");
        if has("energy") && (has("potential") || has("kinetic")) {
            errors.push(syn::Error::new(self.name.span(), "give either `energy(q, p)` or `potential(q)` (with an optional `kinetic(p)`), not both"));
        } else if !has("energy") && !has("potential") && names.iter().all(|n| ["kinetic", "potential", "energy"].contains(&n.as_str())) {
            errors.push(syn::Error::new(self.name.span(), "missing `potential(q) = ...;` (or `energy(q, p) = ...;`)"));
        }
        let param_names: Vec<String> = self.params.iter().map(|p| p.name.to_string()).collect();
        let mut compiled = Vec::new();
        for b in &self.bodies {
            match compile_body(b, &param_names) {
                Ok(ts) => compiled.push((b.name.to_string(), ts)),
                Err(es) => errors.extend(es),
            }
        }

        // Expansion (duplicates dropped so that one mistake gives one message).
        let HamiltonianDef { attrs, vis, name, generic_n, .. } = &self;
        let mut params: Vec<&Param> = Vec::new();
        for p in &self.params {
            if !params.iter().any(|q| q.name == p.name) {
                params.push(p);
            }
        }
        let (impl_gen, ty_gen) = match generic_n {
            Some(n) => (quote!(<const #n: usize>), quote!(<#n>)),
            None => (quote!(), quote!()),
        };
        let fields = params.iter().map(|p| {
            let (n, t) = (&p.name, &p.ty);
            let doc = format!("Model parameter `{n}`.");
            quote!(#[doc = #doc] pub #n: #t)
        });
        let defaults = params.iter().map(|p| {
            let (n, d) = (&p.name, &p.default);
            quote!(#n: #d)
        });
        let setters = params.iter().map(|p| {
            let (n, t) = (&p.name, &p.ty);
            let f = format_ident!("with_{}", n);
            let doc = format!("Builder: set `{n}`.");
            quote!(#[doc = #doc] pub fn #f(mut self, value: #t) -> Self { self.#n = value; self })
        });
        let lifts: Vec<TokenStream> = params.iter().map(|p| {
            let n = &p.name;
            if is_usize(&p.ty) {
                quote!(#[allow(unused_variables)] let #n: usize = self.#n;)
            } else {
                quote!(#[allow(unused_variables)] let #n: D = <D as ::core::convert::From<f64>>::from(self.#n as f64);)
            }
        }).collect();
        let sv = quote!(::nct::Vector);
        let (dim_ty, dim_val) = match &runtime_dof {
            // After an error the expansion only has to stay well-typed (one message per mistake).
            Some(_) if !errors.is_empty() => (quote!(::nct::Dyn), quote!(::nct::Dyn(0))),
            Some(e) => (quote!(::nct::Dyn), quote!(::nct::Dyn(#e))),
            None => (quote!(::nct::Const<#dof_tokens>), quote!(::nct::Const)),
        };
        let failed = !errors.is_empty();
        let body_of = |n: &str| -> TokenStream {
            if failed {
                return quote!({ ::core::unreachable!() });
            }
            compiled.iter().find(|(k, _)| k == n).map(|(_, t)| t.clone()).unwrap_or_default()
        };
        let masses_fn = match &self.masses {
            Some((_, ms)) if !failed => {
                let per_particle = self.particles.as_ref().and_then(|p| int(p).ok()).filter(|p| Some(ms.len()) == Some(*p) && dof_value != Some(*p));
                let dim = self.dim.as_ref().and_then(|d| int(d).ok()).unwrap_or(1);
                let list: Vec<TokenStream> = match per_particle {
                    Some(_) => ms.iter().flat_map(|m| std::iter::repeat_n(quote!((#m) as f64), dim)).collect(),
                    None => ms.iter().map(|m| quote!((#m) as f64)).collect(),
                };
                quote!(fn masses(&self) -> #sv<f64, #dim_ty> { #sv::<f64, #dim_ty>::from([#(#list),*]) })
            }
            _ => quote!(),
        };
        let model_impl = if separable || failed {
            let pot = body_of("potential");
            let kin = if has("kinetic") {
                let k = body_of("kinetic");
                quote!(#[allow(unused_variables, unused_mut, unused_parens, clippy::all)] fn kinetic<D: ::nct::Scalar>(&self, p: &#sv<D, #dim_ty>) -> D { #(#lifts)* #k })
            } else {
                quote!()
            };
            quote! {
                impl #impl_gen ::nct::Separable<#dim_ty> for #name #ty_gen {
                    fn dim(&self) -> #dim_ty { #dim_val }
                    #[allow(unused_variables, unused_mut, unused_parens, clippy::all)]
                    fn potential<D: ::nct::Scalar>(&self, q: &#sv<D, #dim_ty>) -> D { #(#lifts)* #pot }
                    #kin
                    #masses_fn
                }
            }
        } else {
            let e = body_of("energy");
            quote! {
                impl #impl_gen ::nct::Hamiltonian<#dim_ty> for #name #ty_gen {
                    fn dim(&self) -> #dim_ty { #dim_val }
                    #[allow(unused_variables, unused_mut, unused_parens, clippy::all)]
                    fn energy<D: ::nct::Scalar>(&self, q: &#sv<D, #dim_ty>, p: &#sv<D, #dim_ty>) -> D { #(#lifts)* #e }
                }
            }
        };
        let dof_const = if runtime { quote!() } else { quote!(/// Degrees of freedom.
            pub const DOF: usize = #dof_tokens;) };
        let errs = errors.into_iter().map(|e| e.to_compile_error());
        quote! {
            #(#attrs)*
            #[derive(Clone, Debug, PartialEq)]
            #vis struct #name #impl_gen { #(#fields),* }
            impl #impl_gen ::core::default::Default for #name #ty_gen {
                fn default() -> Self { Self { #(#defaults),* } }
            }
            impl #impl_gen #name #ty_gen {
                #dof_const
                /// The model with its default parameters.
                pub fn new() -> Self { Self::default() }
                #(#setters)*
            }
            #model_impl
            #(#errs)*
        }
    }
}

/// Rewrite sums, parse, check names, lift literals.
fn compile_body(b: &Body, params: &[String]) -> Result<TokenStream, Vec<syn::Error>> {
    let rewritten = rewrite_sums(b.tokens.clone(), &zero()).map_err(|e| vec![e])?;
    let mut expr: Expr = syn::parse2(rewritten).map_err(|e| vec![e])?;
    let args: Vec<String> = b.args.iter().map(|a| a.to_string()).collect();
    let mut check = ScopeCheck::new(params, &args);
    check.visit_expr(&expr);
    if !check.errors.is_empty() {
        return Err(check.errors);
    }
    Lift.visit_expr_mut(&mut expr);
    Ok(quote!(#expr))
}
