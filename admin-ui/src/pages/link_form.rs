//! Creating and editing a link, with its rules (see `link_rules`). The origin validates (one
//! source of the rules); its errors are shown next to the field they name. The form's values
//! live in one [`FormState`], given to the editors of `link_rules` as a context.

use leptos::prelude::*;
use shortlink::api::Link;

use crate::Auth;
use crate::api::{self, ApiError, LinkForm as Body};
use crate::i18n::{t, t_string, use_i18n};
use crate::pages::link_rules::{
    Field, List, Row, RowList, TagsInput, UtmBuilder, UtmInputs, add_pending, focus_first_invalid,
    utm_body, utm_inputs, weight_sum,
};
use crate::range::{count, local_input_to_rfc3339, to_local_input};
use crate::widgets::FormError;

#[derive(Debug, Clone, PartialEq)]
pub enum FormMode {
    Create,
    Edit(Box<Link>),
}

/// The redirect statuses a link can answer with, the default first.
const STATUSES: [u16; 4] = [302, 307, 301, 308];

/// Where the API names the values this form has inputs for (and the values inside them:
/// `targets[2].when.country[0]`); an error about anything else shows above the Save button.
const FIELDS: &[&str] = &[
    "destination",
    "title",
    "code",
    "status",
    "expires_at",
    "max_clicks",
    "fallback_url",
    "password",
    "note",
    "targets",
    "split",
    "tags",
    "utm",
];

/// What the form holds, as typed: one context for the form and the editors it is made of.
#[derive(Debug, Clone, Copy)]
pub struct FormState {
    pub destination: RwSignal<String>,
    pub code: RwSignal<String>,
    pub status: RwSignal<String>,
    /// In the `datetime-local` input's form, in the viewer's time zone.
    pub expires: RwSignal<String>,
    pub disabled: RwSignal<bool>,
    pub max_clicks: RwSignal<String>,
    pub fallback: RwSignal<String>,
    /// A new password (the API never shows the current one).
    pub password: RwSignal<String>,
    pub remove_password: RwSignal<bool>,
    pub note: RwSignal<String>,
    pub title: RwSignal<String>,
    pub targets: RwSignal<Vec<Row>>,
    pub split: RwSignal<Vec<Row>>,
    pub utm: UtmInputs,
    pub tags: RwSignal<Vec<String>>,
    /// A tag typed but not yet added (added when the form is sent).
    pub pending_tag: RwSignal<String>,
    /// The last error, shown at the field it names.
    pub errors: FormError,
}

impl FormState {
    fn new(editing: Option<&Link>) -> Self {
        let text = |pick: fn(&Link) -> Option<String>| {
            RwSignal::new(editing.and_then(pick).unwrap_or_default())
        };
        let list = |pick: fn(&Link) -> Vec<Row>| RwSignal::new(editing.map_or_else(Vec::new, pick));
        Self {
            destination: text(|l| Some(l.destination.as_str().to_owned())),
            code: RwSignal::new(String::new()),
            status: text(|l| Some(l.status.code().to_string())),
            expires: text(|l| l.expires_at.map(to_local_input)),
            disabled: RwSignal::new(editing.is_some_and(|l| l.disabled)),
            max_clicks: text(|l| l.max_clicks.map(|m| m.get().to_string())),
            fallback: text(|l| l.fallback_url.as_ref().map(|f| f.as_str().to_owned())),
            password: RwSignal::new(String::new()),
            remove_password: RwSignal::new(false),
            note: text(|l| l.note.as_ref().map(|n| n.as_str().to_owned())),
            title: text(|l| l.title.as_ref().map(|t| t.as_str().to_owned())),
            targets: list(|l| l.targets.as_slice().iter().map(Row::of_target).collect()),
            split: list(|l| l.split.as_slice().iter().map(Row::of_variant).collect()),
            utm: utm_inputs(editing.map(|l| &l.utm)),
            tags: RwSignal::new(editing.map_or_else(Vec::new, |l| {
                l.tags.as_slice().iter().map(ToString::to_string).collect()
            })),
            pending_tag: RwSignal::new(String::new()),
            errors: FormError::new(RwSignal::new(None), FIELDS),
        }
    }

    /// The request as typed; `editing` is the link edited, if any. `Err` with the field when
    /// the expiry is not a date and time (the API would not see what was typed).
    fn body(self, editing: Option<&Link>, bad_expiry: &str) -> Result<Body, ApiError> {
        let is_edit = editing.is_some();
        let had_expiry = editing.is_some_and(|l| l.expires_at.is_some());
        let typed_expiry = self.expires.get_untracked();
        // The expiry as the form showed it (to the minute): left as it is, not sent again,
        // so an edit of an expired link's note is not refused for its expiry, nor does it
        // drop the expiry's seconds.
        let expiry_unchanged = editing
            .and_then(|l| l.expires_at)
            .is_some_and(|at| to_local_input(at) == typed_expiry.trim());
        let expires_at = match typed_expiry.trim() {
            "" => None,
            value => Some(
                local_input_to_rfc3339(value)
                    .ok_or_else(|| local_error("expires_at", bad_expiry))?,
            ),
        };
        add_pending(self.tags, self.pending_tag);
        let limit = self.max_clicks.get_untracked();
        Ok(Body {
            destination: Some(self.destination.get_untracked().trim().to_owned()),
            code: match (is_edit, self.code.get_untracked().trim()) {
                (true, _) | (false, "") => None,
                (false, slug) => Some(slug.to_owned()),
            },
            status: self.status.get_untracked().parse().ok(),
            expires_at: match (expires_at, had_expiry) {
                (Some(_), _) if expiry_unchanged => None,
                (Some(at), _) => Some(Some(at)),
                // Emptied while editing: the link no longer expires.
                (None, true) => Some(None),
                (None, false) => None,
            },
            disabled: Some(self.disabled.get_untracked()),
            max_clicks: optional(limit.clone(), is_edit)
                .map(|typed| typed.map(|_| api::Typed::of(&limit))),
            fallback_url: optional(self.fallback.get_untracked().trim().to_owned(), is_edit),
            password: if self.remove_password.get_untracked() {
                Some(None)
            } else {
                optional(self.password.get_untracked(), false)
            },
            targets: Some(
                self.targets
                    .with_untracked(|rows| rows.iter().map(|row| row.target_body()).collect()),
            ),
            split: Some(
                self.split
                    .with_untracked(|rows| rows.iter().map(|row| row.variant_body()).collect()),
            ),
            utm: Some(utm_body(self.utm)),
            tags: Some(self.tags.get_untracked()),
            note: optional(self.note.get_untracked(), is_edit),
            title: optional(self.title.get_untracked().trim().to_owned(), is_edit),
        })
    }
}

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
    let i18n = use_i18n();
    let editing = match mode {
        FormMode::Create => None,
        FormMode::Edit(link) => Some(*link),
    };
    let state = FormState::new(editing.as_ref());
    provide_context(state);
    // The form opens above the table, maybe far from the row's Edit button: it takes the
    // focus to its first field (which scrolls it into view), where typing and Tab go on;
    // unless the focus is in the form already.
    request_animation_frame(|| {
        let in_form = document()
            .active_element()
            .and_then(|active| active.closest(".link-form").ok().flatten())
            .is_some();
        if let (false, Some(field)) = (in_form, document().get_element_by_id("destination")) {
            let field: web_sys::HtmlElement = wasm_bindgen::JsCast::unchecked_into(field);
            let _ = field.focus();
        }
    });
    let FormState {
        destination,
        code,
        status,
        expires,
        disabled,
        max_clicks,
        fallback,
        password,
        remove_password,
        note,
        title: link_title,
        split,
        errors,
        ..
    } = state;
    let busy = RwSignal::new(false);
    let editing_code = editing.as_ref().map(|l| l.code.to_string());
    let is_edit = editing.is_some();
    let protected = editing.as_ref().is_some_and(|l| l.password_protected);
    let used = editing
        .as_ref()
        .filter(|l| l.max_clicks.is_some())
        .map(|l| l.clicks_used);

    let submit = {
        let editing = StoredValue::new(editing);
        move |event: leptos::ev::SubmitEvent| {
            event.prevent_default();
            let Some(session) = auth.session() else {
                return;
            };
            let bad_expiry = t_string!(i18n, link_form.expires_invalid);
            let body = match editing.with_value(|link| state.body(link.as_ref(), bad_expiry)) {
                Ok(body) => body,
                Err(err) => {
                    errors.set(Some(err));
                    focus_first_invalid();
                    return;
                }
            };
            let edited =
                editing.with_value(|link| link.as_ref().map(|l| (l.code.to_string(), l.version)));
            busy.set(true);
            errors.set(None);
            leptos::task::spawn_local(async move {
                let saved = match &edited {
                    None => api::create_link(&session, &body).await,
                    Some((code, version)) => {
                        api::update_link(&session, code, *version, &body).await
                    }
                };
                // The person may have left the page meanwhile: nothing of it is there to set.
                busy.try_set(false);
                match saved {
                    Ok(link) => {
                        on_saved.try_run((link, edited.is_none()));
                    }
                    Err(mut err) => {
                        if err.code == "precondition_failed" {
                            err.message = t_string!(i18n, link_form.changed_meanwhile).to_owned();
                        }
                        errors.set(Some(err));
                        focus_first_invalid();
                    }
                }
            });
        }
    };
    let general_error = errors.general();
    let heading = {
        let editing_code = editing_code.clone();
        move || match &editing_code {
            None => t_string!(i18n, link_form.title_new).to_owned(),
            Some(code) => t_string!(i18n, link_form.title_edit, code),
        }
    };
    let status_error = errors.at("status");
    let note_error = errors.at("note");
    let status_options = move || {
        STATUSES
            .iter()
            .map(|&code| {
                let label = match code {
                    307 => t_string!(i18n, link_form.status_307),
                    301 => t_string!(i18n, link_form.status_301),
                    308 => t_string!(i18n, link_form.status_308),
                    _ => t_string!(i18n, link_form.status_302),
                };
                let chosen = status.with_untracked(|s| *s == code.to_string());
                view! { <option value=code.to_string() selected=chosen>{label}</option> }
            })
            .collect_view()
    };
    let sum = move || split.with(|rows| weight_sum(rows));
    view! {
        <form class="panel link-form" on:submit=submit aria-labelledby="form-title" novalidate>
            <h2 id="form-title">{heading}</h2>
            <div class="field wide">
                <Field id="destination" label=move || t_string!(i18n, link_form.destination) value=destination
                    path="destination" kind="url" placeholder="https://example.com/a/long/page"/>
            </div>
            <Field id="link-title" label=move || t_string!(i18n, link_form.link_title) value=link_title
                path="title" placeholder=move || t_string!(i18n, link_form.link_title_placeholder)/>
            {editing_code.is_none().then(|| view! {
                <Field id="code" label=move || t_string!(i18n, link_form.code) value=code path="code"
                    placeholder=move || t_string!(i18n, link_form.code_placeholder)
                    hint=move || t_string!(i18n, link_form.code_hint)/>
            })}
            <div class="field">
                <label for="status">{t!(i18n, link_form.status)}</label>
                <select id="status" name="status" on:change=move |ev| status.set(event_target_value(&ev))
                    aria-invalid=move || status_error.with(Option::is_some).to_string()
                    aria-describedby="status-error">
                    {status_options}
                </select>
                <p class="field-error" id="status-error" role="alert">{status_error}</p>
            </div>
            <Field id="expires" label=move || t_string!(i18n, link_form.expires) value=expires
                path="expires_at" kind="datetime-local"/>

            <fieldset class="section">
                <legend>{t!(i18n, link_form.access)}</legend>
                <label class="check switch">
                    <input type="checkbox" role="switch" id="disabled" bind:checked=disabled/>
                    {t!(i18n, link_form.disabled)}
                </label>
                <Field id="max-clicks" label=move || t_string!(i18n, link_form.max_clicks) value=max_clicks
                    path="max_clicks" hint=move || t_string!(i18n, link_form.max_clicks_hint)/>
                {used.map(|used| view! {
                    <p class="hint" id="clicks-used">
                        {move || t_string!(i18n, link_form.clicks_used, count = count(used as i64))}
                    </p>
                })}
                <Field id="fallback" label=move || t_string!(i18n, link_form.fallback) value=fallback
                    path="fallback_url" kind="url" hint=move || t_string!(i18n, link_form.fallback_hint)/>
                <Field id="link-password" value=password path="password" kind="password"
                    label=move || if protected {
                        t_string!(i18n, link_form.new_password)
                    } else {
                        t_string!(i18n, link_form.password)
                    }
                    hint=move || t_string!(i18n, link_form.password_hint)/>
                {protected.then(|| view! {
                    <p class="check"><span class="badge">{t!(i18n, link_form.protected)}</span></p>
                    <label class="check">
                        <input type="checkbox" bind:checked=remove_password/>
                        {t!(i18n, link_form.remove_password)}
                    </label>
                })}
            </fieldset>

            <fieldset class="section">
                <legend>{t!(i18n, link_form.targeting)}</legend>
                <p class="hint">{t!(i18n, link_form.targeting_hint)}</p>
                <RowList list=List::Targets/>
            </fieldset>

            <fieldset class="section">
                <legend>{t!(i18n, link_form.split)}</legend>
                <p class="hint">{t!(i18n, link_form.split_hint)}</p>
                <RowList list=List::Split/>
                {move || (!split.with(Vec::is_empty)).then(|| view! {
                    <p class="sum" id="split-sum" class:off=move || sum() != 100>
                        {move || t_string!(i18n, link_form.split_total, sum = count(sum() as i64))}
                    </p>
                })}
            </fieldset>

            <fieldset class="section">
                <legend>{t!(i18n, link_form.utm)}</legend>
                <UtmBuilder/>
            </fieldset>

            <fieldset class="section">
                <legend>{t!(i18n, link_form.tags_note)}</legend>
                <TagsInput/>
                <div class="field wide">
                    <label for="note">{t!(i18n, link_form.note)}</label>
                    <textarea id="note" rows="3" prop:value=move || note.get()
                        on:input=move |ev| note.set(event_target_value(&ev))
                        aria-invalid=move || note_error.with(Option::is_some).to_string()
                        aria-describedby="note-error"></textarea>
                    <p class="field-error" id="note-error" role="alert">{note_error}</p>
                </div>
            </fieldset>

            <p class="error" role="alert">{general_error}</p>
            <div class="buttons">
                <button type="button" class="secondary" on:click=move |_| on_cancel.run(())>
                    {t!(i18n, common.cancel)}
                </button>
                <button type="submit" class="primary" disabled=move || busy.get()>
                    {move || match (busy.get(), is_edit) {
                        (true, _) => t_string!(i18n, link_form.saving),
                        (false, true) => t_string!(i18n, link_form.save),
                        (false, false) => t_string!(i18n, link_form.create),
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
