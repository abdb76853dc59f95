//! Rewriting of model bodies written "as if for f64" into scalar-generic code, and the scope check.
//!
//! * `sum(i in a..b) expr` becomes a loop accumulating `expr` (the summand runs to the end of the
//!   enclosing expression: to the next `;` or `,` at the same nesting level, or the end of the group).
//! * float literals become `D::from(lit)`; `expr as f64` becomes `D::from((expr) as f64)`;
//!   `std::f64::consts::X` / `f64::consts::X` become `D::from(...)`. Integer literals stay integers
//!   (indices, `powi` exponents); the arguments of `powf` and `powi` are left as written.
//! * Every lower-case name read in the body must be a parameter, an argument, a local binding or a
//!   loop / sum index in scope; anything else is a spanned error.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Expr, Pat};

/// Rewrite `sum(i in range) summand` in a token stream (recursively inside groups).
pub fn rewrite_sums(ts: TokenStream, zero: &TokenStream) -> syn::Result<TokenStream> {
    let toks: Vec<TokenTree> = ts.into_iter().collect();
    let mut out = TokenStream::new();
    let mut i = 0;
    while i < toks.len() {
        let tt = &toks[i];
        if let TokenTree::Ident(id) = tt {
            if id == "sum" {
                if let Some(TokenTree::Group(g)) = toks.get(i + 1) {
                    if g.delimiter() == Delimiter::Parenthesis {
                        if let Some((var, range)) = split_in(g.stream()) {
                            // Summand: up to `;` or `,` at this level, or the end.
                            let mut j = i + 2;
                            let mut summand = TokenStream::new();
                            while j < toks.len() {
                                if let TokenTree::Punct(p) = &toks[j] {
                                    if p.as_char() == ';' || p.as_char() == ',' {
                                        break;
                                    }
                                }
                                summand.extend(std::iter::once(toks[j].clone()));
                                j += 1;
                            }
                            if summand.is_empty() {
                                return Err(syn::Error::new(id.span(), "`sum(i in a..b)` needs a summand after it, e.g. `sum(i in 0..N) q[i] * q[i]`"));
                            }
                            let summand = rewrite_sums(summand, zero)?;
                            let range = rewrite_sums(range, zero)?;
                            let acc = Ident::new("__nct_sum", Span::mixed_site());
                            let span = id.span();
                            out.extend(quote_spanned! {span=> {
                                let mut #acc = #zero;
                                #[allow(unused_variables)]
                                for #var in #range { #acc += #summand; }
                                #acc
                            }});
                            i = j;
                            continue;
                        }
                    }
                }
            }
        }
        match tt {
            TokenTree::Group(g) => {
                let inner = rewrite_sums(g.stream(), zero)?;
                let mut ng = Group::new(g.delimiter(), inner);
                ng.set_span(g.span());
                out.extend(std::iter::once(TokenTree::Group(ng)));
            }
            other => out.extend(std::iter::once(other.clone())),
        }
        i += 1;
    }
    Ok(out)
}

/// `i in range` -> (i, range).
fn split_in(ts: TokenStream) -> Option<(Ident, TokenStream)> {
    let toks: Vec<TokenTree> = ts.into_iter().collect();
    match (toks.first(), toks.get(1)) {
        (Some(TokenTree::Ident(v)), Some(TokenTree::Ident(kw))) if kw == "in" => Some((v.clone(), toks[2..].iter().cloned().collect())),
        _ => None,
    }
}

/// Lift float literals, `as f64` casts and f64 constants into the scalar type `D`.
pub struct Lift;

impl VisitMut for Lift {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Lit(l) if matches!(l.lit, syn::Lit::Float(_)) => {
                let lit = &l.lit;
                *e = syn::parse_quote_spanned! {lit.span()=> <D as ::core::convert::From<f64>>::from(#lit) };
            }
            Expr::Cast(c) if is_f64(&c.ty) => {
                let inner = &c.expr;
                *e = syn::parse_quote! { <D as ::core::convert::From<f64>>::from((#inner) as f64) };
            }
            Expr::Path(p) if p.qself.is_none() && is_f64_const(&p.path) => {
                let path = &p.path;
                *e = syn::parse_quote! { <D as ::core::convert::From<f64>>::from(#path) };
            }
            Expr::MethodCall(m) if m.method == "powf" || m.method == "powi" => {
                self.visit_expr_mut(&mut m.receiver);
            }
            _ => syn::visit_mut::visit_expr_mut(self, e),
        }
    }
}

fn is_f64(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.path.is_ident("f64"))
}

fn is_f64_const(path: &syn::Path) -> bool {
    let segs: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let n = segs.len();
    n >= 3 && segs[n - 3] == "f64" && segs[n - 2] == "consts"
}

/// Scope checker: every lower-case single-segment path read in the body must be known.
pub struct ScopeCheck<'a> {
    scopes: Vec<Vec<String>>,
    /// Names that were bound by a `sum` or `for` that has ended (for a better message).
    closed: Vec<(String, Span)>,
    pub params: &'a [String],
    pub args: &'a [String],
    pub errors: Vec<syn::Error>,
}

impl<'a> ScopeCheck<'a> {
    pub fn new(params: &'a [String], args: &'a [String]) -> Self {
        Self { scopes: vec![Vec::new()], closed: Vec::new(), params, args, errors: Vec::new() }
    }
    fn known(&self, name: &str) -> bool {
        self.params.iter().any(|p| p == name) || self.args.iter().any(|a| a == name) || self.scopes.iter().any(|s| s.iter().any(|v| v == name))
    }
    fn bind_pat(&mut self, pat: &Pat) {
        let mut names = Vec::new();
        collect_pat(pat, &mut names);
        self.scopes.last_mut().expect("scope").extend(names);
    }
    fn close(&mut self) {
        if let Some(s) = self.scopes.pop() {
            self.closed.extend(s.into_iter().map(|n| (n, Span::call_site())));
        }
    }
}

fn collect_pat(pat: &Pat, out: &mut Vec<String>) {
    match pat {
        Pat::Ident(i) => {
            out.push(i.ident.to_string());
            if let Some((_, sub)) = &i.subpat {
                collect_pat(sub, out);
            }
        }
        Pat::Tuple(t) => t.elems.iter().for_each(|p| collect_pat(p, out)),
        Pat::TupleStruct(t) => t.elems.iter().for_each(|p| collect_pat(p, out)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| collect_pat(&f.pat, out)),
        Pat::Slice(s) => s.elems.iter().for_each(|p| collect_pat(p, out)),
        Pat::Reference(r) => collect_pat(&r.pat, out),
        Pat::Type(t) => collect_pat(&t.pat, out),
        Pat::Or(o) => o.cases.iter().for_each(|p| collect_pat(p, out)),
        Pat::Paren(p) => collect_pat(&p.pat, out),
        Pat::Guard(g) => collect_pat(&g.pat, out),
        _ => {}
    }
}

impl<'ast> Visit<'ast> for ScopeCheck<'_> {
    fn visit_block(&mut self, b: &'ast syn::Block) {
        self.scopes.push(Vec::new());
        syn::visit::visit_block(self, b);
        self.scopes.pop();
    }
    fn visit_local(&mut self, l: &'ast syn::Local) {
        if let Some(init) = &l.init {
            self.visit_expr(&init.expr);
            if let Some((_, e)) = &init.diverge {
                self.visit_expr(e);
            }
        }
        self.bind_pat(&l.pat);
    }
    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.visit_expr(&f.expr);
        self.scopes.push(Vec::new());
        self.bind_pat(&f.pat);
        self.visit_block(&f.body);
        self.close();
    }
    fn visit_expr_closure(&mut self, c: &'ast syn::ExprClosure) {
        self.scopes.push(Vec::new());
        for p in &c.inputs {
            self.bind_pat(p);
        }
        self.visit_expr(&c.body);
        self.scopes.pop();
    }
    fn visit_arm(&mut self, a: &'ast syn::Arm) {
        self.scopes.push(Vec::new());
        self.bind_pat(&a.pat);
        if let Pat::Guard(g) = &a.pat {
            self.visit_expr(&g.guard);
        }
        self.visit_expr(&a.body);
        self.scopes.pop();
    }
    fn visit_expr_let(&mut self, l: &'ast syn::ExprLet) {
        self.visit_expr(&l.expr);
        self.bind_pat(&l.pat);
    }
    fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
        if !matches!(&*c.func, Expr::Path(_)) {
            self.visit_expr(&c.func);
        }
        for a in &c.args {
            self.visit_expr(a);
        }
    }
    fn visit_macro(&mut self, _: &'ast syn::Macro) {}
    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        if p.qself.is_some() || p.path.segments.len() != 1 {
            return;
        }
        let id = &p.path.segments[0].ident;
        let name = id.to_string();
        let lower = name.chars().next().is_some_and(|c| c.is_lowercase() || c == '_');
        if !lower || name == "self" || name.starts_with("__nct") || self.known(&name) {
            return;
        }
        let msg = if self.closed.iter().any(|(n, _)| n == &name) {
            format!("index variable `{name}` is out of scope here: it is bound only inside its `sum(...)` or `for` loop")
        } else {
            let mut known: Vec<String> = self.params.to_vec();
            known.extend(self.args.iter().cloned());
            format!("`{name}` is not declared: the body can use the parameters and arguments [{}], local `let` bindings and loop or sum indices", known.join(", "))
        };
        self.errors.push(syn::Error::new(id.span(), msg));
    }
}

/// Zero of the scalar type, as tokens.
pub fn zero() -> TokenStream {
    quote! { D::zero() }
}
