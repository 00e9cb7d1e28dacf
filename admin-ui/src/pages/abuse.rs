//! Abuse control, for the operator workspace's admins: the destination blocklist (add a
//! domain or pattern with a reason and see how many links it disabled; remove one) and the
//! reports visitors sent through `/report` (resolve, and disable the reported link).
//!
//! Who may see it is the API's to decide: the page shows what `/api/v1/abuse` answers, and a
//! 403 as a refusal.

use leptos::prelude::*;
use shortlink::abuse::{AddBlockRule, BlockEntry, Blocklist, Report, ReportPage};

use crate::api::ApiError;
use crate::range::date_time;
use crate::widgets::{ConfirmDialog, ErrorBox, flash};
use crate::{Auth, api};

#[component]
pub fn Abuse() -> impl IntoView {
    let reload = RwSignal::new(0_u32);
    let notice = RwSignal::new(None::<String>);
    let removing = RwSignal::new(None::<BlockEntry>);
    let blocklist = crate::widgets::load_json::<Blocklist>(move || {
        reload.track();
        "/api/v1/abuse/blocklist".to_owned()
    });
    view! {
        <section class="page" aria-labelledby="abuse-title">
            <h1 id="abuse-title">"Abuse"</h1>
            <p class="notice" role="status" aria-live="polite">{move || notice.get()}</p>
            {move || match blocklist.get() {
                None => view! { <p class="loading">"Loading the blocklist…"</p> }.into_any(),
                Some(Err(err)) if err.status == 403 => view! {
                    <div class="error-box" role="alert"><p>{err.message}</p></div>
                }.into_any(),
                Some(Err(err)) => view! { <ErrorBox message=err.message reload=reload/> }.into_any(),
                Some(Ok(list)) => view! {
                    <h2>"Blocked destinations"</h2>
                    <p class="hint">"A domain blocks itself and every subdomain; a pattern with * (example.com/phish/*) matches whole addresses. Adding one disables the links to it in every workspace; removing one enables none again."</p>
                    <BlockForm notice=notice reload=reload/>
                    <BlockTable entries=list.entries removing=removing/>
                    <Reports/>
                }.into_any(),
            }}
            {move || removing.get().map(|entry| view! {
                <Unblock entry=entry removing=removing notice=notice reload=reload/>
            })}
        </section>
    }
}

#[component]
fn BlockForm(notice: RwSignal<Option<String>>, reload: RwSignal<u32>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let rule = RwSignal::new(String::new());
    let reason = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let Some(session) = auth.session() else {
            return;
        };
        let body = AddBlockRule {
            rule: rule.get_untracked(),
            reason: reason.get_untracked(),
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::block(&session, &body).await {
                Ok(entry) => {
                    let checking = if entry.sweep_done {
                        ""
                    } else {
                        " so far (still checking)"
                    };
                    flash(
                        notice,
                        format!(
                            "Blocked {}: {} link(s) disabled{checking}.",
                            entry.rule, entry.links_disabled
                        ),
                    );
                    rule.set(String::new());
                    reason.set(String::new());
                    reload.update(|n| *n += 1);
                }
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
                .filter(|e| !matches!(e.field.as_deref(), Some("rule" | "reason")))
                .map(|e| e.message.clone())
        })
    };
    view! {
        <form class="panel link-form" id="block-form" on:submit=submit aria-label="Block a destination" novalidate>
            <div class="field">
                <label for="block-rule">"Domain or pattern"</label>
                <input id="block-rule" name="rule" required bind:value=rule placeholder="evil.example"
                    aria-describedby="block-rule-error"/>
                <p class="field-error" id="block-rule-error" role="alert">{field_error("rule")}</p>
            </div>
            <div class="field">
                <label for="block-reason">"Reason"</label>
                <input id="block-reason" name="reason" bind:value=reason placeholder="phishing, reported 3 times"
                    aria-describedby="block-reason-error"/>
                <p class="field-error" id="block-reason-error" role="alert">{field_error("reason")}</p>
            </div>
            <p class="error" role="alert">{general_error}</p>
            <div class="buttons">
                <button type="submit" class="primary" disabled=move || busy.get()>"Block"</button>
            </div>
        </form>
    }
}

#[component]
fn BlockTable(entries: Vec<BlockEntry>, removing: RwSignal<Option<BlockEntry>>) -> impl IntoView {
    if entries.is_empty() {
        return view! { <p class="empty">"Nothing is blocked."</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table id="blocklist-table">
                <thead>
                    <tr>
                        <th scope="col">"Rule"</th>
                        <th scope="col">"Reason"</th>
                        <th scope="col">"Added"</th>
                        <th scope="col">"Links disabled"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {entries.into_iter().map(|entry| {
                        let added = match &entry.created_by {
                            Some(by) => format!("{} by {by}", date_time(entry.created_at)),
                            None => date_time(entry.created_at),
                        };
                        let disabled = if entry.sweep_done {
                            entry.links_disabled.to_string()
                        } else {
                            format!("{} (checking…)", entry.links_disabled)
                        };
                        let label = format!("Remove {}", entry.rule);
                        let for_remove = entry.clone();
                        view! {
                            <tr data-rule=entry.rule>
                                <td class="code">{entry.rule.clone()}</td>
                                <td>{entry.reason.clone()}</td>
                                <td>{added}</td>
                                <td class="links-disabled">{disabled}</td>
                                <td class="actions">
                                    <button class="danger" aria-label=label
                                        on:click=move |_| removing.set(Some(for_remove.clone()))>"Remove"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn Unblock(
    entry: BlockEntry,
    removing: RwSignal<Option<BlockEntry>>,
    notice: RwSignal<Option<String>>,
    reload: RwSignal<u32>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let (id, rule) = (entry.id, entry.rule.clone());
    let confirm = Callback::new(move |()| {
        let Some(session) = auth.session() else {
            return;
        };
        let rule = rule.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::unblock(&session, id).await {
                Ok(()) => {
                    removing.set(None);
                    flash(notice, format!("{rule} is no longer blocked."));
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
        <ConfirmDialog title=format!("Unblock {}?", entry.rule)
            text="New links to it can be made again. The links it disabled stay disabled: their owners may enable them.".to_owned()
            confirm="Unblock".to_owned() busy=busy error=error on_confirm=confirm
            on_cancel=Callback::new(move |()| removing.set(None))/>
    }
}

/// The reports, newest first, open or resolved.
#[component]
fn Reports() -> impl IntoView {
    let status = RwSignal::new("open".to_owned());
    let reload = RwSignal::new(0_u32);
    let notice = RwSignal::new(None::<String>);
    let reports = crate::widgets::load_json::<ReportPage>(move || {
        reload.track();
        format!("/api/v1/abuse/reports?status={}", status.get())
    });
    view! {
        <div class="page-head">
            <h2 id="reports-title">"Reports"</h2>
            <label>"Show "
                <select id="report-status" prop:value=move || status.get()
                    on:change=move |ev| status.set(event_target_value(&ev))>
                    <option value="open">"open"</option>
                    <option value="resolved">"resolved"</option>
                </select>
            </label>
        </div>
        <p class="notice" role="status" aria-live="polite">{move || notice.get()}</p>
        {move || match reports.get() {
            None => view! { <p class="loading">"Loading reports…"</p> }.into_any(),
            Some(Err(err)) => view! { <ErrorBox message=err.message reload=reload/> }.into_any(),
            Some(Ok(page)) if page.reports.is_empty() => view! { <p class="empty">"No reports."</p> }.into_any(),
            Some(Ok(page)) => view! {
                <div class="table-wrap">
                    <table id="reports-table" aria-labelledby="reports-title">
                        <thead>
                            <tr>
                                <th scope="col">"Received"</th>
                                <th scope="col">"Link"</th>
                                <th scope="col">"Category"</th>
                                <th scope="col">"Details"</th>
                                <th scope="col">"Goes to"</th>
                                <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {page.reports.into_iter().map(|report| view! {
                                <ReportRow report=report notice=notice reload=reload/>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }.into_any(),
        }}
    }
}

#[component]
fn ReportRow(
    report: Report,
    notice: RwSignal<Option<String>>,
    reload: RwSignal<u32>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let busy = RwSignal::new(false);
    let id = report.id;
    let resolve = move |disable_link: bool| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::resolve_report(&session, id, disable_link).await {
                Ok(_) => {
                    let done = if disable_link {
                        "Resolved, and the link is disabled."
                    } else {
                        "Resolved."
                    };
                    flash(notice, done.to_owned());
                    reload.update(|n| *n += 1);
                }
                Err(err) => {
                    auth.check(&err);
                    flash(notice, err.message);
                }
            }
            busy.set(false);
        });
    };
    let open = report.resolved_at.is_none();
    let can_disable = open && report.link_disabled == Some(false);
    let goes_to = match (&report.destination, report.link_disabled) {
        (Some(destination), Some(true)) => format!("{destination} (disabled)"),
        (Some(destination), _) => destination.clone(),
        (None, _) => "no live link".to_owned(),
    };
    let details = match &report.contact {
        Some(contact) => format!("{} (contact: {contact})", report.details),
        None => report.details.clone(),
    };
    view! {
        <tr data-report=report.id>
            <td>{date_time(report.created_at)}</td>
            <td class="code">{report.link.clone()}</td>
            <td>{report.category.as_str()}</td>
            <td>{details}</td>
            <td class="goes-to">{goes_to}</td>
            <td class="actions">
                {open.then(|| view! {
                    <button class="secondary" disabled=move || busy.get()
                        on:click=move |_| resolve(false)>"Resolve"</button>
                })}
                {can_disable.then(|| view! {
                    <button class="danger" disabled=move || busy.get()
                        on:click=move |_| resolve(true)>"Resolve and disable link"</button>
                })}
                {(!open).then(|| report.resolved_by.clone().map(|by| format!("resolved by {by}")))}
            </td>
        </tr>
    }
}
