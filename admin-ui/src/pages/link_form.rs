//! Creating and editing a link. The origin validates (one source of the rules); its errors
//! are shown next to the field they name.

use leptos::prelude::*;
use shortlink::api::Link;

use crate::api::{ApiError, LinkForm as Body};
use crate::range::{local_input_to_rfc3339, to_local_input};
use crate::{Auth, api};

#[derive(Debug, Clone, PartialEq)]
pub enum FormMode {
    Create,
    Edit(Link),
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
        FormMode::Edit(link) => Some(link),
    };
    let destination = RwSignal::new(
        editing
            .as_ref()
            .map(|l| l.destination.as_str().to_owned())
            .unwrap_or_default(),
    );
    let code = RwSignal::new(String::new());
    let status = RwSignal::new(
        editing
            .as_ref()
            .map_or(302, |l| l.status.code())
            .to_string(),
    );
    let expires = RwSignal::new(
        editing
            .as_ref()
            .and_then(|l| l.expires_at)
            .map(to_local_input)
            .unwrap_or_default(),
    );
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let editing_code = editing.as_ref().map(|l| l.code.to_string());
    let had_expiry = editing.as_ref().is_some_and(|l| l.expires_at.is_some());

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
            let body = Body {
                destination: Some(destination.get_untracked().trim().to_owned()),
                code: match code.get_untracked().trim() {
                    "" => None,
                    slug => Some(slug.to_owned()),
                },
                status: status.get_untracked().parse().ok(),
                expires_at: match (&editing_code, expires_at) {
                    (_, Some(at)) => Some(Some(at)),
                    // Emptied while editing: the link no longer expires.
                    (Some(_), None) if had_expiry => Some(None),
                    _ => None,
                },
            };
            let editing_code = editing_code.clone();
            busy.set(true);
            error.set(None);
            leptos::task::spawn_local(async move {
                let saved = match &editing_code {
                    None => api::create_link(&session, &body).await,
                    Some(code) => {
                        api::update_link(&session, code, &Body { code: None, ..body }).await
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
    let field_error = move |field: &'static str| {
        move || error.with(|e| e.as_ref().and_then(|e| e.for_field(field)))
    };
    let general_error = move || {
        error.with(|e| {
            e.as_ref()
                .filter(|e| e.field.is_none())
                .map(|e| e.message.clone())
        })
    };
    let invalid = move |field: &'static str| {
        move || {
            error
                .with(|e| {
                    e.as_ref()
                        .is_some_and(|e| e.field.as_deref() == Some(field))
                })
                .to_string()
        }
    };
    let title = match &editing_code {
        None => "New link".to_owned(),
        Some(code) => format!("Edit {code}"),
    };
    view! {
        <form class="panel link-form" on:submit=submit aria-labelledby="form-title" novalidate>
            <h2 id="form-title">{title}</h2>
            <div class="field wide">
                <label for="destination">"Destination URL"</label>
                <input id="destination" name="destination" type="url" required autofocus
                    placeholder="https://example.com/a/long/page"
                    bind:value=destination aria-invalid=invalid("destination")
                    aria-describedby="destination-error"/>
                <p class="field-error" id="destination-error" role="alert">{field_error("destination")}</p>
            </div>
            {editing_code.is_none().then(|| view! {
                <div class="field">
                    <label for="code">"Custom slug "<span class="optional">"(optional)"</span></label>
                    <input id="code" name="code" placeholder="generated if empty" bind:value=code
                        aria-invalid=invalid("code") aria-describedby="code-error code-hint" autocomplete="off"/>
                    <p class="hint" id="code-hint">"Letters, digits, - and _; up to 64."</p>
                    <p class="field-error" id="code-error" role="alert">{field_error("code")}</p>
                </div>
            })}
            <div class="field">
                <label for="status">"Redirect"</label>
                <select id="status" name="status" prop:value=move || status.get()
                    on:change=move |ev| status.set(event_target_value(&ev)) aria-describedby="status-error">
                    {STATUSES.iter().map(|(code, label)| view! { <option value=code.to_string()>{*label}</option> }).collect_view()}
                </select>
                <p class="field-error" id="status-error" role="alert">{field_error("status")}</p>
            </div>
            <div class="field">
                <label for="expires">"Expires "<span class="optional">"(optional, your time)"</span></label>
                <input id="expires" name="expires" type="datetime-local" bind:value=expires
                    aria-invalid=invalid("expires_at") aria-describedby="expires-error"/>
                <p class="field-error" id="expires-error" role="alert">{field_error("expires_at")}</p>
            </div>
            <p class="error" role="alert">{general_error}</p>
            <div class="buttons">
                <button type="button" class="secondary" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                <button type="submit" class="primary" disabled=move || busy.get()>
                    {move || match (busy.get(), editing.is_some()) {
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
