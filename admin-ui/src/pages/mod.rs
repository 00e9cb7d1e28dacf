//! One module per screen of the dashboard.

pub mod abuse;
pub mod audit;
pub mod import;
pub mod invite;
pub mod keys;
pub mod link_form;
pub mod link_rules;
pub mod link_stats;
pub mod links;
pub mod members;
pub mod overview;
pub mod profile;
pub mod sign_in;
pub mod stats_view;
pub mod webhooks;
pub mod workspaces;

// Every page but the links list is a chunk of the .wasm, fetched the first time it is shown,
// and so are the link form and the QR and delete dialogs (`wasm_split`: the build's wasm-split step cuts
// them out at these functions; see `xtask/src/ui.rs`). The main module holds the shell, the
// links list, the API calls and both languages, so the links page needs no second fetch;
// `crate::lazy_page` fetches a chunk (`*_chunk`), then draws its page (`*_page`), or says it
// could not be fetched.

use leptos::prelude::*;
use leptos::wasm_split::{SplitLoaderError, wasm_split};
use shortlink::api::Link;

/// A chunk of the dashboard could not be fetched: the network failed, or the dashboard was
/// updated since this page was loaded and the old chunks are gone.
#[derive(Debug, Clone, Copy)]
pub struct ChunkMissing;

impl From<SplitLoaderError> for ChunkMissing {
    fn from(_: SplitLoaderError) -> Self {
        Self
    }
}

type Lazy = Result<AnyView, ChunkMissing>;

#[wasm_split(overview, wasm_split_path = ::leptos::wasm_split, fallible, preload(overview_chunk))]
pub fn overview_page() -> Lazy {
    Ok(view! { <overview::Overview/> }.into_any())
}

#[wasm_split(sign_in, wasm_split_path = ::leptos::wasm_split, fallible, preload(sign_in_chunk))]
pub fn sign_in_page() -> Lazy {
    Ok(view! { <sign_in::SignIn/> }.into_any())
}

#[wasm_split(delete_dialog, wasm_split_path = ::leptos::wasm_split, fallible, preload(delete_dialog_chunk))]
pub fn delete_dialog(link: Link, on_deleted: Callback<String>) -> Lazy {
    Ok(view! { <links::ConfirmDelete link=link on_deleted=on_deleted/> }.into_any())
}

#[wasm_split(qr, wasm_split_path = ::leptos::wasm_split, fallible, preload(qr_chunk))]
pub fn qr_dialog(link: Link) -> Lazy {
    Ok(view! { <links::QrDialog link=link/> }.into_any())
}

#[wasm_split(link_form, wasm_split_path = ::leptos::wasm_split, fallible, preload(link_form_chunk))]
pub fn link_form(
    mode: link_form::FormMode,
    on_saved: Callback<(Link, bool)>,
    on_cancel: Callback<()>,
) -> Lazy {
    Ok(view! { <link_form::LinkForm mode=mode on_saved=on_saved on_cancel=on_cancel/> }.into_any())
}

#[wasm_split(link_stats, wasm_split_path = ::leptos::wasm_split, fallible, preload(link_stats_chunk))]
pub fn link_stats_page(code: String, id: Option<i64>) -> Lazy {
    Ok(view! { <link_stats::LinkStats code=code id=id/> }.into_any())
}

#[wasm_split(members, wasm_split_path = ::leptos::wasm_split, fallible, preload(members_chunk))]
pub fn members_page() -> Lazy {
    Ok(view! { <members::Members/> }.into_any())
}

#[wasm_split(invite, wasm_split_path = ::leptos::wasm_split, fallible, preload(invite_chunk))]
pub fn invite_page() -> Lazy {
    Ok(view! { <invite::Invite/> }.into_any())
}

#[wasm_split(keys, wasm_split_path = ::leptos::wasm_split, fallible, preload(keys_chunk))]
pub fn keys_page() -> Lazy {
    Ok(view! { <keys::Keys/> }.into_any())
}

#[wasm_split(audit, wasm_split_path = ::leptos::wasm_split, fallible, preload(audit_chunk))]
pub fn audit_page() -> Lazy {
    Ok(view! { <audit::Audit/> }.into_any())
}

#[wasm_split(profile, wasm_split_path = ::leptos::wasm_split, fallible, preload(profile_chunk))]
pub fn profile_page() -> Lazy {
    Ok(view! { <profile::Profile/> }.into_any())
}

#[wasm_split(settings, wasm_split_path = ::leptos::wasm_split, fallible, preload(settings_chunk))]
pub fn settings_page() -> Lazy {
    Ok(view! { <workspaces::Settings/> }.into_any())
}

#[wasm_split(no_workspace, wasm_split_path = ::leptos::wasm_split, fallible, preload(no_workspace_chunk))]
pub fn no_workspace_page() -> Lazy {
    Ok(view! { <workspaces::NoWorkspace/> }.into_any())
}

#[wasm_split(abuse, wasm_split_path = ::leptos::wasm_split, fallible, preload(abuse_chunk))]
pub fn abuse_page() -> Lazy {
    Ok(view! { <abuse::Abuse/> }.into_any())
}

#[wasm_split(import, wasm_split_path = ::leptos::wasm_split, fallible, preload(import_chunk))]
pub fn import_page() -> Lazy {
    Ok(view! { <import::ImportExport/> }.into_any())
}

#[wasm_split(webhooks, wasm_split_path = ::leptos::wasm_split, fallible, preload(webhooks_chunk))]
pub fn webhooks_page() -> Lazy {
    Ok(view! { <webhooks::Webhooks/> }.into_any())
}
