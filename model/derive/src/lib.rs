//! `#[derive(Fields)]` for auditloop's event model: every named field of a model struct becomes a field
//! descriptor (name, type, doc comment, the event kinds it applies to, and a getter from an `Event`), so
//! the rules engine, the field reference and exports learn a new model field from the compiler alone.
//!
//! This crate only generates code inside `auditloop-model`; its output names `crate::` paths of that crate
//! and must not be used elsewhere.
//!
//! ```ignore
//! #[derive(Fields)]
//! #[fields(prefix = "exec", kind = Exec)]   // a body: read through `EventBody::Exec`, applies to `exec` only
//! pub struct Exec { /// Filename as passed to the syscall.
//!     pub filename: String, … }
//! #[derive(Fields)]
//! #[fields(prefix = "proc", at = process)]  // a part of every event: read through `event.process`
//! pub struct Process { #[field(name = "user.uid")] pub uid: u32, … }
//! ```
//!
//! Field attributes: `#[field(skip)]`, `#[field(rename = "x")]` (the name after the prefix),
//! `#[field(name = "a.b")]` (the whole name), `#[field(absent_if_empty)]` (an empty text value is absent),
//! `#[field(doc = "…")]` (instead of the doc comment).

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{Data, DeriveInput, Fields as SynFields, Ident, LitStr, parse_macro_input};

/// Derives `pub const FIELDS: &'static [crate::field::FieldDesc]` for a model struct.
#[proc_macro_derive(Fields, attributes(fields, field))]
pub fn derive_fields(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// Where a struct's values are found in an `Event`.
enum Source {
    /// The `Event` itself.
    Event,
    /// A field of the `Event` (such as `process`).
    At(Ident),
    /// The body of this `EventBody` variant.
    Kind(Ident),
}

struct FieldOpts {
    skip: bool,
    rename: Option<String>,
    name: Option<String>,
    absent_if_empty: bool,
    doc: Option<String>,
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let ty = &input.ident;
    let mut prefix: Option<String> = None;
    let mut source = Source::Event;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("fields")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("prefix") {
                prefix = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("kind") {
                source = Source::Kind(meta.value()?.parse::<Ident>()?);
            } else if meta.path.is_ident("at") {
                source = Source::At(meta.value()?.parse::<Ident>()?);
            } else {
                return Err(meta.error("expected `prefix`, `kind` or `at`"));
            }
            Ok(())
        })?;
    }
    let prefix = prefix.ok_or_else(|| {
        syn::Error::new(Span::call_site(), "#[fields(prefix = \"…\")] is required")
    })?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            ty,
            "Fields derives only on structs",
        ));
    };
    let SynFields::Named(named) = &data.fields else {
        return Err(syn::Error::new_spanned(ty, "Fields needs named fields"));
    };
    let kinds = match &source {
        Source::Kind(variant) => quote! { &[crate::EventKind::#variant] },
        Source::Event | Source::At(_) => quote! { &[] },
    };
    let mut descs = Vec::new();
    for field in &named.named {
        let opts = field_opts(field)?;
        if opts.skip {
            continue;
        }
        let Some(ident) = &field.ident else {
            continue;
        };
        let name = match (&opts.name, &opts.rename) {
            (Some(full), _) => full.clone(),
            (None, Some(rename)) => format!("{prefix}.{rename}"),
            (None, None) => format!("{prefix}.{ident}"),
        };
        let doc = match opts.doc {
            Some(doc) => doc,
            None => doc_comment(&field.attrs),
        };
        let doc = if opts.absent_if_empty {
            format!("{doc} (Absent when empty.)")
        } else {
            doc
        };
        if doc.is_empty() {
            return Err(syn::Error::new_spanned(
                ident,
                "a model field needs a doc comment (it is the rule field's documentation)",
            ));
        }
        let field_ty = &field.ty;
        let value = quote! { crate::field::Field::value(&b.#ident) };
        let value = if opts.absent_if_empty {
            quote! { #value.filter(|v| !v.is_empty_text()) }
        } else {
            value
        };
        let get = match &source {
            Source::Event => quote! { |ev: &crate::Event| { let b = ev; #value } },
            Source::At(part) => quote! { |ev: &crate::Event| { let b = &ev.#part; #value } },
            Source::Kind(variant) => quote! {
                |ev: &crate::Event| {
                    if let crate::EventBody::#variant(b) = &ev.event { #value } else { None }
                }
            },
        };
        descs.push(quote! {
            crate::field::FieldDesc {
                name: #name,
                doc: #doc,
                ty: <#field_ty as crate::field::Field>::TYPE,
                kinds: #kinds,
                values: <#field_ty as crate::field::Field>::VALUES,
                get: #get,
            }
        });
    }
    Ok(quote! {
        impl #ty {
            /// The rule fields of this type, one per model field (generated by `#[derive(Fields)]`).
            pub const FIELDS: &'static [crate::field::FieldDesc] = &[#(#descs),*];
        }
    })
}

fn field_opts(field: &syn::Field) -> syn::Result<FieldOpts> {
    let mut opts = FieldOpts {
        skip: false,
        rename: None,
        name: None,
        absent_if_empty: false,
        doc: None,
    };
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("field")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                opts.skip = true;
            } else if meta.path.is_ident("absent_if_empty") {
                opts.absent_if_empty = true;
            } else if meta.path.is_ident("rename") {
                opts.rename = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("name") {
                opts.name = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("doc") {
                opts.doc = Some(meta.value()?.parse::<LitStr>()?.value());
            } else {
                return Err(meta.error(
                    "expected `skip`, `absent_if_empty`, `rename = \"…\"`, `name = \"…\"` or `doc = \"…\"`",
                ));
            }
            Ok(())
        })?;
    }
    Ok(opts)
}

/// The doc comment's lines joined by spaces.
fn doc_comment(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
        {
            lines.push(s.value().trim().to_owned());
        }
    }
    lines.join(" ").trim().to_owned()
}
