//! The workspace's webhook endpoints: the events each gets, whether it is on (and, when the
//! origin switched it off, why), its signing secret (form_error once, rotated on request), a test
//! event, and the log of its deliveries with their attempts and a redelivery. Admins and owners
//! only.

use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use shortlink::webhook::{
    CreatedWebhook, DeliveryDetail, DeliveryPage, DeliveryQuery, DeliveryState, Description,
    EventType, Events, UpdateWebhook, Webhook, WebhookDelivery,
};
use shortlink::workspace::Permission;

use crate::api::ApiError;
use crate::i18n::{t, t_string, td_string, use_i18n};
use crate::range::{count, date_time, locale};
use crate::widgets::{
    ConfirmDialog, FormError, Loaded, Refocus, Refused, ShownOnce, flash, load_json,
};
use crate::{Auth, api};

/// Deliveries a page of the log asks for.
const DELIVERIES_PAGE: i64 = 50;

/// What a confirm dialog asks about.
#[derive(Debug, Clone)]
enum Asking {
    Rotate(Webhook),
    Delete(Webhook),
}

/// What the form does.
#[derive(Debug, Clone)]
enum Editing {
    New,
    Edit(Box<Webhook>),
}

/// What the page's parts share.
#[derive(Clone, Copy)]
struct WebhooksState {
    /// Bumped to load the endpoints again.
    endpoints: RwSignal<u32>,
    /// What was just done (or why it was not).
    notice: RwSignal<Option<String>>,
    /// The form, when open.
    editing: RwSignal<Option<Editing>>,
    /// A new endpoint's or rotated secret, form_error once.
    secret: RwSignal<Option<CreatedWebhook>>,
    /// What a confirm dialog asks about, when open.
    asking: RwSignal<Option<Asking>>,
    /// The endpoint whose delivery log is open.
    log_of: RwSignal<Option<Webhook>>,
    /// Where the focus goes once the endpoints are drawn again after one was deleted.
    refocus: Refocus,
}

impl WebhooksState {
    fn reload(self) {
        self.endpoints.update(|n| *n += 1);
    }
}

#[component]
pub fn Webhooks() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    if !auth.permits(Permission::Administer) {
        return view! {
            <Refused title_id="webhooks-title" title=move || t_string!(i18n, webhooks.title)
                what=move || t_string!(i18n, webhooks.refused_what)/>
        }
        .into_any();
    }
    let state = WebhooksState {
        endpoints: RwSignal::new(0),
        notice: RwSignal::new(None),
        editing: RwSignal::new(None),
        secret: RwSignal::new(None),
        asking: RwSignal::new(None),
        log_of: RwSignal::new(None),
        refocus: Refocus::new("#webhooks-title"),
    };
    provide_context(state);
    let hooks = load_json::<Vec<Webhook>>(move || {
        state.endpoints.track();
        "/api/v1/webhooks".to_owned()
    });
    let new_endpoint = move |_| {
        state.secret.set(None);
        state.editing.set(Some(Editing::New));
    };
    view! {
        <section class="page" aria-labelledby="webhooks-title">
            <div class="page-head">
                <h1 id="webhooks-title" tabindex="-1">{t!(i18n, webhooks.title)}</h1>
                <button class="primary" on:click=new_endpoint>{t!(i18n, webhooks.new_endpoint)}</button>
            </div>
            <p class="hint">{t!(i18n, webhooks.hint)}</p>
            <p class="notice" role="status" aria-live="polite">{move || state.notice.get()}</p>
            {move || state.editing.get().map(|mode| view! { <WebhookForm mode=mode/> })}
            {move || state.secret.get().map(|created| view! {
                <ShownOnce label=t_string!(i18n, webhooks.secret_label, url = created.webhook.url.as_str())
                    value=created.secret hint=t_string!(i18n, webhooks.secret_hint).to_owned()
                    on_done=Callback::new(move |()| state.secret.set(None))/>
            })}
            <Loaded data=hooks reload=state.endpoints loading=t_string!(i18n, webhooks.loading).to_owned() let:list>
                <Endpoints list=list/>
            </Loaded>
            {move || state.log_of.get().map(|hook| view! { <DeliveryLog hook=hook/> })}
            {move || state.asking.get().map(|what| view! { <Confirm what=what/> })}
        </section>
    }
    .into_any()
}

/// The endpoints' table, under a warning when kurz switched some off.
#[component]
fn Endpoints(list: Vec<Webhook>) -> impl IntoView {
    let i18n = use_i18n();
    expect_context::<WebhooksState>().refocus.drawn();
    if list.is_empty() {
        return view! { <p class="empty">{t!(i18n, webhooks.empty)}</p> }.into_any();
    }
    let off = list
        .iter()
        .filter(|h| h.disabled_reason.is_some() && !h.enabled)
        .count();
    let warning = (off > 0).then(|| {
        let text = if off == 1 {
            t_string!(i18n, webhooks.switched_off_single).to_owned()
        } else {
            t_string!(
                i18n,
                webhooks.switched_off_several,
                count = count(off as i64)
            )
        };
        view! { <div class="error-box" id="webhooks-disabled" role="status"><p>{text}</p></div> }
    });
    view! {
        {warning}
        <div class="table-wrap">
            <table id="webhooks-table">
                <thead>
                    <tr>
                        <th scope="col">{t!(i18n, webhooks.col_endpoint)}</th>
                        <th scope="col">{t!(i18n, webhooks.col_state)}</th>
                        <th scope="col"><span class="visually-hidden">{t!(i18n, webhooks.col_actions)}</span></th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|hook| view! { <WebhookRow hook=hook/> }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn WebhookRow(hook: Webhook) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<WebhooksState>();
    let busy = RwSignal::new(false);
    let (id, enabled, url) = (hook.id, hook.enabled, hook.url.as_str().to_owned());
    let events = hook
        .events
        .as_slice()
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let toggle = move |_| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        let body = UpdateWebhook {
            enabled: Some(!enabled),
            ..UpdateWebhook::default()
        };
        leptos::task::spawn_local(async move {
            let done = api::update_webhook(&session, id, &body).await;
            busy.set(false);
            match done {
                Ok(_) => state.reload(),
                Err(err) => flash(state.notice, err.message),
            }
        });
    };
    let for_test = hook.clone();
    let send_test = move |_| {
        let Some(session) = auth.session() else {
            return;
        };
        let hook = for_test.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            let done = api::test_webhook(&session, id).await;
            busy.set(false);
            match done {
                Ok(()) => {
                    flash(
                        state.notice,
                        t_string!(i18n, webhooks.test_queued).to_owned(),
                    );
                    // Shows this endpoint's log, loaded anew with the test delivery.
                    state.log_of.set(Some(hook));
                }
                Err(err) => flash(state.notice, err.message),
            }
        });
    };
    let badge = if hook.enabled {
        view! { <span class="badge">{t!(i18n, webhooks.enabled)}</span> }.into_any()
    } else {
        let since = match hook.disabled_at {
            Some(at) => t_string!(i18n, webhooks.switched_off_at, date = date_time(at)),
            None => t_string!(i18n, webhooks.switched_off).to_owned(),
        };
        view! {
            <span class="badge off">{t!(i18n, webhooks.disabled)}</span>
            {hook.disabled_reason.as_deref().map(switched_off_reason).map(|why| view! {
                <p class="error disabled-reason"><strong>{since}</strong>" "{why}</p>
            })}
        }
        .into_any()
    };
    let failing = hook.failing_since.filter(|_| hook.enabled).map(|at| {
        let text = t_string!(i18n, webhooks.failing_since, date = date_time(at));
        view! { <p class="error">{text}</p> }
    });
    let last_success = hook
        .last_success_at
        .map_or_else(|| t_string!(i18n, webhooks.never).to_owned(), date_time);
    let deliveries_label = t_string!(i18n, webhooks.deliveries_of, url = url.clone());
    let test_label = t_string!(i18n, webhooks.send_test_to, url = url.clone());
    let switch_label = t_string!(i18n, webhooks.enabled_switch, url = url.clone());
    let edit_label = t_string!(i18n, webhooks.edit_label, url = url.clone());
    let rotate_label = t_string!(i18n, webhooks.rotate_label, url = url.clone());
    let delete_label = t_string!(i18n, webhooks.delete_label, url = url.clone());
    let (for_edit, for_log, for_rotate, for_delete) =
        (hook.clone(), hook.clone(), hook.clone(), hook.clone());
    let row_key = url.clone();
    view! {
        <tr data-webhook=row_key>
            <td class="destination">
                <span class="code">{url}</span>
                {(!hook.description.is_empty()).then(|| view! { <p class="hint">{hook.description.as_str().to_owned()}</p> })}
                <p class="hint">{events}</p>
            </td>
            <td>
                {badge}
                {failing}
                <p class="hint">{t_string!(i18n, webhooks.last_success, date = last_success)}</p>
            </td>
            <td class="actions">
                <button class="secondary" on:click=move |_| state.log_of.set(Some(for_log.clone()))
                    aria-label=deliveries_label>{t!(i18n, webhooks.deliveries)}</button>
                <button class="secondary" disabled=move || busy.get() on:click=send_test
                    aria-label=test_label>{t!(i18n, webhooks.send_test)}</button>
                <button class="secondary" role="switch" aria-checked=enabled.to_string() disabled=move || busy.get()
                    aria-label=switch_label on:click=toggle>
                    {if enabled { t_string!(i18n, webhooks.disable) } else { t_string!(i18n, webhooks.enable) }}
                </button>
                <button class="secondary" on:click=move |_| state.editing.set(Some(Editing::Edit(Box::new(for_edit.clone()))))
                    aria-label=edit_label>{t!(i18n, webhooks.edit)}</button>
                <button class="secondary" on:click=move |_| state.asking.set(Some(Asking::Rotate(for_rotate.clone())))
                    aria-label=rotate_label>{t!(i18n, webhooks.rotate)}</button>
                <button class="danger" on:click=move |_| state.asking.set(Some(Asking::Delete(for_delete.clone())))
                    aria-label=delete_label>{t!(i18n, webhooks.delete)}</button>
            </td>
        </tr>
    }
}

/// Why kurz switched an endpoint off, in the dashboard's language. The origin writes the
/// reason in English, in one of two shapes (`the receiver answered 410 Gone at …: …`,
/// `failing since …: last answer …`); those are told in words, anything else as it is.
fn switched_off_reason(reason: &str) -> String {
    let l = locale();
    if reason.starts_with("the receiver answered 410 Gone") {
        return td_string!(l, webhooks.reason_gone).to_owned();
    }
    match reason
        .strip_prefix("failing since ")
        .and_then(|rest| rest.split_once(": last answer "))
    {
        Some((_, detail)) => {
            td_string!(l, webhooks.reason_failing, detail = detail.to_owned())
        }
        None => reason.to_owned(),
    }
}

/// What an event is, in words.
fn event_description(event: EventType) -> &'static str {
    let l = locale();
    match event {
        EventType::LinkCreated => td_string!(l, webhooks.event_link_created),
        EventType::LinkUpdated => td_string!(l, webhooks.event_link_updated),
        EventType::LinkDeleted => td_string!(l, webhooks.event_link_deleted),
        EventType::LinkClicked => td_string!(l, webhooks.event_link_clicked),
        EventType::LinkLimitReached => td_string!(l, webhooks.event_link_limit_reached),
        EventType::Test => "",
    }
}

#[component]
fn WebhookForm(mode: Editing) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<WebhooksState>();
    let editing = match mode {
        Editing::New => None,
        Editing::Edit(hook) => Some(*hook),
    };
    let url = RwSignal::new(
        editing
            .as_ref()
            .map(|h| h.url.as_str().to_owned())
            .unwrap_or_default(),
    );
    let description = RwSignal::new(
        editing
            .as_ref()
            .map(|h| h.description.as_str().to_owned())
            .unwrap_or_default(),
    );
    let chosen = EventType::ALL.map(|event| {
        let on = editing
            .as_ref()
            .map_or(event == EventType::LinkCreated, |h| {
                h.events.contains(event)
            });
        (event, RwSignal::new(on))
    });
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let id = editing.as_ref().map(|h| h.id);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let Some(session) = auth.session() else {
            return;
        };
        // The rules are shortlink's, checked here first so the message sits at its field.
        let local = |field: &str, err: shortlink::Error| ApiError {
            status: 0,
            code: "invalid_input".to_owned(),
            message: t_string!(i18n, errors.invalid_input, detail = err.to_string()),
            field: Some(field.to_owned()),
        };
        // The URL is the origin's to check and normalise (see `api::WebhookForm`).
        let parsed = Description::parse(&description.get_untracked())
            .map_err(|e| local("description", e))
            .and_then(|description| {
                let events = Events::parse(
                    chosen
                        .iter()
                        .filter(|(_, on)| on.get_untracked())
                        .map(|(event, _)| *event)
                        .collect(),
                )
                .map_err(|e| local("events", e))?;
                Ok(api::WebhookForm {
                    url: url.get_untracked().trim().to_owned(),
                    description,
                    events,
                })
            });
        let body = match parsed {
            Ok(body) => body,
            Err(err) => {
                error.set(Some(err));
                return;
            }
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            let saved = match id {
                None => api::create_webhook(&session, &body).await.map(Some),
                Some(id) => api::update_webhook(&session, id, &body).await.map(|_| None),
            };
            busy.set(false);
            match saved {
                Ok(created) => {
                    state.editing.set(None);
                    state.secret.set(created);
                    state.reload();
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    let form_error = FormError::new(error, &["url", "description", "events"]);
    let title = match &editing {
        None => t_string!(i18n, webhooks.new_endpoint).to_owned(),
        Some(hook) => t_string!(i18n, webhooks.edit_label, url = hook.url.as_str()),
    };
    view! {
        <form class="panel link-form" on:submit=submit aria-labelledby="webhook-form-title" novalidate>
            <h2 id="webhook-form-title">{title}</h2>
            <div class="field wide">
                <label for="webhook-url">{t!(i18n, webhooks.url)}</label>
                <input id="webhook-url" type="url" bind:value=url placeholder=t_string!(i18n, webhooks.url_placeholder)
                    aria-describedby="webhook-url-error" aria-invalid=form_error.invalid("url")/>
                <p class="field-error" id="webhook-url-error" role="alert">{form_error.at("url")}</p>
            </div>
            <div class="field wide">
                <label for="webhook-description">{t!(i18n, webhooks.description)}</label>
                <input id="webhook-description" bind:value=description aria-describedby="webhook-description-error"
                    aria-invalid=form_error.invalid("description")/>
                <p class="field-error" id="webhook-description-error" role="alert">{form_error.at("description")}</p>
            </div>
            <fieldset class="wide scopes" aria-describedby="webhook-events-error">
                <legend>{t!(i18n, webhooks.events)}</legend>
                {chosen.into_iter().map(|(event, on)| view! {
                    <label class="check">
                        <input type="checkbox" bind:checked=on/>
                        <code>{event.as_str()}</code>" "
                        <span class="hint">{event_description(event)}</span>
                    </label>
                }).collect_view()}
                <p class="field-error" id="webhook-events-error" role="alert">{form_error.at("events")}</p>
            </fieldset>
            <p class="error" role="alert">{form_error.general()}</p>
            <div class="buttons">
                <button type="button" class="secondary" on:click=move |_| state.editing.set(None)>{t!(i18n, common.cancel)}</button>
                <button type="submit" class="primary" disabled=move || busy.get()>
                    {if id.is_some() { t_string!(i18n, webhooks.save) } else { t_string!(i18n, webhooks.create) }}
                </button>
            </div>
        </form>
    }
}

/// Asks before rotating a secret or deleting an endpoint, then does it.
#[component]
fn Confirm(what: Asking) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<WebhooksState>();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let (hook, rotate) = match what {
        Asking::Rotate(hook) => (hook, true),
        Asking::Delete(hook) => (hook, false),
    };
    let (id, url) = (hook.id, hook.url.as_str().to_owned());
    let opener = StoredValue::new_local(document().active_element());
    let confirm = Callback::new(move |()| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        leptos::task::spawn_local(async move {
            let done = if rotate {
                api::rotate_webhook_secret(&session, id).await.map(Some)
            } else {
                api::delete_webhook(&session, id).await.map(|()| None)
            };
            busy.set(false);
            match done {
                Ok(rotated) => {
                    if !rotate {
                        opener
                            .try_with_value(|opener| state.refocus.after_removal(opener.as_ref()));
                    }
                    // The dialog first, which gives the focus back to the row's button: the
                    // new secret's panel gives it back there when done, not to the dialog's.
                    state.asking.set(None);
                    match rotated {
                        Some(created) => state.secret.set(Some(created)),
                        None => flash(state.notice, t_string!(i18n, webhooks.deleted).to_owned()),
                    }
                    state.reload();
                }
                Err(err) => error.set(Some(err.message)),
            }
        });
    });
    let (title, text, button) = if rotate {
        (
            t_string!(i18n, webhooks.rotate_title, url),
            t_string!(i18n, webhooks.rotate_text),
            t_string!(i18n, webhooks.rotate),
        )
    } else {
        (
            t_string!(i18n, webhooks.delete_title, url),
            t_string!(i18n, webhooks.delete_text),
            t_string!(i18n, webhooks.delete_confirm),
        )
    };
    view! {
        <ConfirmDialog title=title text=text.to_owned() confirm=button.to_owned() busy=busy error=error
            on_confirm=confirm on_cancel=Callback::new(move |()| state.asking.set(None))/>
    }
}

/// What the delivery log's rows share.
#[derive(Clone, Copy)]
struct LogState {
    /// The endpoint's id.
    hook: i64,
    /// Bumped to load the log again.
    reload: RwSignal<u32>,
    /// The delivery whose attempts are form_error.
    open: RwSignal<Option<i64>>,
}

/// The deliveries of one endpoint, newest first, a page at a time; while one is pending the
/// log reloads by itself every two seconds.
#[component]
fn DeliveryLog(hook: Webhook) -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<WebhooksState>();
    let log = LogState {
        hook: hook.id,
        reload: RwSignal::new(0),
        open: RwSignal::new(None),
    };
    provide_context(log);
    let cursor = RwSignal::new(None::<String>);
    let was_pending = StoredValue::new(false);
    let page = load_json::<DeliveryPage>(move || {
        log.reload.track();
        let query = DeliveryQuery {
            cursor: cursor.get(),
            limit: Some(DELIVERIES_PAGE),
            state: None,
        };
        format!(
            "/api/v1/webhooks/{}/deliveries?{}",
            log.hook,
            api::query_string(&query)
        )
    });
    // The poll armed last: an answer that came another way (Refresh, Redeliver, another page
    // of the log) arms a new one, and the one before must not start a chain of its own.
    let armed = StoredValue::new(0_u32);
    Effect::new(move || {
        // Every answer re-arms the poll, also one equal to the last (which `get` does not
        // signal): else a delivery still pending after a poll would stop the polling.
        page.answered();
        let pending = page.get().is_some_and(|page| {
            page.is_ok_and(|page| {
                page.deliveries
                    .iter()
                    .any(|d| d.state == DeliveryState::Pending)
            })
        });
        // The last pending delivery ended: the endpoint's state may have changed with it.
        if was_pending.get_value() && !pending {
            state.reload();
        }
        was_pending.set_value(pending);
        let this = armed.get_value().wrapping_add(1);
        armed.set_value(this);
        if pending {
            // A task, not a forgotten `Timeout`, whose closure would never be freed.
            leptos::task::spawn_local(async move {
                TimeoutFuture::new(2000).await;
                if armed.try_get_value() == Some(this) {
                    log.reload.try_update(|n| *n += 1);
                }
            });
        }
    });
    let title = t_string!(i18n, webhooks.log_title, url = hook.url.as_str());
    view! {
        <section class="panel" aria-labelledby="deliveries-title">
            <div class="page-head">
                <h2 id="deliveries-title">{title}</h2>
                <div class="buttons start">
                    <button class="secondary" on:click=move |_| log.reload.update(|n| *n += 1)>{t!(i18n, webhooks.refresh)}</button>
                    <button class="secondary" on:click=move |_| state.log_of.set(None)>{t!(i18n, webhooks.close)}</button>
                </div>
            </div>
            <Loaded data=page reload=log.reload loading=t_string!(i18n, webhooks.loading_deliveries).to_owned() let:page>
                <Deliveries page=page cursor=cursor/>
            </Loaded>
        </section>
    }
}

/// A page of the log, and the way to older pages.
#[component]
fn Deliveries(page: DeliveryPage, cursor: RwSignal<Option<String>>) -> impl IntoView {
    let i18n = use_i18n();
    if page.deliveries.is_empty() {
        return view! { <p class="empty">{t!(i18n, webhooks.no_deliveries)}</p> }.into_any();
    }
    let next = page.next_cursor;
    view! {
        <div class="table-wrap">
            <table id="deliveries-table" aria-labelledby="deliveries-title">
                <thead>
                    <tr>
                        <th scope="col">{t!(i18n, webhooks.col_event)}</th>
                        <th scope="col">{t!(i18n, webhooks.col_state)}</th>
                        <th scope="col" class="num">{t!(i18n, webhooks.col_answer)}</th>
                        <th scope="col" class="num">{t!(i18n, webhooks.col_attempts)}</th>
                        <th scope="col">{t!(i18n, webhooks.col_created)}</th>
                        <th scope="col">{t!(i18n, webhooks.col_last_attempt)}</th>
                        <th scope="col"><span class="visually-hidden">{t!(i18n, webhooks.col_actions)}</span></th>
                    </tr>
                </thead>
                <tbody>
                    {page.deliveries.into_iter().map(|delivery| view! { <DeliveryRow delivery=delivery/> }).collect_view()}
                </tbody>
            </table>
        </div>
        <nav class="pager" aria-label=t_string!(i18n, webhooks.pages)>
            <button class="secondary" disabled=move || cursor.with(Option::is_none)
                on:click=move |_| cursor.set(None)>{t!(i18n, webhooks.newest)}</button>
            <button class="secondary" disabled=next.is_none()
                on:click=move |_| if let Some(next) = next.clone() { cursor.set(Some(next)) }>{t!(i18n, webhooks.older)}</button>
        </nav>
    }
    .into_any()
}

#[component]
fn DeliveryRow(delivery: WebhookDelivery) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<WebhooksState>();
    let log = expect_context::<LogState>();
    let id = delivery.id;
    let busy = RwSignal::new(false);
    let redeliver = move |_| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        leptos::task::spawn_local(async move {
            let done = api::redeliver(&session, log.hook, id).await;
            busy.set(false);
            match done {
                Ok(()) => {
                    flash(
                        state.notice,
                        t_string!(i18n, webhooks.sent_again).to_owned(),
                    );
                    log.reload.update(|n| *n += 1);
                }
                Err(err) => flash(state.notice, err.message),
            }
        });
    };
    let state_text = match delivery.state {
        DeliveryState::Pending => t_string!(i18n, webhooks.state_pending),
        DeliveryState::Delivered => t_string!(i18n, webhooks.state_delivered),
        DeliveryState::Failed => t_string!(i18n, webhooks.state_failed),
    };
    let next_try = delivery
        .next_attempt_at
        .filter(|_| delivery.state == DeliveryState::Pending)
        .map(|at| t_string!(i18n, webhooks.next_try, date = date_time(at)));
    let attempts_label = t_string!(i18n, webhooks.attempts_of, id);
    let redeliver_label = t_string!(i18n, webhooks.redeliver_label, id);
    let open = log.open;
    view! {
        <tr data-delivery=id.to_string() data-state=delivery.state.as_str()>
            <td><code>{delivery.event_type.as_str()}</code></td>
            <td>
                <span class=if delivery.state == DeliveryState::Failed { "badge off" } else { "badge" }>{state_text}</span>
                {next_try.map(|text| view! { <p class="hint">{text}</p> })}
                {delivery.last_error.clone().map(|e| view! { <p class="error">{e}</p> })}
            </td>
            <td class="num">{delivery.last_status.map_or_else(|| "—".to_owned(), |s| s.to_string())}</td>
            <td class="num">{count(i64::from(delivery.attempts))}</td>
            <td>{date_time(delivery.created_at)}</td>
            <td>{delivery.last_attempt_at.map_or_else(|| "—".to_owned(), date_time)}</td>
            <td class="actions">
                <button class="secondary" aria-expanded=move || (open.get() == Some(id)).to_string()
                    on:click=move |_| open.update(|o| *o = if *o == Some(id) { None } else { Some(id) })
                    aria-label=attempts_label>{t!(i18n, webhooks.attempts)}</button>
                <button class="secondary" disabled=move || busy.get() on:click=redeliver
                    aria-label=redeliver_label>{t!(i18n, webhooks.redeliver)}</button>
            </td>
        </tr>
        {move || (open.get() == Some(id)).then(|| view! {
            <tr class="attempts"><td colspan="7"><Attempts delivery=id/></td></tr>
        })}
    }
}

/// Every attempt of one delivery, oldest first.
#[component]
fn Attempts(delivery: i64) -> impl IntoView {
    let i18n = use_i18n();
    let log = expect_context::<LogState>();
    let reload = RwSignal::new(0_u32);
    let detail = load_json::<DeliveryDetail>(move || {
        reload.track();
        format!("/api/v1/webhooks/{}/deliveries/{delivery}", log.hook)
    });
    view! {
        <Loaded data=detail reload=reload loading=t_string!(i18n, webhooks.loading_attempts).to_owned() let:detail>
            <p class="hint">{t_string!(i18n, webhooks.message_id, id = detail.delivery.message_id.clone())}</p>
            {detail.attempts.is_empty().then(|| view! { <p class="empty small">{t!(i18n, webhooks.no_attempt)}</p> })}
            <ol class="attempt-list">
                {detail.attempts.into_iter().map(|a| {
                    let answer = match a.status {
                        Some(status) => t_string!(i18n, webhooks.http, status),
                        None => a.error.unwrap_or_else(|| t_string!(i18n, webhooks.no_answer).to_owned()),
                    };
                    let text = t_string!(
                        i18n,
                        webhooks.attempt,
                        n = a.attempt,
                        date = date_time(a.at),
                        answer,
                        ms = count(i64::from(a.duration_ms))
                    )
                    ;
                    view! { <li>{text}</li> }
                }).collect_view()}
            </ol>
        </Loaded>
    }
}
