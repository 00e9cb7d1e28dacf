//! The workspace's API keys: what each may do, when it was last used; making one shows its
//! secret once; revoking one (after asking) makes it fail at once. Admins and owners only.

use leptos::prelude::*;
use leptos_i18n::I18nContext;
use shortlink::workspace::{ApiKey, CreateApiKey, CreatedApiKey, Permission, Scope};
use time::OffsetDateTime;

use crate::api::ApiError;
use crate::i18n::{Locale, t, t_string, tu_string, use_i18n};
use crate::range::date_time;
use crate::widgets::{
    ConfirmDialog, FormError, Loaded, Refocus, Refused, ShownOnce, flash, load_json,
};
use crate::{Auth, api};

/// The keys page's state, shared by its parts.
#[derive(Clone, Copy)]
struct KeysState {
    /// Bumped after a change: the list loads again.
    reload: RwSignal<u32>,
    /// What the last change did (or why it failed).
    notice: RwSignal<Option<String>>,
    /// Whether the new-key form is open.
    creating: RwSignal<bool>,
    /// The key just made, its secret form_error once.
    created: RwSignal<Option<CreatedApiKey>>,
    /// The key the revoke dialog asks about.
    revoking: RwSignal<Option<ApiKey>>,
    /// Where the focus goes once the keys are drawn again after one was revoked.
    refocus: Refocus,
}

/// What a scope allows, in the dashboard's language.
fn scope_text(i18n: I18nContext<Locale>, scope: Scope) -> &'static str {
    match scope {
        Scope::LinksRead => t_string!(i18n, keys.scope_links_read),
        Scope::LinksWrite => t_string!(i18n, keys.scope_links_write),
        Scope::StatsRead => t_string!(i18n, keys.scope_stats_read),
        Scope::WorkspaceAdmin => t_string!(i18n, keys.scope_workspace_admin),
    }
}

#[component]
pub fn Keys() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    if !auth.permits(Permission::Administer) {
        return view! {
            <Refused title_id="keys-title" title=move || t_string!(i18n, keys.title)
                what=move || t_string!(i18n, keys.refused_what)/>
        }
        .into_any();
    }
    let state = KeysState {
        reload: RwSignal::new(0),
        notice: RwSignal::new(None),
        creating: RwSignal::new(false),
        created: RwSignal::new(None),
        revoking: RwSignal::new(None),
        refocus: Refocus::new("#keys-title"),
    };
    provide_context(state);
    let keys = load_json::<Vec<ApiKey>>(move || {
        state.reload.track();
        "/api/v1/keys".to_owned()
    });
    view! {
        <section class="page" aria-labelledby="keys-title">
            <div class="page-head">
                <h1 id="keys-title" tabindex="-1">{t!(i18n, keys.title)}</h1>
                <button class="primary" on:click=move |_| { state.created.set(None); state.creating.set(true) }>
                    {t!(i18n, keys.new_key)}
                </button>
            </div>
            <p class="notice" role="status">{move || state.notice.get()}</p>
            {move || state.creating.get().then(|| view! { <KeyForm/> })}
            {move || state.created.get().map(|key| view! {
                <ShownOnce label=t_string!(i18n, keys.secret_label, name = key.api_key.name)
                    value=key.key
                    hint=t_string!(i18n, keys.secret_hint).to_string()
                    on_done=Callback::new(move |()| state.created.set(None))/>
            })}
            <Loaded data=keys reload=state.reload loading=t_string!(i18n, keys.loading).to_string() let:list>
                {state.refocus.drawn();
                if list.is_empty() {
                    view! { <p class="empty">{t!(i18n, keys.empty)}</p> }.into_any()
                } else {
                    view! {
                        <div class="table-wrap">
                            <table id="keys-table" aria-labelledby="keys-title">
                                <thead>
                                    <tr>
                                        <th scope="col">{t!(i18n, keys.name)}</th>
                                        <th scope="col">{t!(i18n, keys.key)}</th>
                                        <th scope="col">{t!(i18n, keys.scopes)}</th>
                                        <th scope="col">{t!(i18n, keys.created)}</th>
                                        <th scope="col">{t!(i18n, keys.expires)}</th>
                                        <th scope="col">{t!(i18n, keys.last_used)}</th>
                                        <th scope="col"><span class="visually-hidden">{t!(i18n, keys.actions)}</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {list.into_iter().map(|key| view! { <KeyRow key=key/> }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any()
                }}
            </Loaded>
            {move || state.revoking.get().map(|key| view! { <Revoke key=key/> })}
        </section>
    }
    .into_any()
}

#[component]
fn KeyRow(key: ApiKey) -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<KeysState>();
    // Scopes by their names in the API (what scripts and the docs call them).
    let scopes = key
        .scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let created = match &key.created_by {
        Some(name) => t_string!(
            i18n,
            keys.created_by,
            date = date_time(key.created_at),
            name
        ),
        None => date_time(key.created_at),
    };
    let expires = key
        .expires_at
        .map_or_else(|| t_string!(i18n, keys.never_expires).to_owned(), date_time);
    let last_used = key
        .last_used_at
        .map_or_else(|| t_string!(i18n, keys.never_used).to_owned(), date_time);
    let label = t_string!(i18n, keys.revoke_label, name = key.name.clone());
    let for_revoke = key.clone();
    view! {
        <tr data-key=key.name>
            <td>{key.name.clone()}</td>
            <td class="code">{format!("{}…", key.prefix)}</td>
            <td>{scopes}</td>
            <td>{created}</td>
            <td>{expires}</td>
            <td>{last_used}</td>
            <td class="actions">
                <button class="danger" on:click=move |_| state.revoking.set(Some(for_revoke.clone()))
                    aria-label=label>{t!(i18n, keys.revoke)}</button>
            </td>
        </tr>
    }
}

#[component]
fn KeyForm() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<KeysState>();
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
                            message: tu_string!(i18n, keys.invalid_date).to_string(),
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
                Ok(key) => {
                    state.creating.set(false);
                    state.created.set(Some(key));
                    state.reload.update(|n| *n += 1);
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    let form_error = FormError::new(error, &["name", "scopes", "expires_at"]);
    view! {
        <form class="panel link-form" on:submit=submit aria-labelledby="key-form-title" novalidate>
            <h2 id="key-form-title">{t!(i18n, keys.form_title)}</h2>
            <div class="field">
                <label for="key-name">{t!(i18n, keys.name_label)}</label>
                <input id="key-name" name="name" required autofocus bind:value=name
                    placeholder=t_string!(i18n, keys.name_placeholder)
                    aria-invalid=form_error.invalid("name") aria-describedby="key-name-error"/>
                <p class="field-error" id="key-name-error" role="alert">{form_error.at("name")}</p>
            </div>
            <div class="field">
                <label for="key-expires">{t!(i18n, keys.expires_label)}" "<span class="optional">{t!(i18n, keys.expires_optional)}</span></label>
                <input id="key-expires" name="expires" type="date" bind:value=expires
                    aria-invalid=form_error.invalid("expires_at") aria-describedby="key-expires-error"/>
                <p class="field-error" id="key-expires-error" role="alert">{form_error.at("expires_at")}</p>
            </div>
            <fieldset class="wide scopes" aria-describedby="key-scopes-error">
                <legend>{t!(i18n, keys.scopes)}</legend>
                {chosen.into_iter().map(|(scope, on)| view! {
                    <label class="check">
                        <input type="checkbox" bind:checked=on/>
                        <span><code>{scope.as_str()}</code>": "{scope_text(i18n, scope)}</span>
                    </label>
                }).collect_view()}
                <p class="field-error" id="key-scopes-error" role="alert">{form_error.at("scopes")}</p>
            </fieldset>
            <p class="error" role="alert">{form_error.general()}</p>
            <div class="buttons">
                <button type="button" class="secondary" on:click=move |_| state.creating.set(false)>
                    {t!(i18n, common.cancel)}
                </button>
                <button type="submit" class="primary" disabled=move || busy.get()>{t!(i18n, keys.create)}</button>
            </div>
        </form>
    }
}

#[component]
fn Revoke(key: ApiKey) -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<KeysState>();
    let auth = expect_context::<Auth>();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let id = key.id;
    let opener = StoredValue::new_local(document().active_element());
    let revoked = t_string!(i18n, keys.revoked, name = key.name.clone());
    let confirm = Callback::new(move |()| {
        let Some(session) = auth.session() else {
            return;
        };
        let revoked = revoked.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::revoke_key(&session, id).await {
                Ok(()) => {
                    opener.try_with_value(|opener| state.refocus.after_removal(opener.as_ref()));
                    state.revoking.set(None);
                    flash(state.notice, revoked);
                    state.reload.update(|n| *n += 1);
                }
                Err(err) => error.set(Some(err.message)),
            }
            busy.set(false);
        });
    });
    view! {
        <ConfirmDialog title=t_string!(i18n, keys.revoke_title, name = key.name)
            text=t_string!(i18n, keys.revoke_text, prefix = key.prefix)
            confirm=t_string!(i18n, keys.revoke_confirm).to_string() busy=busy error=error on_confirm=confirm
            on_cancel=Callback::new(move |()| state.revoking.set(None))/>
    }
}
