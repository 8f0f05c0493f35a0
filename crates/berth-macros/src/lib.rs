//! `#[berth::plugin]`: put it on `impl Plugin for YourType { ... }`.
//!
//! A plugin takes part in an extension point by defining that point's
//! method (`filter`, `score`, `permit`, ...). Listing the points by hand
//! as well would let the two disagree, and a plugin whose `filter` is never
//! called fails silently. This attribute reads the methods the impl block
//! defines and generates the list, so the list cannot be wrong.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ImplItem, ItemImpl};

/// Bit of each extension point, in the order of `berth_core::framework::ExtensionPoint`.
/// `berth-core` has a test that holds the two together.
const POINTS: &[(&str, u32)] = &[
    ("pre_enqueue", 1 << 0),
    ("less", 1 << 1),
    ("pre_filter", 1 << 2),
    ("filter", 1 << 3),
    ("post_filter", 1 << 4),
    ("pre_score", 1 << 5),
    ("score", 1 << 6),
    ("reserve", 1 << 7),
    ("unreserve", 1 << 7),
    ("permit", 1 << 8),
    ("pre_bind", 1 << 9),
    ("bind", 1 << 10),
    ("post_bind", 1 << 11),
    // Not points of their own: PreFilter's AddPod/RemovePod, Score's normalization.
    ("add_pod", 1 << 16),
    ("remove_pod", 1 << 16),
    ("normalize_score", 1 << 17),
    // Not an extension point of the configuration: groups (`pod_group`).
    ("pod_group", 1 << 18),
    ("pod_group_result", 1 << 18),
    // Not a point: more than a Filter rejection's reasons, for `why`.
    ("rejection_detail", 1 << 19),
    // Not a point: Filter's once-per-chunk preparation (`prepare_filter`).
    ("prepare_filter", 1 << 20),
];

const GENERATED: &str = "__extension_points";

/// Set in every generated list: tells a plugin without the attribute (whose
/// list is the trait's default, 0) from one that defines no point.
const MARKED: u32 = 1 << 31;

/// Derives the extension points of a plugin from the methods its
/// `impl Plugin for ...` block defines. See the crate documentation.
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new_spanned(attr, "#[plugin] takes no arguments").to_compile_error().into();
    }
    let mut block = parse_macro_input!(item as ItemImpl);
    if block.trait_.is_none() {
        return syn::Error::new_spanned(&block.self_ty, "#[plugin] goes on `impl Plugin for YourType { ... }`").to_compile_error().into();
    }
    let mut bits: u32 = MARKED;
    for item in &block.items {
        if let ImplItem::Fn(f) = item {
            let name = f.sig.ident.to_string();
            if name == GENERATED {
                return syn::Error::new_spanned(&f.sig.ident, "#[plugin] generates this method; remove it").to_compile_error().into();
            }
            for (method, bit) in POINTS {
                if *method == name {
                    bits |= bit;
                }
            }
        }
    }
    let generated: ImplItem = syn::parse_quote! {
        #[doc(hidden)]
        fn __extension_points(&self) -> u32 {
            #bits
        }
    };
    block.items.push(generated);
    quote!(#block).into()
}
