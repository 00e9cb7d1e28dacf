//! Pieces several pages share: modal dialogs (a confirmation among them), a secret shown once,
//! the clipboard, a form's error from the API, and the refusal a role gets for a page it may
//! not use.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::text_prop::TextProp;
use shortlink::workspace::Role;

use crate::Auth;
use crate::api::{self, ApiError};
use crate::i18n::{Locale, t, t_string, td_string, use_i18n};

/// Copies `text`; the message says whether it worked (or how to copy by hand).
/// It runs in a spawned task, where no component's context (`use_i18n`) is at hand.
pub async fn copy_text(text: &str) -> String {
    let clipboard = window().navigator().clipboard();
    let locale = crate::range::locale();
    match wasm_bindgen_futures::JsFuture::from(clipboard.write_text(text)).await {
        Ok(_) => td_string!(locale, common.copied, text),
        Err(_) => td_string!(locale, common.clipboard_refused, text),
    }
}

/// The dashboard's language: English or 한국어 (each named in itself), kept in a cookie.
#[component]
pub fn LanguagePicker() -> impl IntoView {
    let i18n = use_i18n();
    let choose = move |ev: leptos::ev::Event| {
        let chosen = match event_target_value(&ev).as_str() {
            "ko" => Locale::ko,
            _ => Locale::en,
        };
        crate::range::set_locale(chosen);
        i18n.set_locale(chosen);
    };
    view! {
        <label class="language">
            <span class="visually-hidden">{t!(i18n, common.language)}</span>
            <select on:change=choose prop:value=move || match i18n.get_locale() {
                Locale::ko => "ko",
                Locale::en => "en",
            }>
                <option value="en" lang="en">"English"</option>
                <option value="ko" lang="ko">"한국어"</option>
            </select>
        </label>
    }
}

thread_local! {
    /// Per message signal with a flash on show, the number of that flash
    /// ([`flash`]); an entry goes when its flash does.
    static FLASHES_SHOWN: RefCell<HashMap<RwSignal<Option<String>>, u64>> =
        RefCell::new(HashMap::new());
    static FLASHES: Cell<u64> = const { Cell::new(0) };
}

/// Shows `text` in `notice` for four seconds. A later flash in the same place gets its own
/// four seconds: the earlier one's timer leaves it shown.
pub fn flash(notice: RwSignal<Option<String>>, text: String) {
    let number = FLASHES.with(|count| {
        count.set(count.get() + 1);
        count.get()
    });
    FLASHES_SHOWN.with_borrow_mut(|shown| shown.insert(notice, number));
    notice.try_set(Some(text));
    leptos::task::spawn_local(async move {
        TimeoutFuture::new(4000).await;
        let still_shown = FLASHES_SHOWN.with_borrow_mut(|shown| {
            let mine = shown.get(&notice) == Some(&number);
            if mine {
                shown.remove(&notice);
            }
            mine
        });
        if still_shown {
            notice.try_set(None);
        }
    });
}

/// A modal dialog over the page. The focus starts on its control marked `autofocus` (else its
/// first one), Tab and Shift+Tab go round its controls without leaving it, Escape closes it, and
/// the focus goes back to what had it when the dialog opened (the button that opened it).
#[component]
pub fn Modal(
    /// `alertdialog` for a question before something that cannot be undone.
    #[prop(default = "dialog")]
    role: &'static str,
    /// The id of the dialog's title.
    labelledby: &'static str,
    /// The id of the text that says what the dialog is about, if any.
    #[prop(optional)]
    describedby: Option<&'static str>,
    /// More classes for the dialog's box (`qr`).
    #[prop(optional)]
    class: &'static str,
    on_close: Callback<()>,
    children: Children,
) -> impl IntoView {
    let dialog = NodeRef::<leptos::html::Div>::new();
    // A dialog's opener that went (a row removed) is the list's to replace (`Refocus`).
    return_focus_on_close(None);
    Effect::new(move || {
        let Some(dialog) = dialog.get() else { return };
        let start = dialog
            .query_selector("[autofocus]")
            .ok()
            .flatten()
            .or_else(|| dialog.query_selector(FOCUSABLE).ok().flatten());
        focus(start);
    });
    let keydown = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
        "Escape" => {
            ev.stop_propagation();
            on_close.run(());
        }
        "Tab" => {
            if let Some(dialog) = dialog.get_untracked() {
                keep_focus_inside(&dialog, &ev);
            }
        }
        _ => {}
    };
    view! {
        <div class="overlay" on:keydown=keydown>
            <div class=format!("dialog {class}") role=role aria-modal="true" aria-labelledby=labelledby
                aria-describedby=describedby node_ref=dialog>
                {children()}
            </div>
        </div>
    }
}

/// What can take the focus in a dialog.
const FOCUSABLE: &str = "a[href], button:not(:disabled), input:not(:disabled), select:not(:disabled), \
    textarea:not(:disabled), [tabindex]:not([tabindex='-1'])";

/// Tab on the dialog's last control goes to its first, Shift+Tab on its first to its last
/// (and either, from outside it, into it).
fn keep_focus_inside(dialog: &web_sys::Element, ev: &leptos::ev::KeyboardEvent) {
    let first = dialog.query_selector(FOCUSABLE).ok().flatten();
    let last = last_focusable(dialog);
    let active = document().active_element();
    let inside = active.as_ref().is_some_and(|a| dialog.contains(Some(a)));
    let (edge, other) = if ev.shift_key() {
        (first, last)
    } else {
        (last, first)
    };
    if !inside || active.is_none() || active == edge {
        ev.prevent_default();
        focus(other);
    }
}

/// The last control that can take the focus in `root`, in document order.
fn last_focusable(root: &web_sys::Element) -> Option<web_sys::Element> {
    let mut child = root.last_element_child();
    while let Some(element) = child {
        if let Some(found) = last_focusable(&element) {
            return Some(found);
        }
        if element.matches(FOCUSABLE).unwrap_or(false) {
            return Some(element);
        }
        child = element.previous_element_sibling();
    }
    None
}

fn focus(element: Option<web_sys::Element>) {
    use wasm_bindgen::JsCast;
    if let Some(element) = element.and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()) {
        let _ = element.focus();
    }
}

/// When the component calling this goes away, the focus returns to the element that had it
/// when the component appeared, if that is still on the page; else, with a `fallback`, to
/// that once the page is drawn, if the focus was lost.
fn return_focus_on_close(fallback: Option<&'static str>) {
    let opener = StoredValue::new_local(document().active_element());
    on_cleanup(move || {
        let opener = opener.try_with_value(Clone::clone).flatten();
        // The body "has" the focus when nothing does: the form that opened it was gone already.
        let body: Option<web_sys::Element> = document().body().map(Into::into);
        let opener = opener.filter(|o| o.is_connected() && Some(o) != body.as_ref());
        match (opener, fallback) {
            (Some(opener), _) => focus(Some(opener)),
            (None, Some(fallback)) => focus_when_drawn(fallback.to_owned(), fallback),
            (None, None) => {}
        }
    });
}

/// Moves the focus to `target` (else to `fallback`) once the page is drawn, if it was lost
/// (the element that had it is gone): never away from where a person has put it meanwhile.
pub fn focus_when_drawn(target: String, fallback: &'static str) {
    request_animation_frame(move || {
        let lost = document()
            .active_element()
            .is_none_or(|active| Some(active) == document().body().map(Into::into));
        if !lost {
            return;
        }
        let found = document()
            .query_selector(&target)
            .ok()
            .flatten()
            .or_else(|| document().query_selector(fallback).ok().flatten());
        focus(found);
    });
}

/// Where the focus goes when a list is drawn again after one of its rows was removed through
/// a confirm dialog (a key revoked, a member removed): the button that opened the dialog went
/// with its row, and the focus with it, to nowhere. The lists are drawn again row by row, so
/// a button of a row that was not the last stays, in the next row's place, and keeps it.
#[derive(Clone, Copy)]
pub struct Refocus {
    target: StoredValue<Option<String>, LocalStorage>,
    /// The page's heading (`#keys-title`, with `tabindex="-1"`): where the focus goes when no
    /// row is left to take it.
    heading: &'static str,
}

impl Refocus {
    pub fn new(heading: &'static str) -> Self {
        Self {
            target: StoredValue::new_local(None),
            heading,
        }
    }

    /// Before the list is loaded again: the row of `opener` (the button that opened the
    /// dialog, or did the removal) will be gone, so the focus is to go to the same kind of
    /// button (its first class: `danger`, `secondary`) of the row then in its place, else of
    /// the row before it, else to the heading.
    pub fn after_removal(self, opener: Option<&web_sys::Element>) {
        let target = (|| {
            let opener = opener?;
            let kind = opener.class_list().item(0)?;
            let row = opener.closest("tr").ok()??;
            let table = row.closest("table").ok()??.id();
            let mut place = 1;
            let mut before = row.previous_element_sibling();
            while let Some(other) = before {
                place += 1;
                before = other.previous_element_sibling();
            }
            if row.next_element_sibling().is_none() {
                place -= 1;
            }
            (place > 0 && !table.is_empty())
                .then(|| format!("#{table} tbody tr:nth-child({place}) button.{kind}"))
        })();
        self.target
            .try_set_value(Some(target.unwrap_or_else(|| self.heading.to_owned())));
    }

    /// Where the list is drawn: moves the focus where [`Self::after_removal`] said, if it was
    /// lost.
    pub fn drawn(self) {
        if let Some(target) = self.target.try_update_value(Option::take).flatten() {
            focus_when_drawn(target, self.heading);
        }
    }
}

/// A dialog asking before something that cannot be undone. The focus starts on Cancel;
/// Escape cancels.
#[component]
pub fn ConfirmDialog(
    title: String,
    text: String,
    /// The label of the button that does it.
    confirm: String,
    busy: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    on_confirm: Callback<()>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <Modal role="alertdialog" labelledby="confirm-title" describedby="confirm-text" on_close=on_cancel>
            <h2 id="confirm-title">{title}</h2>
            <p id="confirm-text">{text}</p>
            <p class="error" role="alert">{move || error.get()}</p>
            <div class="buttons">
                <button class="secondary" autofocus on:click=move |_| on_cancel.run(())>{t!(i18n, common.cancel)}</button>
                <button class="danger" on:click=move |_| on_confirm.run(()) disabled=move || busy.get()>{confirm}</button>
            </div>
        </Modal>
    }
}

/// A secret (an invitation link, an API key) the origin gives once: a read-only field to
/// select, a Copy button, and a warning that it cannot be shown again.
#[component]
pub fn ShownOnce(
    /// The field's label, e.g. "Invitation link".
    label: String,
    value: String,
    hint: String,
    on_done: Callback<()>,
) -> impl IntoView {
    let i18n = use_i18n();
    let notice = RwSignal::new(None::<String>);
    let field = NodeRef::<leptos::html::Input>::new();
    // Opened by a form's submit button, which goes with the form (a new key's): then the
    // page's heading, not nowhere.
    return_focus_on_close(Some("h1[tabindex]"));
    Effect::new(move || {
        if let Some(input) = field.get() {
            let _ = input.focus();
            input.select();
        }
    });
    let copied = value.clone();
    let copy = move |_| {
        let text = copied.clone();
        leptos::task::spawn_local(async move { notice.set(Some(copy_text(&text).await)) });
    };
    view! {
        <section class="panel shown-once" aria-labelledby="shown-once-title">
            <h2 id="shown-once-title">{label.clone()}</h2>
            <div class="secret">
                <label for="shown-once" class="visually-hidden">{label}</label>
                <input id="shown-once" readonly node_ref=field prop:value=value aria-describedby="shown-once-hint"/>
                <button class="primary" on:click=copy>{t!(i18n, common.copy)}</button>
            </div>
            <p class="hint" id="shown-once-hint">{hint}</p>
            <p class="notice" role="status">{move || notice.get()}</p>
            <div class="buttons">
                <button class="secondary" on:click=move |_| on_done.run(())>{t!(i18n, common.done)}</button>
            </div>
        </section>
    }
}

/// What a person sees in place of a page their role does not open (the navigation hides it,
/// but an address can be typed or kept): the page's title, and why not. `title_id` is the id
/// the page's own heading has; `title` and `what` (the page's own phrase, "managing API keys")
/// are in the dashboard's language.
#[component]
pub fn Refused(
    title_id: &'static str,
    #[prop(into)] title: TextProp,
    #[prop(into)] what: TextProp,
) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let role = move || match auth.role() {
        Some(role) => role_label(role),
        None => t_string!(i18n, common.role_none).to_string(),
    };
    view! {
        <section class="page" aria-labelledby=title_id>
            <h1 id=title_id>{move || title.get()}</h1>
            <div class="error-box" role="alert">
                <p>{move || t_string!(i18n, common.refused, role = role(), what = what.get())}</p>
            </div>
        </section>
    }
}

/// The error of a page's data, with a way to try again.
#[component]
pub fn ErrorBox(message: String, reload: RwSignal<u32>) -> impl IntoView {
    view! {
        <div class="error-box" role="alert">
            <p>{message}</p>
            <button on:click=move |_| reload.update(|n| *n += 1)>{t!(use_i18n(), common.try_again)}</button>
        </div>
    }
}

/// A form's last refusal by the API, where the form shows it: under the input whose path it
/// names, or a value inside it (`targets[0]` shows `targets[0].when.country[1]`), or above the
/// form when it names none of the form's inputs.
#[derive(Debug, Clone, Copy)]
pub struct FormError {
    error: RwSignal<Option<ApiError>>,
    /// The paths the form has inputs for; an error about any other is the whole form's.
    fields: &'static [&'static str],
}

impl FormError {
    pub fn new(error: RwSignal<Option<ApiError>>, fields: &'static [&'static str]) -> Self {
        Self { error, fields }
    }

    /// Shows `error` where it belongs, or none (nothing once the form is gone: an answer may
    /// come after the person left the page).
    pub fn set(self, error: Option<ApiError>) {
        self.error.try_set(error);
    }

    /// The message about `path` or a value inside it, for the text under its input.
    pub fn at(self, path: impl Into<String>) -> Signal<Option<String>> {
        let path = path.into();
        self.message_if(move |field| is_under(field, &path))
    }

    /// The message about `path` itself, not a value inside it: a list's own (`split`: the
    /// weights), whose rows show theirs.
    pub fn exactly(self, path: &'static str) -> Signal<Option<String>> {
        self.message_if(move |field| field == path)
    }

    /// `aria-invalid` of the input of `path`.
    pub fn invalid(self, path: impl Into<String>) -> impl Fn() -> String + Copy {
        let at = self.at(path);
        move || at.with(Option::is_some).to_string()
    }

    /// The message about none of the form's inputs, for the text above or below it.
    pub fn general(self) -> impl Fn() -> Option<String> + Copy {
        move || {
            self.error.with(|e| {
                e.as_ref()
                    .filter(|e| {
                        !e.field
                            .as_deref()
                            .is_some_and(|f| self.fields.iter().any(|path| is_under(f, path)))
                    })
                    .map(|e| e.message.clone())
            })
        }
    }

    fn message_if(
        self,
        names: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Signal<Option<String>> {
        Signal::derive(move || {
            self.error.with(|e| {
                e.as_ref()
                    .filter(|e| e.field.as_deref().is_some_and(&names))
                    .map(|e| e.message.clone())
            })
        })
    }
}

/// Whether an error about `field` is about `path`: the path itself or a value inside it
/// (`targets[0]` holds `targets[0].when`, not `targets[01]` or `targetsX`).
fn is_under(field: &str, path: &str) -> bool {
    field
        .strip_prefix(path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// A role for people, in the dashboard's language: `Editor`, `편집자`.
pub fn role_label(role: Role) -> String {
    let i18n = use_i18n();
    match role {
        Role::Owner => t_string!(i18n, common.role_owner),
        Role::Admin => t_string!(i18n, common.role_admin),
        Role::Editor => t_string!(i18n, common.role_editor),
        Role::Viewer => t_string!(i18n, common.role_viewer),
    }
    .to_string()
}

/// The one way a page shows what it loads: "Loading…" until the first answer, the error with
/// Try again (a 401 has already sent the person to sign in, see `api`), or `children` with
/// the data. A reload keeps the data shown until the new answer comes (no flicker when a live
/// page polls).
#[component]
pub fn Loaded<T, V>(
    data: Json<T>,
    /// Bumped by Try again: the loader reads it, so the page asks again.
    reload: RwSignal<u32>,
    /// What is loading, e.g. "Loading links…" (default: "Loading…").
    #[prop(optional, into)]
    loading: Option<Signal<String>>,
    children: impl Fn(T) -> V + Send + Sync + 'static,
) -> impl IntoView
where
    T: serde::de::DeserializeOwned + 'static,
    V: IntoView + 'static,
{
    let i18n = use_i18n();
    move || match data.get() {
        None => {
            let text =
                loading.map_or_else(|| t_string!(i18n, common.loading).to_string(), |l| l.get());
            view! { <p class="loading" role="status">{text}</p> }.into_any()
        }
        Some(Err(err)) => view! { <ErrorBox message=err.message reload=reload/> }.into_any(),
        Some(Ok(value)) => children(value).into_any(),
    }
}

/// What a page loads, as a signal: `None` until the first answer. `fetch` runs again whenever
/// a signal it reads (before its future starts) changes; an answer that a newer one overtook
/// is dropped. `LocalResource` does the same, at several KB of .wasm per use, which the size
/// budget could not spare.
pub fn load<O, F>(fetch: impl Fn() -> F + 'static) -> RwSignal<Option<O>>
where
    O: Send + Sync + 'static,
    F: std::future::Future<Output = O> + 'static,
{
    let data = RwSignal::new(None);
    let latest = StoredValue::new(0_u32);
    Effect::new(move || {
        let future = fetch();
        let run = latest.get_value().wrapping_add(1);
        latest.set_value(run);
        leptos::task::spawn_local(async move {
            let answer = future.await;
            // The page may be gone (another page, another workspace) by now.
            if latest.try_get_value() == Some(run) {
                data.try_set(Some(answer));
            }
        });
    });
    data
}

/// The JSON answer of a GET, decoded as `T` when read. Every page's list loads through one
/// loader of text (not one per type): the size budget again.
pub struct Json<T> {
    raw: Memo<Option<Result<String, ApiError>>>,
    /// Every answer as it comes, also one equal to the last (which `raw` does not tell).
    answers: RwSignal<Option<Result<String, ApiError>>>,
    kind: std::marker::PhantomData<fn() -> T>,
}

impl<T> Json<T> {
    /// Whether the latest answer was a success (`None` before the first), tracked so that
    /// every answer notifies, also one equal to the last: a live page asks again only once
    /// its request was answered, and waits longer while they fail.
    pub fn answered(self) -> Option<bool> {
        self.answers
            .with(|answer| answer.as_ref().map(Result::is_ok))
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Json<T> {}

impl<T: serde::de::DeserializeOwned> Json<T> {
    /// `None` until the first answer (tracked).
    pub fn get(self) -> Option<Result<T, ApiError>> {
        self.raw.with(|raw| {
            raw.as_ref().map(|raw| match raw {
                Ok(text) => api::decode(text),
                Err(err) => Err(err.clone()),
            })
        })
    }
}

/// Loads `url` (again whenever the signals `url` reads change).
pub fn load_json<T>(url: impl Fn() -> String + 'static) -> Json<T> {
    let answers = load_text(Box::new(url));
    Json {
        // An answer equal to the one shown (a live page asking again while nothing
        // changed) does not draw the page anew.
        raw: Memo::new(move |_| answers.get()),
        answers,
        kind: std::marker::PhantomData,
    }
}

fn load_text(url: Box<dyn Fn() -> String>) -> RwSignal<Option<Result<String, ApiError>>> {
    load(move || {
        let url = url();
        async move { api::get_text(&url).await }
    })
}
