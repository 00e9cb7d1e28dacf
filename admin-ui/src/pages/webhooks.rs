//! The workspace's webhook endpoints: the events each gets, whether it is on (and, when the
//! origin switched it off, why), its signing secret (shown once, rotated on request), a test
//! event, and the log of its deliveries with their attempts and a redelivery. Admins and owners
//! only.

use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use shortlink::webhook::{
    CreateWebhook, CreatedWebhook, DeliveryDetail, DeliveryPage, DeliveryState, Description,
    EventType, Events, UpdateWebhook, Webhook, WebhookDelivery, WebhookUrl,
};
use shortlink::workspace::Permission;

use crate::api::ApiError;
use crate::range::date_time;
use crate::widgets::{ConfirmDialog, ErrorBox, Refused, ShownOnce, flash};
use crate::{Auth, api};

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

#[component]
pub fn Webhooks() -> impl IntoView {
    let auth = expect_context::<Auth>();
    if !auth.permits(Permission::Administer) {
        return view! {
            <section class="page" aria-labelledby="webhooks-title">
                <h1 id="webhooks-title">"Webhooks"</h1>
                <Refused role=auth.role() what="managing webhooks"/>
            </section>
        }
        .into_any();
    }
    let reload = RwSignal::new(0_u32);
    let notice = RwSignal::new(None::<String>);
    let editing = RwSignal::new(None::<Editing>);
    let secret = RwSignal::new(None::<CreatedWebhook>);
    let asking = RwSignal::new(None::<Asking>);
    let log_of = RwSignal::new(None::<Webhook>);
    let hooks = crate::widgets::load_json::<Vec<Webhook>>(move || {
        reload.track();
        "/api/v1/webhooks".to_owned()
    });
    let on_saved = Callback::new(move |created: Option<CreatedWebhook>| {
        editing.set(None);
        secret.set(created);
        reload.update(|n| *n += 1);
    });
    view! {
        <section class="page" aria-labelledby="webhooks-title">
            <div class="page-head">
                <h1 id="webhooks-title">"Webhooks"</h1>
                <button class="primary" on:click=move |_| { secret.set(None); editing.set(Some(Editing::New)) }>"New endpoint"</button>
            </div>
            <p class="hint">"Each endpoint gets the events it chose as signed POSTs (Standard Webhooks: \
                webhook-id, webhook-timestamp, webhook-signature), retried for a day; one failing all that \
                time, or answering 410, is switched off."</p>
            <p class="notice" role="status" aria-live="polite">{move || notice.get()}</p>
            {move || editing.get().map(|mode| view! {
                <WebhookForm mode=mode on_saved=on_saved on_cancel=Callback::new(move |()| editing.set(None))/>
            })}
            {move || secret.get().map(|created| view! {
                <ShownOnce label=format!("Signing secret of {}", created.webhook.url.as_str()) value=created.secret
                    hint="Copy it now: it is shown only once. Receivers check each message's webhook-signature with it.".to_owned()
                    on_done=Callback::new(move |()| secret.set(None))/>
            })}
            {move || match hooks.get() {
                None => view! { <p class="loading">"Loading endpoints…"</p> }.into_any(),
                Some(Err(err)) => view! { <ErrorBox message=err.message reload=reload/> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="empty">"No endpoints yet."</p> }.into_any(),
                Some(Ok(list)) => {
                    let off = list.iter().filter(|h| h.disabled_reason.is_some() && !h.enabled).count();
                    view! {
                        {(off > 0).then(|| view! {
                            <div class="error-box" id="webhooks-disabled">
                                <p>{if off == 1 {
                                    "1 endpoint was switched off by kurz: see why below. Enable it again once its receiver works.".to_owned()
                                } else {
                                    format!("{off} endpoints were switched off by kurz: see why below. Enable each again once its receiver works.")
                                }}</p>
                            </div>
                        })}
                        <div class="table-wrap">
                            <table id="webhooks-table">
                                <thead>
                                    <tr>
                                        <th scope="col">"Endpoint and events"</th>
                                        <th scope="col">"State"</th>
                                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {list.into_iter().map(|hook| view! {
                                        <WebhookRow hook=hook editing=editing asking=asking log_of=log_of notice=notice reload=reload/>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any()
                }
            }}
            {move || log_of.get().map(|hook| view! { <DeliveryLog hook=hook log_of=log_of notice=notice endpoints=reload/> })}
            {move || asking.get().map(|what| view! {
                <Confirm what=what asking=asking secret=secret notice=notice reload=reload/>
            })}
        </section>
    }
    .into_any()
}

#[component]
fn WebhookRow(
    hook: Webhook,
    editing: RwSignal<Option<Editing>>,
    asking: RwSignal<Option<Asking>>,
    log_of: RwSignal<Option<Webhook>>,
    notice: RwSignal<Option<String>>,
    reload: RwSignal<u32>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
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
                Ok(_) => reload.update(|n| *n += 1),
                Err(err) => {
                    auth.check(&err);
                    flash(notice, err.message);
                }
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
                    flash(notice, "Test event queued: see the deliveries.".to_owned());
                    // Shows this endpoint's log, loaded anew with the test delivery.
                    log_of.set(Some(hook));
                }
                Err(err) => {
                    auth.check(&err);
                    flash(notice, err.message);
                }
            }
        });
    };
    let state = if hook.enabled {
        view! { <span class="badge">"enabled"</span> }.into_any()
    } else {
        let since = hook
            .disabled_at
            .map(|at| format!(" since {}", date_time(at)))
            .unwrap_or_default();
        view! {
            <span class="badge off">"disabled"</span>
            {hook.disabled_reason.clone().map(|why| view! {
                <p class="error disabled-reason"><strong>{format!("Switched off{since}: ")}</strong>{why}</p>
            })}
        }
        .into_any()
    };
    let failing = hook
        .failing_since
        .filter(|_| hook.enabled)
        .map(|at| view! { <p class="error">{format!("Failing since {}", date_time(at))}</p> });
    let (for_edit, for_log, for_rotate, for_delete) =
        (hook.clone(), hook.clone(), hook.clone(), hook.clone());
    view! {
        <tr data-webhook=url>
            <td class="destination">
                <span class="code">{url.clone()}</span>
                {(!hook.description.is_empty()).then(|| view! { <p class="hint">{hook.description.as_str().to_owned()}</p> })}
                <p class="hint">{events}</p>
            </td>
            <td>
                {state}
                {failing}
                <p class="hint">{format!("Last success: {}", hook.last_success_at.map_or_else(|| "never".to_owned(), date_time))}</p>
            </td>
            <td class="actions">
                <button class="secondary" on:click=move |_| log_of.set(Some(for_log.clone()))
                    aria-label=format!("Deliveries of {url}")>"Deliveries"</button>
                <button class="secondary" disabled=move || busy.get() on:click=send_test
                    aria-label=format!("Send test event to {url}")>"Send test event"</button>
                <button class="secondary" role="switch" aria-checked=enabled.to_string() disabled=move || busy.get()
                    aria-label=format!("Enabled: {url}") on:click=toggle>{if enabled { "Disable" } else { "Enable" }}</button>
                <button class="secondary" on:click=move |_| editing.set(Some(Editing::Edit(Box::new(for_edit.clone()))))
                    aria-label=format!("Edit {url}")>"Edit"</button>
                <button class="secondary" on:click=move |_| asking.set(Some(Asking::Rotate(for_rotate.clone())))
                    aria-label=format!("Rotate the secret of {url}")>"Rotate secret"</button>
                <button class="danger" on:click=move |_| asking.set(Some(Asking::Delete(for_delete.clone())))
                    aria-label=format!("Delete {url}")>"Delete"</button>
            </td>
        </tr>
    }
}

#[component]
fn WebhookForm(
    mode: Editing,
    /// The new endpoint with its secret; `None` after an edit.
    on_saved: Callback<Option<CreatedWebhook>>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
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
            message: err.to_string(),
            field: Some(field.to_owned()),
        };
        let parsed = WebhookUrl::parse(url.get_untracked().trim())
            .map_err(|e| local("url", e))
            .and_then(|url| {
                let description = Description::parse(&description.get_untracked())
                    .map_err(|e| local("description", e))?;
                let events = Events::parse(
                    chosen
                        .iter()
                        .filter(|(_, on)| on.get_untracked())
                        .map(|(event, _)| *event)
                        .collect(),
                )
                .map_err(|e| local("events", e))?;
                Ok(CreateWebhook {
                    url,
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
                Some(id) => {
                    let update = UpdateWebhook {
                        url: Some(body.url),
                        description: Some(body.description),
                        events: Some(body.events),
                        enabled: None,
                    };
                    api::update_webhook(&session, id, &update)
                        .await
                        .map(|_| None)
                }
            };
            busy.set(false);
            match saved {
                Ok(created) => on_saved.run(created),
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err));
                }
            }
        });
    };
    let field_error = move |field: &'static str| {
        move || error.with(|e| e.as_ref().and_then(|e| e.for_field(field)))
    };
    let general_error = move || {
        error.with(|e| {
            e.as_ref()
                .filter(|e| !matches!(e.field.as_deref(), Some("url" | "description" | "events")))
                .map(|e| e.message.clone())
        })
    };
    let title = match &editing {
        None => "New endpoint".to_owned(),
        Some(hook) => format!("Edit {}", hook.url.as_str()),
    };
    view! {
        <form class="panel link-form" on:submit=submit aria-labelledby="webhook-form-title" novalidate>
            <h2 id="webhook-form-title">{title}</h2>
            <div class="field wide">
                <label for="webhook-url">"Endpoint URL"</label>
                <input id="webhook-url" type="url" bind:value=url placeholder="https://hooks.example.com/kurz"
                    aria-describedby="webhook-url-error"/>
                <p class="field-error" id="webhook-url-error" role="alert">{field_error("url")}</p>
            </div>
            <div class="field wide">
                <label for="webhook-description">"Description (optional)"</label>
                <input id="webhook-description" bind:value=description aria-describedby="webhook-description-error"/>
                <p class="field-error" id="webhook-description-error" role="alert">{field_error("description")}</p>
            </div>
            <fieldset class="wide scopes" aria-describedby="webhook-events-error">
                <legend>"Events"</legend>
                {chosen.into_iter().map(|(event, on)| view! {
                    <label class="check"><input type="checkbox" bind:checked=on/><code>{event.as_str()}</code></label>
                }).collect_view()}
                <p class="field-error" id="webhook-events-error" role="alert">{field_error("events")}</p>
            </fieldset>
            <p class="error" role="alert">{general_error}</p>
            <div class="buttons">
                <button type="button" class="secondary" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                <button type="submit" class="primary" disabled=move || busy.get()>
                    {if id.is_some() { "Save changes" } else { "Create endpoint" }}
                </button>
            </div>
        </form>
    }
}

#[component]
fn Confirm(
    what: Asking,
    asking: RwSignal<Option<Asking>>,
    secret: RwSignal<Option<CreatedWebhook>>,
    notice: RwSignal<Option<String>>,
    reload: RwSignal<u32>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let (hook, rotate) = match &what {
        Asking::Rotate(hook) => (hook.clone(), true),
        Asking::Delete(hook) => (hook.clone(), false),
    };
    let (id, url) = (hook.id, hook.url.as_str().to_owned());
    let confirm = Callback::new(move |()| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        leptos::task::spawn_local(async move {
            let done = if rotate {
                api::rotate_webhook_secret(&session, id)
                    .await
                    .map(|created| secret.set(Some(created)))
            } else {
                api::delete_webhook(&session, id).await
            };
            busy.set(false);
            match done {
                Ok(()) => {
                    asking.set(None);
                    if !rotate {
                        flash(notice, "Endpoint deleted.".to_owned());
                    }
                    reload.update(|n| *n += 1);
                }
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err.message));
                }
            }
        });
    });
    let (title, text, button) = if rotate {
        (
            format!("Rotate the secret of {url}?"),
            "Messages are signed with a new secret from now on: the receiver must switch to it, or it will refuse them.".to_owned(),
            "Rotate secret",
        )
    } else {
        (
            format!("Delete {url}?"),
            "It gets no more events, and its delivery log is deleted. This cannot be undone."
                .to_owned(),
            "Delete endpoint",
        )
    };
    view! {
        <ConfirmDialog title=title text=text confirm=button.to_owned() busy=busy error=error on_confirm=confirm
            on_cancel=Callback::new(move |()| asking.set(None))/>
    }
}

/// The deliveries of one endpoint, newest first, a page at a time; while one is pending the
/// log reloads by itself every two seconds.
#[component]
fn DeliveryLog(
    hook: Webhook,
    log_of: RwSignal<Option<Webhook>>,
    notice: RwSignal<Option<String>>,
    /// Reloads the endpoints (their last success and state change with deliveries).
    endpoints: RwSignal<u32>,
) -> impl IntoView {
    let id = hook.id;
    let was_pending = StoredValue::new(false);
    let reload = RwSignal::new(0_u32);
    let cursor = RwSignal::new(String::new());
    let open = RwSignal::new(None::<i64>);
    let page = crate::widgets::load_json::<DeliveryPage>(move || {
        reload.track();
        format!(
            "/api/v1/webhooks/{id}/deliveries?limit=50&cursor={}",
            api::encode(&cursor.get())
        )
    });
    Effect::new(move || {
        let pending = page.get().is_some_and(|page| {
            page.is_ok_and(|page| {
                page.deliveries
                    .iter()
                    .any(|d| d.state == DeliveryState::Pending)
            })
        });
        // The last pending delivery ended: the endpoint's state may have changed with it.
        if was_pending.get_value() && !pending {
            endpoints.update(|n| *n += 1);
        }
        was_pending.set_value(pending);
        if pending {
            Timeout::new(2000, move || {
                reload.try_update(|n| *n += 1);
            })
            .forget();
        }
    });
    view! {
        <section class="panel" aria-labelledby="deliveries-title">
            <div class="page-head">
                <h2 id="deliveries-title">{format!("Deliveries to {}", hook.url.as_str())}</h2>
                <div class="buttons start">
                    <button class="secondary" on:click=move |_| reload.update(|n| *n += 1)>"Refresh"</button>
                    <button class="secondary" on:click=move |_| log_of.set(None)>"Close"</button>
                </div>
            </div>
            {move || match page.get() {
                None => view! { <p class="loading">"Loading deliveries…"</p> }.into_any(),
                Some(Err(err)) => view! { <ErrorBox message=err.message reload=reload/> }.into_any(),
                Some(Ok(page)) if page.deliveries.is_empty() => view! {
                    <p class="empty">"Nothing sent yet. “Send test event” sends one."</p>
                }.into_any(),
                Some(Ok(page)) => {
                    let next = page.next_cursor.clone();
                    view! {
                        <div class="table-wrap">
                            <table id="deliveries-table">
                                <thead>
                                    <tr>
                                        <th scope="col">"Event"</th>
                                        <th scope="col">"State"</th>
                                        <th scope="col" class="num">"Answer"</th>
                                        <th scope="col" class="num">"Attempts"</th>
                                        <th scope="col">"Created"</th>
                                        <th scope="col">"Last attempt"</th>
                                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {page.deliveries.into_iter().map(|delivery| view! {
                                        <DeliveryRow hook=id delivery=delivery open=open notice=notice reload=reload/>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                        <nav class="pager" aria-label="Pages of deliveries">
                            <button class="secondary" disabled=move || cursor.with(String::is_empty)
                                on:click=move |_| cursor.set(String::new())>"Newest"</button>
                            <button class="secondary" disabled=next.is_none()
                                on:click=move |_| if let Some(next) = next.clone() { cursor.set(next) }>"Older →"</button>
                        </nav>
                    }.into_any()
                }
            }}
        </section>
    }
}

#[component]
fn DeliveryRow(
    hook: i64,
    delivery: WebhookDelivery,
    open: RwSignal<Option<i64>>,
    notice: RwSignal<Option<String>>,
    reload: RwSignal<u32>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let id = delivery.id;
    let busy = RwSignal::new(false);
    let redeliver = move |_| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        leptos::task::spawn_local(async move {
            let done = api::redeliver(&session, hook, id).await;
            busy.set(false);
            match done {
                Ok(()) => {
                    flash(notice, "Sent again.".to_owned());
                    reload.update(|n| *n += 1);
                }
                Err(err) => {
                    auth.check(&err);
                    flash(notice, err.message);
                }
            }
        });
    };
    let state = delivery.state.as_str();
    let when = delivery
        .next_attempt_at
        .filter(|_| delivery.state == DeliveryState::Pending);
    let event = delivery.event_type.as_str();
    view! {
        <tr data-delivery=id.to_string() data-state=state>
            <td><code>{event}</code></td>
            <td>
                <span class=if delivery.state == DeliveryState::Failed { "badge off" } else { "badge" }>{state}</span>
                {when.map(|at| view! { <p class="hint">{format!("next try {}", date_time(at))}</p> })}
                {delivery.last_error.clone().map(|e| view! { <p class="error">{e}</p> })}
            </td>
            <td class="num">{delivery.last_status.map_or_else(|| "—".to_owned(), |s| s.to_string())}</td>
            <td class="num">{delivery.attempts}</td>
            <td>{date_time(delivery.created_at)}</td>
            <td>{delivery.last_attempt_at.map_or_else(|| "—".to_owned(), date_time)}</td>
            <td class="actions">
                <button class="secondary" aria-expanded=move || (open.get() == Some(id)).to_string()
                    on:click=move |_| open.update(|o| *o = if *o == Some(id) { None } else { Some(id) })
                    aria-label=format!("Attempts of delivery {id}")>"Attempts"</button>
                <button class="secondary" disabled=move || busy.get() on:click=redeliver
                    aria-label=format!("Redeliver {id}")>"Redeliver"</button>
            </td>
        </tr>
        {move || (open.get() == Some(id)).then(|| view! {
            <tr class="attempts"><td colspan="7"><Attempts hook=hook delivery=id/></td></tr>
        })}
    }
}

#[component]
fn Attempts(hook: i64, delivery: i64) -> impl IntoView {
    let detail = crate::widgets::load(move || api::webhook_delivery(hook, delivery));
    move || {
        match detail.get() {
        None => view! { <p class="loading">"Loading attempts…"</p> }.into_any(),
        Some(Err(err)) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
        Some(Ok(DeliveryDetail { delivery, attempts, .. })) => view! {
            <p class="hint">{format!("Message id {} (the same on every attempt: receivers deduplicate by it)", delivery.message_id)}</p>
            {attempts.is_empty().then(|| view! { <p class="empty small">"No attempt yet."</p> })}
            <ol class="attempt-list">
                {attempts.into_iter().map(|a| view! {
                    <li>{format!(
                        "#{} at {}: {} in {} ms",
                        a.attempt,
                        date_time(a.at),
                        a.status.map_or_else(|| a.error.clone().unwrap_or_else(|| "no answer".to_owned()), |s| format!("HTTP {s}")),
                        a.duration_ms,
                    )}</li>
                }).collect_view()}
            </ol>
        }
        .into_any(),
    }
    }
}
