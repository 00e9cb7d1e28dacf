//! Creating and editing a link, with its rules (see `link_rules`). The origin validates (one
//! source of the rules); its errors are shown next to the field they name.

use leptos::prelude::*;
use shortlink::api::Link;

use crate::api::{ApiError, LinkForm as Body};
use crate::pages::link_rules::{
    Errors, Field, Row, RowList, SPLIT, TARGETS, TagsInput, UtmBuilder, add_pending, utm_body,
    utm_inputs, weight_sum,
};
use crate::range::{count, local_input_to_rfc3339, to_local_input};
use crate::{Auth, api};

#[derive(Debug, Clone, PartialEq)]
pub enum FormMode {
    Create,
    Edit(Box<Link>),
}

const STATUSES: [(u16, &str); 4] = [
    (
        302,
        "302 Found: temporary (default; edits take effect at once)",
    ),
    (307, "307 Temporary, keeps the method"),
    (301, "301 Moved permanently: browsers may cache it"),
    (308, "308 Permanent, keeps the method"),
];

/// `Some(text)` when something was typed; when nothing was, `null` (clears it) for an edit
/// and absent for a new link.
fn optional(text: String, editing: bool) -> Option<Option<String>> {
    if text.trim().is_empty() {
        editing.then_some(None)
    } else {
        Some(Some(text))
    }
}

#[component]
pub fn LinkForm(
    mode: FormMode,
    /// The saved link, and whether it was created (not edited).
    on_saved: Callback<(Link, bool)>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let editing = match mode {
        FormMode::Create => None,
        FormMode::Edit(link) => Some(*link),
    };
    let text = |pick: fn(&Link) -> Option<String>| {
        RwSignal::new(editing.as_ref().and_then(pick).unwrap_or_default())
    };
    let destination = text(|l| Some(l.destination.as_str().to_owned()));
    let code = RwSignal::new(String::new());
    let status = text(|l| Some(l.status.code().to_string()));
    let expires = text(|l| l.expires_at.map(to_local_input));
    let disabled = RwSignal::new(editing.as_ref().is_some_and(|l| l.disabled));
    let max_clicks = text(|l| l.max_clicks.map(|m| m.get().to_string()));
    let fallback = text(|l| l.fallback_url.as_ref().map(|f| f.as_str().to_owned()));
    let password = RwSignal::new(String::new());
    let remove_password = RwSignal::new(false);
    let note = text(|l| l.note.as_ref().map(|n| n.as_str().to_owned()));
    let link_title = text(|l| l.title.as_ref().map(|t| t.as_str().to_owned()));
    let targets = RwSignal::new(editing.as_ref().map_or_else(Vec::new, |l| {
        l.targets.as_slice().iter().map(Row::of_target).collect()
    }));
    let split = RwSignal::new(editing.as_ref().map_or_else(Vec::new, |l| {
        l.split.as_slice().iter().map(Row::of_variant).collect()
    }));
    let utm = utm_inputs(editing.as_ref().map(|l| &l.utm));
    let tags = RwSignal::new(editing.as_ref().map_or_else(Vec::new, |l| {
        l.tags.as_slice().iter().map(ToString::to_string).collect()
    }));
    let pending_tag = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let errors = Errors(error);
    let busy = RwSignal::new(false);
    let editing_code = editing.as_ref().map(|l| l.code.to_string());
    let editing_version = editing.as_ref().map_or(0, |l| l.version);
    let is_edit = editing.is_some();
    let had_expiry = editing.as_ref().is_some_and(|l| l.expires_at.is_some());
    let protected = editing.as_ref().is_some_and(|l| l.password_protected);
    let used = editing
        .as_ref()
        .filter(|l| l.max_clicks.is_some())
        .map(|l| l.clicks_used);

    let submit = {
        let editing_code = editing_code.clone();
        move |event: leptos::ev::SubmitEvent| {
            event.prevent_default();
            let Some(session) = auth.session() else {
                return;
            };
            let expires_at = match expires.get_untracked().trim() {
                "" => None,
                value => match local_input_to_rfc3339(value) {
                    Some(at) => Some(at),
                    None => {
                        error.set(Some(local_error(
                            "expires_at",
                            "Enter a date and time, or leave it empty.",
                        )));
                        return;
                    }
                },
            };
            add_pending(tags, pending_tag);
            let limit = max_clicks.get_untracked();
            let body = Body {
                destination: Some(destination.get_untracked().trim().to_owned()),
                code: match code.get_untracked().trim() {
                    "" => None,
                    slug => Some(slug.to_owned()),
                },
                status: status.get_untracked().parse().ok(),
                expires_at: match (is_edit, expires_at) {
                    (_, Some(at)) => Some(Some(at)),
                    // Emptied while editing: the link no longer expires.
                    (true, None) if had_expiry => Some(None),
                    _ => None,
                },
                disabled: Some(disabled.get_untracked()),
                max_clicks: optional(limit.clone(), is_edit)
                    .map(|typed| typed.map(|_| api::Typed::of(&limit))),
                fallback_url: optional(fallback.get_untracked().trim().to_owned(), is_edit),
                password: if remove_password.get_untracked() {
                    Some(None)
                } else {
                    optional(password.get_untracked(), false)
                },
                targets: Some(
                    targets
                        .with_untracked(|rows| rows.iter().map(|row| row.target_body()).collect()),
                ),
                split: Some(
                    split
                        .with_untracked(|rows| rows.iter().map(|row| row.variant_body()).collect()),
                ),
                utm: Some(utm_body(utm)),
                tags: Some(tags.get_untracked()),
                note: optional(note.get_untracked(), is_edit),
                title: optional(link_title.get_untracked().trim().to_owned(), is_edit),
            };
            let editing_code = editing_code.clone();
            busy.set(true);
            error.set(None);
            leptos::task::spawn_local(async move {
                let saved = match &editing_code {
                    None => api::create_link(&session, &body).await,
                    Some(code) => {
                        api::update_link(
                            &session,
                            code,
                            editing_version,
                            &Body { code: None, ..body },
                        )
                        .await
                    }
                };
                busy.set(false);
                match saved {
                    Ok(link) => on_saved.run((link, editing_code.is_none())),
                    Err(err) => {
                        auth.check(&err);
                        error.set(Some(err));
                    }
                }
            });
        }
    };
    let general_error = move || {
        error.with(|e| {
            e.as_ref()
                .filter(|e| e.field.is_none())
                .map(|e| e.message.clone())
        })
    };
    let title = match &editing_code {
        None => "New link".to_owned(),
        Some(code) => format!("Edit {code}"),
    };
    let status_error = errors.under("status".to_owned());
    let password_label = if protected {
        "New password (empty: keep the current one)"
    } else {
        "Password (optional)"
    };
    let sum = move || split.with(|rows| weight_sum(rows));
    view! {
        <form class="panel link-form" on:submit=submit aria-labelledby="form-title" novalidate>
            <h2 id="form-title">{title}</h2>
            <div class="field wide">
                <Field id="destination".to_owned() label="Destination URL" value=destination errors=errors
                    path="destination".to_owned() kind="url" placeholder="https://example.com/a/long/page"/>
            </div>
            <Field id="link-title".to_owned() label="Title (optional)" value=link_title errors=errors
                path="title".to_owned() placeholder="shown in the list, not to visitors"/>
            {editing_code.is_none().then(|| view! {
                <Field id="code".to_owned() label="Custom slug (optional)" value=code errors=errors
                    path="code".to_owned() placeholder="generated if empty" hint="Letters, digits, - and _; up to 64."/>
            })}
            <div class="field">
                <label for="status">"Redirect"</label>
                <select id="status" name="status" prop:value=move || status.get()
                    on:change=move |ev| status.set(event_target_value(&ev)) aria-describedby="status-error">
                    {STATUSES.iter().map(|(code, label)| view! { <option value=code.to_string()>{*label}</option> }).collect_view()}
                </select>
                <p class="field-error" id="status-error" role="alert">{status_error}</p>
            </div>
            <Field id="expires".to_owned() label="Expires (optional, your time)" value=expires errors=errors
                path="expires_at".to_owned() kind="datetime-local"/>

            <fieldset class="section">
                <legend>"Access"</legend>
                <label class="check switch">
                    <input type="checkbox" role="switch" id="disabled" bind:checked=disabled/>
                    "Disabled: visitors get “not found” (or the fallback URL)"
                </label>
                <Field id="max-clicks".to_owned() label="Click limit (optional)" value=max_clicks errors=errors
                    path="max_clicks".to_owned() hint="After this many clicks by people the link answers like an expired one."/>
                {used.map(|used| view! { <p class="hint" id="clicks-used">{format!("Clicks used: {}", count(used as i64))}</p> })}
                <Field id="fallback".to_owned() label="Fallback URL (optional)" value=fallback errors=errors
                    path="fallback_url".to_owned() kind="url"
                    hint="Where an expired, used-up or disabled link sends visitors instead."/>
                <Field id="link-password".to_owned() label=password_label value=password errors=errors
                    path="password".to_owned() kind="password"
                    hint="Visitors must enter it first. It is never shown again."/>
                {protected.then(|| view! {
                    <p class="check"><span class="badge">"protected"</span></p>
                    <label class="check"><input type="checkbox" bind:checked=remove_password/>"Remove the password"</label>
                })}
            </fieldset>

            <fieldset class="section">
                <legend>"Targeting rules"</legend>
                <p class="hint">"In order: the first rule a visit matches picks its destination."</p>
                <RowList kind=TARGETS rows=targets errors=errors/>
            </fieldset>

            <fieldset class="section">
                <legend>"A/B split"</legend>
                <p class="hint">"Visits no rule took are shared among 2 to 10 destinations by weight."</p>
                <RowList kind=SPLIT rows=split errors=errors/>
                {move || (!split.with(Vec::is_empty)).then(|| view! {
                    <p class="sum" id="split-sum" class:off=move || sum() != 100>
                        {move || format!("Total: {} of 100", sum())}
                    </p>
                })}
            </fieldset>

            <fieldset class="section">
                <legend>"UTM parameters"</legend>
                <UtmBuilder inputs=utm destination=destination errors=errors/>
            </fieldset>

            <fieldset class="section">
                <legend>"Tags and note"</legend>
                <TagsInput tags=tags pending=pending_tag errors=errors/>
                <div class="field wide">
                    <label for="note">"Note (optional)"</label>
                    <textarea id="note" rows="3" prop:value=move || note.get()
                        on:input=move |ev| note.set(event_target_value(&ev)) aria-describedby="note-error"></textarea>
                    <p class="field-error" id="note-error" role="alert">{errors.under("note".to_owned())}</p>
                </div>
            </fieldset>

            <p class="error" role="alert">{general_error}</p>
            <div class="buttons">
                <button type="button" class="secondary" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                <button type="submit" class="primary" disabled=move || busy.get()>
                    {move || match (busy.get(), is_edit) {
                        (true, _) => "Saving…",
                        (false, true) => "Save changes",
                        (false, false) => "Create link",
                    }}
                </button>
            </div>
        </form>
    }
}

fn local_error(field: &str, message: &str) -> ApiError {
    ApiError {
        status: 0,
        code: "invalid_input".to_owned(),
        message: message.to_owned(),
        field: Some(field.to_owned()),
    }
}
