//! `flow!`: a named stack of layers on phase space (`Symplectic<n>`) or configuration space
//! (`Unitary<n>`). Parse -> IR -> validate -> expand.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, GenericArgument, Ident, Lit, PathArguments, Token, Type, Visibility, braced};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Space {
    Symplectic,
    Unitary,
}

struct LayerDecl {
    field: Ident,
    ty: Type,
    opts: Vec<(Ident, Expr)>,
    init: Option<Expr>,
}

pub struct FlowDef {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    space: Space,
    space_span: Span,
    dim: Expr,
    layers: Vec<LayerDecl>,
}

impl Parse for FlowDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let kind: Ident = input.parse()?;
        let space = match kind.to_string().as_str() {
            "Symplectic" => Space::Symplectic,
            "Unitary" => Space::Unitary,
            other => return Err(syn::Error::new(kind.span(), format!("unknown flow kind `{other}`: expected `Symplectic<n>` (phase space, 2n coordinates) or `Unitary<n>` (configuration space)"))),
        };
        input.parse::<Token![<]>()?;
        let dim: Expr = if input.peek(syn::LitInt) { Expr::Lit(input.parse()?) } else { Expr::Path(input.parse()?) };
        input.parse::<Token![>]>()?;
        let content;
        braced!(content in input);
        let mut layers = Vec::new();
        while !content.is_empty() {
            let field: Ident = content.parse()?;
            content.parse::<Token![:]>()?;
            let ty: Type = content.parse()?;
            let mut opts = Vec::new();
            let mut init = None;
            if content.peek(syn::token::Brace) {
                let o;
                braced!(o in content);
                while !o.is_empty() {
                    let k: Ident = o.parse()?;
                    o.parse::<Token![:]>()?;
                    let v: Expr = o.parse()?;
                    opts.push((k, v));
                    if o.is_empty() {
                        break;
                    }
                    o.parse::<Token![,]>()?;
                }
            } else if content.peek(Token![=]) {
                content.parse::<Token![=]>()?;
                init = Some(content.parse()?);
            }
            layers.push(LayerDecl { field, ty, opts, init });
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        Ok(FlowDef { attrs, vis, name, space, space_span: kind.span(), dim, layers })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    RealNvp,
    AffineCoupling,
    LinearBijector,
    LinearSymplectic,
    SymplecticScaling,
    HamiltonianFlow,
    Kick,
    Drift,
    Dense,
}

impl Kind {
    fn from(name: &str) -> Option<Kind> {
        Some(match name {
            "RealNvp" => Kind::RealNvp,
            "AffineCoupling" => Kind::AffineCoupling,
            "LinearBijector" => Kind::LinearBijector,
            "LinearSymplectic" => Kind::LinearSymplectic,
            "SymplecticScaling" => Kind::SymplecticScaling,
            "HamiltonianFlow" => Kind::HamiltonianFlow,
            "Kick" => Kind::Kick,
            "Drift" => Kind::Drift,
            "Dense" | "Mlp" | "DenseNet" => Kind::Dense,
            _ => return None,
        })
    }
    fn options(self) -> &'static [&'static str] {
        match self {
            Kind::RealNvp => &["couplings", "hidden", "activation", "masks"],
            Kind::AffineCoupling => &["hidden", "activation", "condition"],
            Kind::LinearSymplectic => &["shears", "init_scale"],
            Kind::SymplecticScaling | Kind::LinearBijector => &[],
            Kind::HamiltonianFlow => &["hidden", "activation", "steps", "time"],
            Kind::Kick | Kind::Drift => &["hidden", "activation"],
            Kind::Dense => &[],
        }
    }
    fn is_coupling(self) -> bool {
        matches!(self, Kind::RealNvp | Kind::AffineCoupling)
    }
}

/// What a layer declaration resolved to.
struct Resolved {
    ty: TokenStream,
    ctor: TokenStream,
    builtin: bool,
    pretty: String,
}

struct Ctx {
    /// The dimension type: `::nct::Const<n>` or `::nct::Dyn`.
    dty: TokenStream,
    dim_value: Option<usize>,
    errors: Vec<syn::Error>,
    /// The layer being resolved (names its builder options).
    cur_field: Option<Ident>,
    /// Options of built-in layers that the generated builder can set at run time.
    slots: Vec<Slot>,
}

/// How a builder option is checked when the flow is built.
#[derive(Clone, Copy)]
enum Check {
    IntMin(usize),
    Float { positive: bool },
    Widths,
}

/// One runtime-settable option: `<field>_<option>` on the builder.
struct Slot {
    name: Ident,
    opt: String,
    what: String,
    ty: TokenStream,
    default: TokenStream,
    check: Check,
}

fn last_segment(ty: &Type) -> Option<(&Ident, &PathArguments)> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| (&s.ident, &s.arguments)),
        _ => None,
    }
}

fn generic_args(args: &PathArguments) -> Vec<&GenericArgument> {
    match args {
        PathArguments::AngleBracketed(a) => a.args.iter().collect(),
        _ => Vec::new(),
    }
}

fn lit_usize(e: &Expr) -> Option<usize> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => i.base10_parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

impl Ctx {
    fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.errors.push(syn::Error::new(span, msg.into()));
    }

    fn int_opt(&mut self, kind: Kind, opts: &[(Ident, Expr)], key: &str, default: usize, min: usize) -> TokenStream {
        match opts.iter().find(|(k, _)| k == key) {
            None => quote!(#default),
            Some((k, v)) => match lit_usize(v) {
                Some(n) if n >= min => quote!(#n),
                _ => {
                    self.err(v.span(), format!("option `{k}` of {kind:?} takes an integer >= {min}, found `{}`", v.to_token_stream()));
                    quote!(#default)
                }
            },
        }
    }

    fn float_opt(&mut self, kind: Kind, opts: &[(Ident, Expr)], key: &str, default: f64, positive: bool) -> TokenStream {
        match opts.iter().find(|(k, _)| k == key) {
            None => quote!(#default),
            Some((k, v)) => {
                let val = match v {
                    Expr::Lit(l) => match &l.lit {
                        Lit::Float(f) => f.base10_parse::<f64>().ok(),
                        Lit::Int(i) => i.base10_parse::<f64>().ok(),
                        _ => None,
                    },
                    _ => None,
                };
                match val {
                    Some(x) if x.is_finite() && (x > 0.0 || (!positive && x >= 0.0)) => quote!(#x),
                    _ => {
                        self.err(v.span(), format!("option `{k}` of {kind:?} takes a number {}, found `{}`", if positive { "> 0" } else { ">= 0" }, v.to_token_stream()));
                        quote!(#default)
                    }
                }
            }
        }
    }

    fn list_opt(&mut self, kind: Kind, opts: &[(Ident, Expr)], key: &str, default: &[usize], max: Option<usize>) -> TokenStream {
        match opts.iter().find(|(k, _)| k == key) {
            None => quote!([#(#default),*]),
            Some((k, v)) => {
                let items: Option<Vec<usize>> = match v {
                    Expr::Array(a) => a.elems.iter().map(lit_usize).collect(),
                    _ => None,
                };
                match items {
                    Some(xs) if !xs.is_empty() && xs.iter().all(|&x| x > 0 || max.is_some()) => {
                        if let (Some(m), Some(bad)) = (max, xs.iter().find(|&&x| x >= max.unwrap_or(0))) {
                            self.err(v.span(), format!("option `{k}` of {kind:?}: index {bad} is outside 0..{m}"));
                        }
                        quote!([#(#xs),*])
                    }
                    _ => {
                        self.err(v.span(), format!("option `{k}` of {kind:?} takes a list of positive integers like `[64, 64]`, found `{}`", v.to_token_stream()));
                        quote!([#(#default),*])
                    }
                }
            }
        }
    }

    fn ident_opt(&mut self, kind: Kind, opts: &[(Ident, Expr)], key: &str, allowed: &[(&str, TokenStream)]) -> TokenStream {
        match opts.iter().find(|(k, _)| k == key) {
            None => allowed[0].1.clone(),
            Some((k, v)) => {
                let name = match v {
                    Expr::Path(p) => p.path.get_ident().map(|i| i.to_string()),
                    _ => None,
                };
                match name.and_then(|n| allowed.iter().find(|(a, _)| *a == n)) {
                    Some((_, t)) => t.clone(),
                    None => {
                        let names: Vec<&str> = allowed.iter().map(|a| a.0).collect();
                        self.err(v.span(), format!("option `{k}` of {kind:?} takes one of {}, found `{}`", names.join(", "), v.to_token_stream()));
                        allowed[0].1.clone()
                    }
                }
            }
        }
    }

    /// Registers option `opt` of the current layer as a builder field with the compile-time
    /// `value` as its default; returns the expression that reads it (`__b.<field>_<opt>`).
    fn slot(&mut self, opt: &str, ty: TokenStream, value: TokenStream, check: Check) -> TokenStream {
        let field = self.cur_field.clone().expect("slots belong to a layer");
        let name = format_ident!("{}_{}", field, opt);
        let default = match check {
            Check::Widths => quote!(::std::vec::Vec::from(#value)),
            _ => value,
        };
        self.slots.push(Slot { name: name.clone(), opt: opt.to_string(), what: format!("{field}.{opt}"), ty, default, check });
        quote!(__b.#name)
    }

    fn activation(&mut self, kind: Kind, opts: &[(Ident, Expr)]) -> TokenStream {
        self.ident_opt(kind, opts, "activation", &[("tanh", quote!(::nct::Activation::Tanh)), ("softplus", quote!(::nct::Activation::Softplus))])
    }

    /// Check explicit dimension arguments such as `LinearSymplectic<4>`.
    fn check_dim_args(&mut self, args: &PathArguments) {
        for a in generic_args(args) {
            let e = match a {
                GenericArgument::Const(e) => Some(e.clone()),
                GenericArgument::Type(Type::Path(p)) if p.path.get_ident().is_some() => None,
                _ => None,
            };
            if let (Some(e), Some(d)) = (e, self.dim_value) {
                if let Some(v) = lit_usize(&e) {
                    if v != d {
                        self.err(e.span(), format!("layer dimension {v} differs from the stack's dimension {d}"));
                    }
                }
            }
        }
    }

    /// Constructor of a configuration-space coupling layer (RealNvp / AffineCoupling).
    fn coupling(&mut self, kind: Kind, span: Span, opts: &[(Ident, Expr)]) -> (TokenStream, TokenStream) {
        let dty = self.dty.clone();
        if let Some(d) = self.dim_value {
            if d < 2 {
                self.err(span, format!("{kind:?} splits the coordinates into two non-empty parts, so it needs dimension >= 2; this stack has dimension {d}"));
            }
        }
        let act = self.activation(kind, opts);
        let hidden = self.list_opt(kind, opts, "hidden", &[64, 64], None);
        let hidden = self.slot("hidden", quote!(::std::vec::Vec<usize>), hidden, Check::Widths);
        match kind {
            Kind::RealNvp => {
                let couplings = self.int_opt(kind, opts, "couplings", 4, 1);
                let couplings = self.slot("couplings", quote!(usize), couplings, Check::IntMin(1));
                let masks = self.ident_opt(kind, opts, "masks", &[("halves", quote!(::nct::MaskScheme::AlternatingHalves)), ("even_odd", quote!(::nct::MaskScheme::EvenOdd)), ("random", quote!(::nct::MaskScheme::RandomPermutation))]);
                (quote!(::nct::RealNvp<#dty>), quote!(::nct::real_nvp::<#dty>(__b.dim, #couplings, &#hidden, #act, #masks, &mut __rng)?))
            }
            _ => {
                let cond = match opts.iter().any(|(k, _)| k == "condition") {
                    true => {
                        let l = self.list_opt(kind, opts, "condition", &[0], self.dim_value);
                        quote!(#l.to_vec())
                    }
                    false => quote!((0..::nct::Size::value(__b.dim) / 2).collect()),
                };
                (quote!(::nct::AffineCoupling<#dty>), quote!(::nct::AffineCoupling::<#dty>::new(__b.dim, #cond, &#hidden, #act)?))
            }
        }
    }

    fn check_options(&mut self, kind: Kind, opts: &[(Ident, Expr)]) {
        for (i, (k, _)) in opts.iter().enumerate() {
            if !kind.options().contains(&k.to_string().as_str()) {
                let allowed = if kind.options().is_empty() { "it takes no options".to_string() } else { format!("expected one of {}", kind.options().join(", ")) };
                self.err(k.span(), format!("unknown option `{k}` for {kind:?}: {allowed}"));
            }
            if opts[..i].iter().any(|(q, _)| q == k) {
                self.err(k.span(), format!("option `{k}` given twice"));
            }
        }
    }

    fn resolve(&mut self, space: Space, l: &LayerDecl) -> Resolved {
        let dty = self.dty.clone();
        self.cur_field = Some(l.field.clone());
        let pretty = l.ty.to_token_stream().to_string().replace(' ', "");
        let Some((ident, args)) = last_segment(&l.ty) else {
            return self.custom(l, pretty);
        };
        let name = ident.to_string();
        let span = l.ty.span();
        if name == "PointTransform" {
            let inner = generic_args(args).into_iter().find_map(|a| match a {
                GenericArgument::Type(Type::Path(p)) => p.path.segments.last().map(|s| s.ident.clone()),
                _ => None,
            });
            if space == Space::Unitary {
                self.err(span, "`PointTransform` acts on phase space (q, p) and is only allowed in a `Symplectic<n>` stack; in a `Unitary<n>` stack use the configuration-space bijector itself");
            }
            let kind = inner.as_ref().and_then(|i| Kind::from(&i.to_string()));
            match kind {
                Some(k) if k.is_coupling() => {
                    self.check_options(k, &l.opts);
                    let (ty, ctor) = self.coupling(k, span, &l.opts);
                    return Resolved { ty: quote!(::nct::PointTransform<#ty>), ctor: quote!(::nct::PointTransform::new(#ctor)), builtin: true, pretty };
                }
                _ => {
                    self.err(span, "`PointTransform<B>` lifts a configuration-space bijector: write `PointTransform<RealNvp>` or `PointTransform<AffineCoupling>`");
                    return Resolved { ty: quote!(::nct::SymplecticScaling<#dty>), ctor: quote!(::nct::SymplecticScaling::<#dty>::new(__b.dim)), builtin: true, pretty };
                }
            }
        }
        let Some(kind) = Kind::from(&name) else {
            return self.custom(l, pretty);
        };
        self.check_options(kind, &l.opts);
        self.check_dim_args(args);
        let symplectic_only = matches!(kind, Kind::LinearSymplectic | Kind::SymplecticScaling | Kind::HamiltonianFlow | Kind::Kick | Kind::Drift);
        if kind == Kind::Dense {
            self.err(span, format!("`{name}` is not invertible, so it cannot be a layer of a flow; dense networks live inside couplings (`RealNvp {{ hidden: [64, 64] }}`)"));
        } else if space == Space::Symplectic && kind == Kind::LinearBijector {
            self.err(span, format!("`{name}` is a configuration-space bijector (volume-changing LU map) and is only allowed in a `Unitary<n>` stack; in a `Symplectic<n>` stack use `LinearSymplectic`"));
        } else if space == Space::Symplectic && kind.is_coupling() {
            self.err(span, format!("`{name}` is a configuration-space bijector, not a symplectic map; wrap it to lift it to phase space: `PointTransform<{name}>`"));
        } else if space == Space::Unitary && symplectic_only {
            self.err(span, format!("`{name}` acts on phase space (q, p) and is only allowed in a `Symplectic<n>` stack"));
        }
        let (ty, ctor) = match kind {
            Kind::RealNvp | Kind::AffineCoupling => self.coupling(kind, span, &l.opts),
            Kind::LinearBijector => (quote!(::nct::LinearBijector<#dty>), quote!(::nct::LinearBijector::<#dty>::new(__b.dim))),
            Kind::LinearSymplectic => {
                let s = self.int_opt(kind, &l.opts, "shears", 5, 1);
                let s = self.slot("shears", quote!(usize), s, Check::IntMin(1));
                let x = self.float_opt(kind, &l.opts, "init_scale", 0.0, false);
                let x = self.slot("init_scale", quote!(f64), x, Check::Float { positive: false });
                (quote!(::nct::LinearSymplectic<#dty>), quote!(::nct::LinearSymplectic::<#dty>::with_shears(__b.dim, #s).with_init_scale(#x)))
            }
            Kind::HamiltonianFlow => {
                let act = self.activation(kind, &l.opts);
                let hidden = self.list_opt(kind, &l.opts, "hidden", &[32], None);
                let hidden = self.slot("hidden", quote!(::std::vec::Vec<usize>), hidden, Check::Widths);
                let steps = self.int_opt(kind, &l.opts, "steps", 4, 1);
                let steps = self.slot("steps", quote!(usize), steps, Check::IntMin(1));
                let time = self.float_opt(kind, &l.opts, "time", 1.0, true);
                let time = self.slot("time", quote!(f64), time, Check::Float { positive: true });
                (quote!(::nct::HamiltonianFlow<#dty>), quote!(::nct::HamiltonianFlow::<#dty>::new(__b.dim, &#hidden, #act, #steps, #time)?))
            }
            Kind::Kick | Kind::Drift => {
                let act = self.activation(kind, &l.opts);
                let hidden = self.list_opt(kind, &l.opts, "hidden", &[32], None);
                let hidden = self.slot("hidden", quote!(::std::vec::Vec<usize>), hidden, Check::Widths);
                let f = if kind == Kind::Kick { quote!(kick) } else { quote!(drift) };
                (quote!(::nct::GradientShear<#dty>), quote!(::nct::GradientShear::<#dty>::#f(__b.dim, &#hidden, #act)))
            }
            Kind::SymplecticScaling | Kind::Dense => (quote!(::nct::SymplecticScaling<#dty>), quote!(::nct::SymplecticScaling::<#dty>::new(__b.dim))),
        };
        // Fallback types keep the expansion well-typed after an error.
        let (ty, ctor) = if space == Space::Unitary && (symplectic_only || kind == Kind::Dense) { (quote!(::nct::RealNvp<#dty>), quote!(::core::unreachable!())) } else if space == Space::Symplectic && (kind.is_coupling() || kind == Kind::Dense || kind == Kind::LinearBijector) { (quote!(::nct::SymplecticScaling<#dty>), quote!(::nct::SymplecticScaling::<#dty>::new(__b.dim))) } else { (ty, ctor) };
        Resolved { ty, ctor, builtin: true, pretty }
    }

    fn custom(&mut self, l: &LayerDecl, pretty: String) -> Resolved {
        if let Some((k, _)) = l.opts.first() {
            self.err(k.span(), format!("`{pretty}` is not a built-in layer, so it takes no options; build it with `= expression` (or implement `Default`)"));
        }
        let ty = l.ty.to_token_stream();
        let ctor = match &l.init {
            Some(e) => quote!(#e),
            None => quote_spanned!(l.ty.span()=> <#ty as ::core::default::Default>::default()),
        };
        Resolved { ty, ctor, builtin: false, pretty }
    }
}

impl FlowDef {
    pub fn expand(self) -> TokenStream {
        let dim = self.dim.to_token_stream();
        let dim_value = lit_usize(&self.dim);
        let runtime = matches!(&self.dim, Expr::Path(p) if p.path.is_ident("Dyn"));
        let dty = if runtime { quote!(::nct::Dyn) } else { quote!(::nct::Const<#dim>) };
        let mut ctx = Ctx { dty: dty.clone(), dim_value, errors: Vec::new(), cur_field: None, slots: Vec::new() };
        if dim_value == Some(0) {
            ctx.err(self.dim.span(), "a flow needs dimension >= 1");
        }
        if self.layers.is_empty() {
            ctx.err(self.name.span(), "a flow needs at least one layer");
        }
        for (i, l) in self.layers.iter().enumerate() {
            if self.layers[..i].iter().any(|m| m.field == l.field) {
                ctx.err(l.field.span(), format!("duplicate layer name `{}`", l.field));
            }
        }
        let mut layers: Vec<&LayerDecl> = Vec::new();
        for l in &self.layers {
            if !layers.iter().any(|m| m.field == l.field) {
                layers.push(l);
            }
        }
        let resolved: Vec<Resolved> = layers.iter().map(|l| ctx.resolve(self.space, l)).collect();
        let errors = std::mem::take(&mut ctx.errors);
        let slots = std::mem::take(&mut ctx.slots);
        let FlowDef { attrs, vis, name, space, space_span, .. } = &self;
        let fields: Vec<&Ident> = layers.iter().map(|l| &l.field).collect();
        let tys: Vec<&TokenStream> = resolved.iter().map(|r| &r.ty).collect();
        let ctors: Vec<&TokenStream> = resolved.iter().map(|r| &r.ctor).collect();
        let k = layers.len();
        let idx: Vec<syn::Index> = (0..k).map(syn::Index::from).collect();
        let field_names: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        let pretty: Vec<&String> = resolved.iter().map(|r| &r.pretty).collect();
        let all_builtin = resolved.iter().all(|r| r.builtin);
        let kind_name = match space {
            Space::Symplectic => "Symplectic",
            Space::Unitary => "Unitary",
        };
        let flow_trait = match space {
            Space::Symplectic => quote!(::nct::SymplecticLayer),
            Space::Unitary => quote!(::nct::Bijector),
        };
        let first_field = fields.first().map(|f| quote!(#f));
        let first_ty = tys.first().map(|t| quote!(#t));
        let dim_fn = match (first_field, first_ty) {
            (Some(f), Some(t)) => quote!(fn dim(&self) -> #dty { <#t as #flow_trait<#dty>>::dim(&self.#f) }),
            _ => quote!(fn dim(&self) -> #dty { ::core::unreachable!() }),
        };
        // The builder: every option of every built-in layer, settable at run time.
        let builder = format_ident!("{}Builder", name);
        let slot_names: Vec<&Ident> = slots.iter().map(|x| &x.name).collect();
        let slot_tys: Vec<&TokenStream> = slots.iter().map(|x| &x.ty).collect();
        let slot_defaults: Vec<&TokenStream> = slots.iter().map(|x| &x.default).collect();
        let setters = slots.iter().map(|x| {
            let (n, t, what) = (&x.name, &x.ty, &x.what);
            let doc = format!("Set option `{}` of layer `{what}` (default: the declaration's value).", x.opt);
            match x.check {
                Check::Widths => quote!(#[doc = #doc] pub fn #n(mut self, value: &[usize]) -> Self { self.#n = value.to_vec(); self }),
                _ => quote!(#[doc = #doc] pub fn #n(mut self, value: #t) -> Self { self.#n = value; self }),
            }
        });
        let shorthands = slots.iter().filter(|x| slots.iter().filter(|y| y.opt == x.opt).count() == 1).map(|x| {
            let (n, t) = (&x.name, &x.ty);
            let short = format_ident!("{}", x.opt);
            let doc = format!("Same as `{n}` (the only layer with option `{}`).", x.opt);
            match x.check {
                Check::Widths => quote!(#[doc = #doc] pub fn #short(self, value: &[usize]) -> Self { self.#n(value) }),
                _ => quote!(#[doc = #doc] pub fn #short(self, value: #t) -> Self { self.#n(value) }),
            }
        });
        let checks = slots.iter().map(|x| {
            let (n, what) = (&x.name, &x.what);
            let (bad, allowed) = match x.check {
                Check::IntMin(m) => (quote!(__b.#n < #m), format!("an integer >= {m}")),
                Check::Float { positive: true } => (quote!(!(__b.#n.is_finite() && __b.#n > 0.0)), "a finite number > 0".to_string()),
                Check::Float { positive: false } => (quote!(!(__b.#n.is_finite() && __b.#n >= 0.0)), "a finite number >= 0".to_string()),
                Check::Widths => (quote!(__b.#n.is_empty() || __b.#n.contains(&0)), "a non-empty list of positive widths".to_string()),
            };
            quote!(if #bad { return ::core::result::Result::Err(::nct::ConfigError::Value { what: #what, value: ::std::format!("{:?}", __b.#n), allowed: #allowed }); })
        });
        let ctors_in_build = quote! {
            #( #checks )*
            let mut __rng = <::nct::NctRng as ::nct::rand::SeedableRng>::seed_from_u64(seed);
            ::core::result::Result::Ok(#name { #( #fields: #ctors ),* })
        };
        let entry = if runtime {
            quote! {
                /// A builder for `dim` degrees of freedom, with the declared options as defaults.
                pub fn builder(dim: ::nct::Dyn) -> #builder {
                    #builder { dim, #( #slot_names: #slot_defaults ),* }
                }
                /// Build the stack with the declared options on `dim` degrees of freedom; random masks
                /// are drawn from a stream seeded by `seed`. Errors name the option or dimension.
                pub fn new(dim: ::nct::Dyn, seed: u64) -> ::core::result::Result<Self, ::nct::ConfigError> {
                    Self::builder(dim).build(seed)
                }
            }
        } else {
            quote! {
                /// Dimension of the stack (degrees of freedom).
                pub const DIM: usize = #dim;
                /// A builder with the declared options as defaults, each settable at run time.
                pub fn builder() -> #builder {
                    #builder { dim: ::nct::Const, #( #slot_names: #slot_defaults ),* }
                }
                /// Build the stack; random masks are drawn from a stream seeded by `seed`.
                pub fn new(seed: u64) -> Self {
                    Self::builder().build(seed).expect("options validated by flow!")
                }
            }
        };
        let offsets = quote! {
            #[allow(unused_assignments, unused_mut)]
            fn __nct_offsets(&self) -> [usize; #k + 1] {
                let mut o = [0usize; #k + 1];
                let mut acc = 0usize;
                let mut i = 0usize;
                #( o[i] = acc; acc += ::nct::Parametrised::n_params(&self.#fields); i += 1; )*
                o[#k] = acc;
                o
            }
        };
        let common = quote! {
            #(#attrs)*
            #[derive(Clone, Debug)]
            #vis struct #name { #( pub #fields: #tys ),* }
            impl #name {
                #entry
                /// Names of the layers, in application order.
                pub const LAYERS: [&'static str; #k] = [#(#field_names),*];
                #offsets
            }
            #[doc = ::core::concat!("Builder of [`", ::core::stringify!(#name), "`]: `<layer>_<option>` setters (and `<option>` where one layer has it), then `build(seed)`.")]
            #[derive(Clone, Debug)]
            #vis struct #builder { dim: #dty, #( #slot_names: #slot_tys ),* }
            impl #builder {
                #( #setters )*
                #( #shorthands )*
                /// Build the flow; random masks are drawn from a stream seeded by `seed`.
                #[allow(unused_mut, unused_variables, unreachable_code)]
                pub fn build(&self, seed: u64) -> ::core::result::Result<#name, ::nct::ConfigError> {
                    let __b = self;
                    #ctors_in_build
                }
            }
            impl ::nct::Parametrised for #name {
                fn n_params(&self) -> usize { self.__nct_offsets()[#k] }
                fn init_params(&self, rng: &mut dyn ::nct::rand::Rng, theta: &mut [f64]) {
                    let o = self.__nct_offsets();
                    #( ::nct::Parametrised::init_params(&self.#fields, rng, &mut theta[o[#idx]..o[#idx + 1]]); )*
                }
                fn param_groups(&self) -> ::std::vec::Vec<::nct::ParamGroup> {
                    let o = self.__nct_offsets();
                    let mut g = ::std::vec::Vec::new();
                    #( g.extend(::nct::params::nest_groups(::nct::Parametrised::param_groups(&self.#fields), #field_names, o[#idx])); )*
                    g
                }
            }
            impl ::core::fmt::Display for #name {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    let o = self.__nct_offsets();
                    writeln!(f, "{}: {}<{}>, {} layers, {} parameters", stringify!(#name), #kind_name, ::nct::Size::value(#flow_trait::<#dty>::dim(self)), #k, o[#k])?;
                    #( writeln!(f, "  {:<12} {:<36} {:>9} parameters", #field_names, #pretty, o[#idx + 1] - o[#idx])?; )*
                    Ok(())
                }
            }
        };
        let rev_idx: Vec<&syn::Index> = idx.iter().rev().collect();
        let rev_fields: Vec<&&Ident> = fields.iter().rev().collect();
        let body = match space {
            Space::Symplectic => {
                let trait_path = quote_spanned!(*space_span=> ::nct::SymplecticLayer<#dty>);
                let batched = if all_builtin {
                    quote! {
                        impl ::nct::BatchedSymplectic<#dty> for #name {
                            type BatchCache = ( #( <#tys as ::nct::BatchedSymplectic<#dty>>::BatchCache, )* );
                            fn forward_batch(&self, theta: &[f64], x: &::nct::PhaseBatch) -> (::nct::PhaseBatch, Self::BatchCache) {
                                let o = self.__nct_offsets();
                                let y = x.clone();
                                #( let (y, #fields) = ::nct::BatchedSymplectic::<#dty>::forward_batch(&self.#fields, &theta[o[#idx]..o[#idx + 1]], &y); )*
                                (y, ( #( #fields, )* ))
                            }
                            fn vjp_batch(&self, theta: &[f64], cache: &Self::BatchCache, ybar: &::nct::PhaseBatch, g: &mut [f64]) -> ::nct::PhaseBatch {
                                let o = self.__nct_offsets();
                                let bar = ybar.clone();
                                #( let bar = ::nct::BatchedSymplectic::<#dty>::vjp_batch(&self.#rev_fields, &theta[o[#rev_idx]..o[#rev_idx + 1]], &cache.#rev_idx, &bar, &mut g[o[#rev_idx]..o[#rev_idx + 1]]); )*
                                bar
                            }
                        }
                    }
                } else {
                    quote!()
                };
                quote! {
                    impl #trait_path for #name {
                        type Cache<D: ::nct::Scalar> = ( #( <#tys as ::nct::SymplecticLayer<#dty>>::Cache<D>, )* );
                        #dim_fn
                        fn forward<D: ::nct::Scalar>(&self, theta: &[f64], x: &::nct::PhasePoint<D, #dty>) -> (::nct::PhasePoint<D, #dty>, Self::Cache<D>) {
                            let o = self.__nct_offsets();
                            let y = x.clone();
                            #( let (y, #fields) = ::nct::SymplecticLayer::<#dty>::forward(&self.#fields, &theta[o[#idx]..o[#idx + 1]], &y); )*
                            (y, ( #( #fields, )* ))
                        }
                        fn inverse<D: ::nct::Scalar>(&self, theta: &[f64], y: &::nct::PhasePoint<D, #dty>) -> ::nct::PhasePoint<D, #dty> {
                            let o = self.__nct_offsets();
                            let x = y.clone();
                            #( let x = ::nct::SymplecticLayer::<#dty>::inverse(&self.#rev_fields, &theta[o[#rev_idx]..o[#rev_idx + 1]], &x); )*
                            x
                        }
                        fn vjp<D: ::nct::Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &::nct::PhasePoint<D, #dty>, g: &mut [D]) -> ::nct::PhasePoint<D, #dty> {
                            let o = self.__nct_offsets();
                            let bar = ybar.clone();
                            #( let bar = ::nct::SymplecticLayer::<#dty>::vjp(&self.#rev_fields, &theta[o[#rev_idx]..o[#rev_idx + 1]], &cache.#rev_idx, &bar, &mut g[o[#rev_idx]..o[#rev_idx + 1]]); )*
                            bar
                        }
                    }
                    #batched
                }
            }
            Space::Unitary => {
                let trait_path = quote_spanned!(*space_span=> ::nct::Bijector<#dty>);
                quote! {
                    impl #trait_path for #name {
                        type Cache<D: ::nct::Scalar> = ( #( <#tys as ::nct::Bijector<#dty>>::Cache<D>, )* );
                        #dim_fn
                        fn forward<D: ::nct::Scalar>(&self, theta: &[f64], x: &::nct::Vector<D, #dty>) -> (::nct::Vector<D, #dty>, D, Self::Cache<D>) {
                            let o = self.__nct_offsets();
                            let y = x.clone();
                            let mut ld = D::zero();
                            #( let (y, l, #fields) = ::nct::Bijector::<#dty>::forward(&self.#fields, &theta[o[#idx]..o[#idx + 1]], &y); ld += l; )*
                            (y, ld, ( #( #fields, )* ))
                        }
                        fn inverse<D: ::nct::Scalar>(&self, theta: &[f64], y: &::nct::Vector<D, #dty>) -> (::nct::Vector<D, #dty>, D) {
                            let o = self.__nct_offsets();
                            let x = y.clone();
                            let mut ld = D::zero();
                            #( let (x, l) = ::nct::Bijector::<#dty>::inverse(&self.#rev_fields, &theta[o[#rev_idx]..o[#rev_idx + 1]], &x); ld += l; )*
                            (x, ld)
                        }
                        fn vjp<D: ::nct::Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &::nct::Vector<D, #dty>, ldbar: D, g: &mut [D]) -> ::nct::Vector<D, #dty> {
                            let o = self.__nct_offsets();
                            let bar = ybar.clone();
                            #( let bar = ::nct::Bijector::<#dty>::vjp(&self.#rev_fields, &theta[o[#rev_idx]..o[#rev_idx + 1]], &cache.#rev_idx, &bar, ldbar, &mut g[o[#rev_idx]..o[#rev_idx + 1]]); )*
                            bar
                        }
                        fn forward_jets(&self, theta: &[f64], x: &::nct::JetBatch) -> ::core::option::Option<(::nct::JetBatch, ::nct::JetBatch)> {
                            let o = self.__nct_offsets();
                            let y = x.clone();
                            let mut ld = ::nct::JetBatch::constant(::nct::nalgebra::DMatrix::zeros(1, x.walkers()), x.vars());
                            #( let (y, l) = ::nct::Bijector::<#dty>::forward_jets(&self.#fields, &theta[o[#idx]..o[#idx + 1]], &y)?; ld.add_assign(&l); )*
                            ::core::option::Option::Some((y, ld))
                        }
                        fn forward_tape(&self, theta: &[f64], x: &::nct::nalgebra::DMatrix<f64>) -> ::core::option::Option<(::nct::nalgebra::DMatrix<f64>, ::std::vec::Vec<f64>, ::nct::BatchTape)> {
                            let o = self.__nct_offsets();
                            let y = x.clone();
                            let mut ld = ::std::vec![0.0; x.ncols()];
                            let mut tapes = ::std::vec::Vec::new();
                            #( let (y, l, t) = ::nct::Bijector::<#dty>::forward_tape(&self.#fields, &theta[o[#idx]..o[#idx + 1]], &y)?; ld.iter_mut().zip(l).for_each(|(a, b)| *a += b); tapes.push(t); )*
                            ::core::option::Option::Some((y, ld, ::nct::BatchTape::new(tapes)))
                        }
                        fn inverse_batch(&self, theta: &[f64], y: &::nct::nalgebra::DMatrix<f64>) -> ::core::option::Option<(::nct::nalgebra::DMatrix<f64>, ::std::vec::Vec<f64>)> {
                            let o = self.__nct_offsets();
                            let x = y.clone();
                            let mut ld = ::std::vec![0.0; y.ncols()];
                            #( let (x, l) = ::nct::Bijector::<#dty>::inverse_batch(&self.#rev_fields, &theta[o[#rev_idx]..o[#rev_idx + 1]], &x)?; ld.iter_mut().zip(l).for_each(|(a, b)| *a += b); )*
                            ::core::option::Option::Some((x, ld))
                        }
                        fn vjp_tape(&self, theta: &[f64], tape: &::nct::BatchTape, ybar: &::nct::nalgebra::DMatrix<f64>, ldbar: &[f64], g: &mut [f64]) -> ::nct::nalgebra::DMatrix<f64> {
                            let o = self.__nct_offsets();
                            let tapes: &::std::vec::Vec<::nct::BatchTape> = tape.get();
                            let bar = ybar.clone();
                            #( let bar = ::nct::Bijector::<#dty>::vjp_tape(&self.#rev_fields, &theta[o[#rev_idx]..o[#rev_idx + 1]], &tapes[#rev_idx], &bar, ldbar, &mut g[o[#rev_idx]..o[#rev_idx + 1]]); )*
                            bar
                        }
                    }
                }
            }
        };
        let errs = errors.into_iter().map(|e| e.to_compile_error());
        let _ = format_ident!("unused");
        quote! {
            #common
            #body
            #(#errs)*
        }
    }
}
