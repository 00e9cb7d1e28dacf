//! The workspace's API keys: what each may do, when it was last used; making one shows its
//! secret once; revoking one (after asking) makes it fail at once. Admins and owners only.

use leptos::prelude::*;
use shortlink::workspace::{ApiKey, CreateApiKey, CreatedApiKey, Permission, Scope};
use time::OffsetDateTime;

use crate::api::ApiError;
use crate::range::date_time;
use crate::widgets::{ConfirmDialog, ErrorBox, Refused, ShownOnce, flash};
use crate::{Auth, api};

fn scope_text(scope: Scope) -> &'static str {
    match scope {
        Scope::LinksRead => "read links",
        Scope::LinksWrite => "create, edit and delete links",
        Scope::StatsRead => "read statistics",
        Scope::WorkspaceAdmin => "manage keys and members, read the audit log",
    }
}

#[component]
pub fn Keys() -> impl IntoView {
    let auth = expect_context::<Auth>();
    if !auth.permits(Permission::Administer) {
        return view! {
            <section class="page" aria-labelledby="keys-title">
                <h1 id="keys-title">"API keys"</h1>
                <Refused role=auth.role() what="managing API keys"/>
            </section>
        }
        .into_any();
    }
    let reload = RwSignal::new(0_u32);
    let notice = RwSignal::new(None::<String>);
    let creating = RwSignal::new(false);
    let created = RwSignal::new(None::<CreatedApiKey>);
    let revoking = RwSignal::new(None::<ApiKey>);
    let keys = crate::widgets::load_json::<Vec<ApiKey>>(move || {
        reload.track();
        "/api/v1/keys".to_owned()
    });
    let on_created = Callback::new(move |key: CreatedApiKey| {
        creating.set(false);
        created.set(Some(key));
        reload.update(|n| *n += 1);
    });
    view! {
        <section class="page" aria-labelledby="keys-title">
            <div class="page-head">
                <h1 id="keys-title">"API keys"</h1>
                <button class="primary" on:click=move |_| { created.set(None); creating.set(true) }>"New key"</button>
            </div>
            <p class="notice" role="status" aria-live="polite">{move || notice.get()}</p>
            {move || creating.get().then(|| view! {
                <KeyForm on_created=on_created on_cancel=Callback::new(move |()| creating.set(false))/>
            })}
            {move || created.get().map(|key| view! {
                <ShownOnce label=format!("Secret of the key “{}”", key.api_key.name) value=key.key
                    hint="Copy it now: it is shown only once. Scripts send it as “Authorization: Bearer <key>”.".to_owned()
                    on_done=Callback::new(move |()| created.set(None))/>
            })}
            {move || match keys.get() {
                None => view! { <p class="loading">"Loading keys…"</p> }.into_any(),
                Some(Err(err)) => view! { <ErrorBox message=err.message reload=reload/> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="empty">"No API keys yet."</p> }.into_any(),
                Some(Ok(list)) => view! {
                    <div class="table-wrap">
                        <table id="keys-table">
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Key"</th>
                                    <th scope="col">"Scopes"</th>
                                    <th scope="col">"Created"</th>
                                    <th scope="col">"Expires"</th>
                                    <th scope="col">"Last used"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|key| view! { <KeyRow key=key revoking=revoking/> }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            }}
            {move || revoking.get().map(|key| view! {
                <Revoke key=key revoking=revoking notice=notice reload=reload/>
            })}
        </section>
    }
    .into_any()
}

#[component]
fn KeyRow(key: ApiKey, revoking: RwSignal<Option<ApiKey>>) -> impl IntoView {
    let scopes = key
        .scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let created = match &key.created_by {
        Some(by) => format!("{} by {by}", date_time(key.created_at)),
        None => date_time(key.created_at),
    };
    let name = key.name.clone();
    let for_revoke = key.clone();
    view! {
        <tr data-key=key.name>
            <td>{key.name.clone()}</td>
            <td class="code">{format!("{}…", key.prefix)}</td>
            <td>{scopes}</td>
            <td>{created}</td>
            <td>{key.expires_at.map_or_else(|| "never".to_owned(), date_time)}</td>
            <td>{key.last_used_at.map_or_else(|| "never".to_owned(), date_time)}</td>
            <td class="actions">
                <button class="danger" on:click=move |_| revoking.set(Some(for_revoke.clone()))
                    aria-label=format!("Revoke {name}")>"Revoke"</button>
            </td>
        </tr>
    }
}

#[component]
fn KeyForm(on_created: Callback<CreatedApiKey>, on_cancel: Callback<()>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let name = RwSignal::new(String::new());
    let chosen = Scope::ALL.map(|scope| (scope, RwSignal::new(scope == Scope::LinksRead)));
    let expires = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let Some(session) = auth.session() else {
            return;
        };
        let expires_at = match expires.get_untracked().as_str() {
            "" => None,
            // The end of the chosen day, in the browser's time zone.
            day => {
                let ms =
                    js_sys::Date::new(&wasm_bindgen::JsValue::from_str(&format!("{day}T23:59:59")))
                        .get_time();
                match OffsetDateTime::from_unix_timestamp((ms / 1000.0) as i64) {
                    Ok(at) if !ms.is_nan() => Some(at),
                    _ => {
                        error.set(Some(ApiError {
                            status: 0,
                            code: "invalid_input".to_owned(),
                            message: "Choose a date, or leave it empty.".to_owned(),
                            field: Some("expires_at".to_owned()),
                        }));
                        return;
                    }
                }
            }
        };
        let body = CreateApiKey {
            name: name.get_untracked().trim().to_owned(),
            scopes: chosen
                .iter()
                .filter(|(_, on)| on.get_untracked())
                .map(|(scope, _)| *scope)
                .collect(),
            expires_at,
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::create_key(&session, &body).await {
                Ok(key) => on_created.run(key),
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err));
                }
            }
            busy.set(false);
        });
    };
    let field_error = move |field: &'static str| {
        move || error.with(|e| e.as_ref().and_then(|e| e.for_field(field)))
    };
    let general_error = move || {
        error.with(|e| {
            e.as_ref()
                .filter(|e| !matches!(e.field.as_deref(), Some("name" | "scopes" | "expires_at")))
                .map(|e| e.message.clone())
        })
    };
    view! {
        <form class="panel link-form" on:submit=submit aria-labelledby="key-form-title" novalidate>
            <h2 id="key-form-title">"New API key"</h2>
            <div class="field">
                <label for="key-name">"Key name"</label>
                <input id="key-name" name="name" required autofocus bind:value=name placeholder="e.g. CI deploys"
                    aria-describedby="key-name-error"/>
                <p class="field-error" id="key-name-error" role="alert">{field_error("name")}</p>
            </div>
            <div class="field">
                <label for="key-expires">"Expires "<span class="optional">"(optional, end of that day)"</span></label>
                <input id="key-expires" name="expires" type="date" bind:value=expires aria-describedby="key-expires-error"/>
                <p class="field-error" id="key-expires-error" role="alert">{field_error("expires_at")}</p>
            </div>
            <fieldset class="wide scopes" aria-describedby="key-scopes-error">
                <legend>"Scopes"</legend>
                {chosen.into_iter().map(|(scope, on)| view! {
                    <label class="check">
                        <input type="checkbox" bind:checked=on/>
                        <span><code>{scope.as_str()}</code>{format!(": {}", scope_text(scope))}</span>
                    </label>
                }).collect_view()}
                <p class="field-error" id="key-scopes-error" role="alert">{field_error("scopes")}</p>
            </fieldset>
            <p class="error" role="alert">{general_error}</p>
            <div class="buttons">
                <button type="button" class="secondary" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                <button type="submit" class="primary" disabled=move || busy.get()>"Create key"</button>
            </div>
        </form>
    }
}

#[component]
fn Revoke(
    key: ApiKey,
    revoking: RwSignal<Option<ApiKey>>,
    notice: RwSignal<Option<String>>,
    reload: RwSignal<u32>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let (id, name) = (key.id, key.name.clone());
    let confirm = Callback::new(move |()| {
        let Some(session) = auth.session() else {
            return;
        };
        let name = name.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::revoke_key(&session, id).await {
                Ok(()) => {
                    revoking.set(None);
                    flash(notice, format!("Revoked {name}."));
                    reload.update(|n| *n += 1);
                }
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err.message));
                }
            }
            busy.set(false);
        });
    });
    view! {
        <ConfirmDialog title=format!("Revoke {}?", key.name)
            text=format!("Scripts using {}… are refused (401) from now on. This cannot be undone.", key.prefix)
            confirm="Revoke key".to_owned() busy=busy error=error on_confirm=confirm
            on_cancel=Callback::new(move |()| revoking.set(None))/>
    }
}
