//! Workspaces: the switcher in the header, the settings page (rename, new workspace, leave),
//! and what a person who belongs to none sees.

use leptos::prelude::*;
use shortlink::workspace::Permission;

use crate::api::ApiError;
use crate::nav::{Page, go};
use crate::widgets::{ConfirmDialog, flash};
use crate::{Auth, Flash, api};

const NEW: &str = "new";

/// A labelled `<select>` of the person's workspaces, and "New workspace…" (the settings
/// page). Choosing one moves the session there; the page then loads that workspace's data.
#[component]
pub fn Switcher() -> impl IntoView {
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
                    flash(flash_text, format!("Now working in “{name}”."));
                }
                Err(err) => {
                    auth.check(&err);
                    keep();
                    flash(flash_text, err.message);
                }
            }
            busy.set(false);
        });
    };
    view! {
        <div class="switcher">
            <label for="workspace-switch" class="visually-hidden">"Workspace"</label>
            <select id="workspace-switch" node_ref=select on:change=on_change prop:value=shown
                disabled=move || busy.get()>
                {move || auth.0.with(|s| s.as_ref().map(|s| s.workspaces.iter().map(|w| {
                    view! { <option value=w.id.to_string()>{w.name.clone()}</option> }
                }).collect_view()))}
                <option value=NEW>"New workspace…"</option>
            </select>
        </div>
    }
}

/// A person who belongs to no workspace (removed from the last one) can make one.
#[component]
pub fn NoWorkspace() -> impl IntoView {
    view! {
        <section class="page" aria-labelledby="none-title">
            <h1 id="none-title">"No workspace"</h1>
            <p>"You are not a member of any workspace. Make one, or ask an admin for an invitation."</p>
            <NewWorkspace/>
        </section>
    }
}

/// The settings page: rename the workspace (owners), make a new one, leave this one.
#[component]
pub fn Settings() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let current = move || {
        auth.0
            .with(|s| s.as_ref().and_then(|s| s.workspace.clone()))
    };
    view! {
        <section class="page" aria-labelledby="settings-title">
            <div class="page-head">
                <h1 id="settings-title">"Settings"</h1>
            </div>
            {move || current().map(|workspace| view! {
                <Rename name=workspace.name/>
            })}
            <NewWorkspace/>
            {move || current().map(|workspace| view! { <Leave name=workspace.name/> })}
        </section>
    }
}

#[component]
fn Rename(name: String) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let value = RwSignal::new(name);
    let error = RwSignal::new(None::<ApiError>);
    let notice = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let owner = move || auth.permits(Permission::Own);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let Some(session) = auth.session() else {
            return;
        };
        let name = value.get_untracked().trim().to_owned();
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::rename_workspace(&session, name.clone()).await {
                Ok(()) => {
                    flash(notice, format!("Renamed to “{name}”."));
                    auth.refresh();
                }
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err));
                }
            }
            busy.set(false);
        });
    };
    view! {
        <form class="panel settings-form" on:submit=submit aria-labelledby="rename-title" novalidate>
            <h2 id="rename-title">"This workspace"</h2>
            <div class="field">
                <label for="workspace-name">"Workspace name"</label>
                <input id="workspace-name" name="name" bind:value=value disabled=move || !owner()
                    aria-describedby="workspace-name-error workspace-name-hint"/>
                <p class="hint" id="workspace-name-hint">
                    {move || if owner() { "Every member sees the new name." } else { "Only an owner can rename the workspace." }}
                </p>
                <p class="field-error" id="workspace-name-error" role="alert">
                    {move || error.with(|e| e.as_ref().map(|e| e.message.clone()))}
                </p>
            </div>
            <p class="notice" role="status">{move || notice.get()}</p>
            {move || owner().then(|| view! {
                <div class="buttons">
                    <button type="submit" class="primary" disabled=move || busy.get()>"Rename"</button>
                </div>
            })}
        </form>
    }
}

#[component]
fn NewWorkspace() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let value = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let Some(session) = auth.session() else {
            return;
        };
        let name = value.get_untracked().trim().to_owned();
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::create_workspace(&session, name).await {
                Ok(workspace) => {
                    value.set(String::new());
                    flash(
                        notice,
                        format!(
                            "Created “{}”. Choose it in the workspace menu to work in it.",
                            workspace.name
                        ),
                    );
                    auth.refresh();
                }
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err.message));
                }
            }
            busy.set(false);
        });
    };
    view! {
        <form class="panel settings-form" on:submit=submit aria-labelledby="new-workspace-title" novalidate>
            <h2 id="new-workspace-title">"New workspace"</h2>
            <div class="field">
                <label for="new-workspace-name">"Name of the new workspace"</label>
                <input id="new-workspace-name" name="new-name" bind:value=value
                    aria-describedby="new-workspace-error"/>
                <p class="hint">"You will be its owner. Links, keys and members are separate in each workspace."</p>
                <p class="field-error" id="new-workspace-error" role="alert">{move || error.get()}</p>
            </div>
            <p class="notice" role="status">{move || notice.get()}</p>
            <div class="buttons">
                <button type="submit" class="primary" disabled=move || busy.get()>"Create workspace"</button>
            </div>
        </form>
    }
}

/// Leaving the workspace (removing oneself); the last owner cannot (the origin says so).
#[component]
fn Leave(name: String) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let location = expect_context::<crate::nav::Location>();
    let asking = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let confirm = Callback::new(move |()| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::remove_member(&session, session.user_id).await {
                Ok(()) => {
                    asking.set(false);
                    location.go(&Page::Overview);
                    auth.refresh();
                }
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err.message));
                }
            }
            busy.set(false);
        });
    });
    let text = format!(
        "You lose access to the links, keys and statistics of “{name}” until someone invites you again."
    );
    view! {
        <section class="panel" aria-labelledby="leave-title">
            <h2 id="leave-title">"Leave this workspace"</h2>
            <p class="hint">"A workspace keeps at least one owner: make someone else owner before leaving it."</p>
            <div class="buttons">
                <button class="danger" on:click=move |_| { error.set(None); asking.set(true) }>"Leave workspace"</button>
            </div>
            {move || asking.get().then(|| view! {
                <ConfirmDialog title=format!("Leave “{name}”?") text=text.clone() confirm="Leave".to_owned()
                    busy=busy error=error on_confirm=confirm on_cancel=Callback::new(move |()| asking.set(false))/>
            })}
        </section>
    }
}
