//! Workspaces: the switcher in the header, the settings page (rename, new workspace, leave),
//! and what a person who belongs to none sees.

use leptos::prelude::*;
use shortlink::workspace::Permission;

use crate::i18n::{t, t_string, tu_string, use_i18n};
use crate::nav::{Page, go};
use crate::widgets::flash;
use crate::{Auth, Flash, api};

const NEW: &str = "new";

/// A labelled `<select>` of the person's workspaces, and "New workspace…" (the settings
/// page) for people who own one. Choosing one moves the session there; the page then loads that workspace's data.
#[component]
pub fn Switcher() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let flash_text = expect_context::<Flash>().0;
    let location = expect_context::<crate::nav::Location>();
    let page = location.0;
    let busy = RwSignal::new(false);
    let shown = move || {
        auth.0.with(|s| {
            s.as_ref()
                .and_then(|s| s.workspace.as_ref())
                .map_or_else(String::new, |w| w.id.to_string())
        })
    };
    let select = NodeRef::<leptos::html::Select>::new();
    let owns = Memo::new(move |_| auth.owns_a_workspace());
    let on_change = move |ev: leptos::ev::Event| {
        let chosen = event_target_value(&ev);
        // The select keeps showing the workspace the page shows until the switch is done.
        let keep = move || {
            if let Some(select) = select.get_untracked() {
                select.set_value(&shown());
            }
        };
        if chosen == NEW {
            keep();
            go(&Page::Settings);
            return;
        }
        let (Some(session), Ok(id)) = (auth.session(), chosen.parse::<i64>()) else {
            return;
        };
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::switch_workspace(&session, id).await {
                Ok(now) => {
                    let name = now
                        .workspace
                        .as_ref()
                        .map(|w| w.name.clone())
                        .unwrap_or_default();
                    // A link's page belongs to the workspace left behind.
                    if matches!(page.get_untracked(), Page::Link { .. }) {
                        location.go(&Page::Links);
                    }
                    auth.set(Some(now));
                    flash(flash_text, tu_string!(i18n, workspaces.now_in, name));
                }
                Err(err) => {
                    keep();
                    flash(flash_text, err.message);
                }
            }
            busy.set(false);
        });
    };
    view! {
        <div class="switcher">
            <label for="workspace-switch" class="visually-hidden">{t!(i18n, workspaces.switcher)}</label>
            <select id="workspace-switch" node_ref=select on:change=on_change prop:value=shown
                disabled=move || busy.get()>
                {move || auth.0.with(|s| s.as_ref().map(|s| s.workspaces.iter().map(|w| {
                    view! { <option value=w.id.to_string()>{w.name.clone()}</option> }
                }).collect_view()))}
                {move || owns.get().then(|| view! {
                    <option value=NEW>{t!(i18n, workspaces.new_option)}</option>
                })}
            </select>
        </div>
    }
}

/// What a person who belongs to no workspace (removed from the last one) sees: owning none,
/// they cannot make one, and are told to ask for an invitation.
#[component]
pub fn NoWorkspace() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <section class="page" aria-labelledby="none-title">
            <h1 id="none-title">{t!(i18n, workspaces.none_title)}</h1>
            <p>{t!(i18n, workspaces.none_text)}</p>
        </section>
    }
}

/// The settings page: rename the workspace (owners), make a new one (people who own one),
/// leave this one.
#[component]
pub fn Settings() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    // Drawn again for another workspace, not for a new name: a rename keeps its form, with
    // its message and the focus.
    let current = Memo::new(move |_| {
        auth.0
            .with(|s| s.as_ref().and_then(|s| s.workspace.as_ref().map(|w| w.id)))
    });
    // Drawn again only when this changes, not on every refresh of the session: the form
    // keeps what is typed in it.
    let owns = Memo::new(move |_| auth.owns_a_workspace());
    let name = move || {
        auth.0.with_untracked(|s| {
            s.as_ref()
                .and_then(|s| s.workspace.as_ref().map(|w| w.name.clone()))
        })
    };
    view! {
        <section class="page" aria-labelledby="settings-title">
            <div class="page-head">
                <h1 id="settings-title">{t!(i18n, workspaces.settings_title)}</h1>
            </div>
            {move || current.get().map(|_| view! {
                <NameForm current=name()/>
            })}
            {move || owns.get().then(|| view! { <NameForm current=None/> })}
            {move || current.get().is_some().then(|| view! { <Leave/> })}
        </section>
    }
}

/// Renaming the workspace (`current`: its name; owners only), or making a new one (`None`):
/// one form for both, as they differ only in words.
#[component]
fn NameForm(current: Option<String>) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let renaming = current.is_some();
    let value = RwSignal::new(current.unwrap_or_default());
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let allowed = move || !renaming || auth.permits(Permission::Own);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let Some(session) = auth.session() else {
            return;
        };
        let name = value.get_untracked().trim().to_owned();
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            let done = if renaming {
                api::rename_workspace(&session, name.clone())
                    .await
                    .map(|()| tu_string!(i18n, workspaces.renamed, name))
            } else {
                api::create_workspace(&session, name).await.map(|created| {
                    value.set(String::new());
                    tu_string!(i18n, workspaces.created, name = created.name)
                })
            };
            match done {
                Ok(text) => {
                    flash(notice, text);
                    auth.refresh();
                }
                Err(err) => error.set(Some(err.message)),
            }
            busy.set(false);
        });
    };
    let (title, label, button) = if renaming {
        (
            t_string!(i18n, workspaces.this_title),
            t_string!(i18n, workspaces.name_label),
            t_string!(i18n, workspaces.rename),
        )
    } else {
        (
            t_string!(i18n, workspaces.new_title),
            t_string!(i18n, workspaces.new_label),
            t_string!(i18n, workspaces.create),
        )
    };
    let id = if renaming {
        "workspace-name"
    } else {
        "new-workspace-name"
    };
    view! {
        <form class="panel settings-form" on:submit=submit aria-labelledby=format!("{id}-title") novalidate>
            <h2 id=format!("{id}-title")>{title}</h2>
            <div class="field">
                <label for=id>{label}</label>
                <input id=id bind:value=value disabled=move || !allowed()
                    aria-invalid=move || error.with(Option::is_some).to_string()
                    aria-describedby=format!("{id}-error {id}-hint")/>
                <p class="hint" id=format!("{id}-hint")>
                    {move || match (renaming, allowed()) {
                        (false, _) => t_string!(i18n, workspaces.hint_new),
                        (true, true) => t_string!(i18n, workspaces.hint_rename),
                        (true, false) => t_string!(i18n, workspaces.hint_owner_only),
                    }}
                </p>
                <p class="field-error" id=format!("{id}-error") role="alert">{move || error.get()}</p>
            </div>
            <p class="notice" role="status">{move || notice.get()}</p>
            {move || allowed().then(|| view! {
                <div class="buttons">
                    <button type="submit" class="primary" disabled=move || busy.get()>{button}</button>
                </div>
            })}
        </form>
    }
}

/// Leaving the workspace (removing oneself); the last owner cannot (the origin says so).
#[component]
fn Leave() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let asking = RwSignal::new(false);
    let (user_id, username) = auth
        .session()
        .map(|s| (s.user_id, s.username))
        .unwrap_or_default();
    let notice = RwSignal::new(None);
    let reload = RwSignal::new(0);
    view! {
        <section class="panel" aria-labelledby="leave-title">
            <h2 id="leave-title">{t!(i18n, workspaces.leave_title)}</h2>
            <p class="hint">{t!(i18n, workspaces.leave_hint)}</p>
            <div class="buttons">
                <button class="danger" on:click=move |_| asking.set(true)>{t!(i18n, workspaces.leave)}</button>
            </div>
            {move || asking.get().then(|| view! {
                <crate::pages::members::RemoveMember user_id=user_id username=username.clone()
                    notice=notice reload=reload on_close=Callback::new(move |()| asking.set(false))/>
            })}
        </section>
    }
}
