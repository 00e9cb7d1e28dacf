//! Abuse control, for the operator workspace's admins: the destination blocklist (add a
//! domain or pattern with a reason and see how many links it disabled; remove one) and the
//! reports visitors sent through `/report` (resolve, and disable the reported link).
//!
//! Who may see it is the API's to decide: the page shows what `/api/v1/abuse` answers, and a
//! refusal as the error it is. A role that may administer no workspace is refused here first.

use leptos::prelude::*;
use shortlink::abuse::{
    AddBlockRule, BlockEntry, Blocklist, Report, ReportCategory, ReportPage, ReportQuery,
    ReportStatus,
};
use shortlink::workspace::Permission;

use crate::api::ApiError;
use crate::i18n::{t, t_string, use_i18n};
use crate::range::{count, date_time};
use crate::widgets::{ConfirmDialog, FormError, Loaded, Refocus, Refused, flash, load_json};
use crate::{Auth, api};

/// What the page's parts share.
#[derive(Clone, Copy)]
struct AbuseState {
    /// Bumped to load the blocklist again.
    blocklist: RwSignal<u32>,
    /// Bumped to load the reports again.
    reports: RwSignal<u32>,
    /// What was just done (or why it was not).
    notice: RwSignal<Option<String>>,
    /// The rule whose removal is being asked about.
    removing: RwSignal<Option<BlockEntry>>,
    /// Where the focus goes once the rules are drawn again after one was removed.
    refocus: Refocus,
    /// Where the focus goes once the open reports are drawn again after one was resolved.
    report_refocus: Refocus,
}

#[component]
pub fn Abuse() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    if !auth.permits(Permission::Administer) {
        return view! {
            <Refused title_id="abuse-title" title=move || t_string!(i18n, abuse.title)
                what=move || t_string!(i18n, abuse.refused_what)/>
        }
        .into_any();
    }
    let state = AbuseState {
        blocklist: RwSignal::new(0),
        reports: RwSignal::new(0),
        notice: RwSignal::new(None),
        removing: RwSignal::new(None),
        refocus: Refocus::new("#abuse-title"),
        report_refocus: Refocus::new("#reports-title"),
    };
    provide_context(state);
    let blocklist = load_json::<Blocklist>(move || {
        state.blocklist.track();
        "/api/v1/abuse/blocklist".to_owned()
    });
    view! {
        <section class="page" aria-labelledby="abuse-title">
            <h1 id="abuse-title" tabindex="-1">{t!(i18n, abuse.title)}</h1>
            <p class="notice" role="status" aria-live="polite">{move || state.notice.get()}</p>
            <h2>{t!(i18n, abuse.blocked_title)}</h2>
            <p class="hint">{t!(i18n, abuse.blocked_hint)}</p>
            // Outside what the blocklist's answers redraw: a rule half typed, and the reports'
            // filter, stay as they are when a rule is added or removed.
            <BlockForm/>
            <Loaded data=blocklist reload=state.blocklist loading=t_string!(i18n, abuse.loading_blocklist).to_owned() let:list>
                <BlockTable entries=list.entries/>
            </Loaded>
            <Reports/>
            {move || state.removing.get().map(|entry| view! { <Unblock entry=entry/> })}
        </section>
    }
    .into_any()
}

#[component]
fn BlockForm() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<AbuseState>();
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
                    let (rule_text, disabled) = (entry.rule, count(entry.links_disabled as i64));
                    let done = if entry.sweep_done {
                        t_string!(i18n, abuse.blocked, rule = rule_text, count = disabled)
                    } else {
                        t_string!(
                            i18n,
                            abuse.blocked_checking,
                            rule = rule_text,
                            count = disabled
                        )
                    };
                    flash(state.notice, done);
                    rule.set(String::new());
                    reason.set(String::new());
                    state.blocklist.update(|n| *n += 1);
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    let form_error = FormError::new(error, &["rule", "reason"]);
    view! {
        <form class="panel link-form" id="block-form" on:submit=submit aria-label=t_string!(i18n, abuse.form_label) novalidate>
            <div class="field">
                <label for="block-rule">{t!(i18n, abuse.rule)}</label>
                <input id="block-rule" name="rule" required bind:value=rule placeholder=t_string!(i18n, abuse.rule_placeholder)
                    aria-describedby="block-rule-error" aria-invalid=form_error.invalid("rule")/>
                <p class="field-error" id="block-rule-error" role="alert">{form_error.at("rule")}</p>
            </div>
            <div class="field">
                <label for="block-reason">{t!(i18n, abuse.reason)}</label>
                <input id="block-reason" name="reason" bind:value=reason placeholder=t_string!(i18n, abuse.reason_placeholder)
                    aria-describedby="block-reason-error" aria-invalid=form_error.invalid("reason")/>
                <p class="field-error" id="block-reason-error" role="alert">{form_error.at("reason")}</p>
            </div>
            <p class="error" role="alert">{form_error.general()}</p>
            <div class="buttons">
                <button type="submit" class="primary" disabled=move || busy.get()>{t!(i18n, abuse.block)}</button>
            </div>
        </form>
    }
}

#[component]
fn BlockTable(entries: Vec<BlockEntry>) -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<AbuseState>();
    state.refocus.drawn();
    if entries.is_empty() {
        return view! { <p class="empty">{t!(i18n, abuse.nothing_blocked)}</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table id="blocklist-table">
                <thead>
                    <tr>
                        <th scope="col">{t!(i18n, abuse.col_rule)}</th>
                        <th scope="col">{t!(i18n, abuse.col_reason)}</th>
                        <th scope="col">{t!(i18n, abuse.col_added)}</th>
                        <th scope="col">{t!(i18n, abuse.col_disabled)}</th>
                        <th scope="col"><span class="visually-hidden">{t!(i18n, abuse.col_actions)}</span></th>
                    </tr>
                </thead>
                <tbody>
                    {entries.into_iter().map(|entry| {
                        let added = match &entry.created_by {
                            Some(by) => t_string!(i18n, abuse.added_by, date = date_time(entry.created_at), name = by),
                            None => date_time(entry.created_at),
                        };
                        let disabled = count(entry.links_disabled as i64);
                        let disabled = if entry.sweep_done {
                            disabled
                        } else {
                            t_string!(i18n, abuse.checking, count = disabled)
                        };
                        let label = t_string!(i18n, abuse.remove_label, rule = entry.rule.clone());
                        let for_remove = entry.clone();
                        view! {
                            <tr data-rule=entry.rule>
                                <td class="code">{entry.rule.clone()}</td>
                                <td>{entry.reason.clone()}</td>
                                <td>{added}</td>
                                <td class="links-disabled">{disabled}</td>
                                <td class="actions">
                                    <button class="danger" aria-label=label
                                        on:click=move |_| state.removing.set(Some(for_remove.clone()))>{t!(i18n, abuse.remove)}</button>
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
fn Unblock(entry: BlockEntry) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<AbuseState>();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let (id, rule) = (entry.id, entry.rule.clone());
    let opener = StoredValue::new_local(document().active_element());
    let confirm = Callback::new(move |()| {
        let Some(session) = auth.session() else {
            return;
        };
        let rule = rule.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::unblock(&session, id).await {
                Ok(()) => {
                    opener.try_with_value(|opener| state.refocus.after_removal(opener.as_ref()));
                    state.removing.set(None);
                    flash(state.notice, t_string!(i18n, abuse.unblocked, rule));
                    state.blocklist.update(|n| *n += 1);
                }
                Err(err) => error.set(Some(err.message)),
            }
            busy.set(false);
        });
    });
    view! {
        <ConfirmDialog title=t_string!(i18n, abuse.unblock_title, rule = entry.rule)
            text=t_string!(i18n, abuse.unblock_text).to_owned()
            confirm=t_string!(i18n, abuse.unblock).to_owned() busy=busy error=error on_confirm=confirm
            on_cancel=Callback::new(move |()| state.removing.set(None))/>
    }
}

/// The reports, newest first, open or resolved, a page at a time.
#[component]
fn Reports() -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<AbuseState>();
    let status = RwSignal::new(ReportStatus::Open);
    // The page shown: the newest, or the one after this cursor (of the status shown).
    let cursor = RwSignal::new(None::<String>);
    let reports = load_json::<ReportPage>(move || {
        state.reports.track();
        let query = ReportQuery {
            status: Some(status.get()),
            cursor: cursor.get(),
            ..ReportQuery::default()
        };
        format!("/api/v1/abuse/reports?{}", api::query_string(&query))
    });
    let choose = move |ev: leptos::ev::Event| {
        cursor.set(None);
        status.set(match event_target_value(&ev).as_str() {
            "resolved" => ReportStatus::Resolved,
            _ => ReportStatus::Open,
        });
    };
    view! {
        <div class="page-head">
            <h2 id="reports-title" tabindex="-1">{t!(i18n, abuse.reports_title)}</h2>
            <label>
                <span class="label">{t!(i18n, abuse.show)}</span>
                <select id="report-status" on:change=choose prop:value=move || match status.get() {
                    ReportStatus::Open => "open",
                    ReportStatus::Resolved => "resolved",
                }>
                    <option value="open">{t!(i18n, abuse.status_open)}</option>
                    <option value="resolved">{t!(i18n, abuse.status_resolved)}</option>
                </select>
            </label>
        </div>
        <Loaded data=reports reload=state.reports loading=t_string!(i18n, abuse.loading_reports).to_owned() let:page>
            {state.report_refocus.drawn()}
            {if page.reports.is_empty() {
                // An older page emptied (its reports resolved): the way back to the newest.
                view! {
                    <p class="empty" role="status">{t!(i18n, abuse.no_reports)}</p>
                    {move || cursor.with(Option::is_some).then(|| view! {
                        <nav class="pager" aria-label=t_string!(i18n, abuse.pages)>
                            <button class="secondary" on:click=move |_| cursor.set(None)>{t!(i18n, abuse.newest)}</button>
                        </nav>
                    })}
                }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table id="reports-table" aria-labelledby="reports-title">
                            <thead>
                                <tr>
                                    <th scope="col">{t!(i18n, abuse.col_received)}</th>
                                    <th scope="col">{t!(i18n, abuse.col_link)}</th>
                                    <th scope="col">{t!(i18n, abuse.col_category)}</th>
                                    <th scope="col">{t!(i18n, abuse.col_details)}</th>
                                    <th scope="col">{t!(i18n, abuse.col_goes_to)}</th>
                                    <th scope="col"><span class="visually-hidden">{t!(i18n, abuse.col_actions)}</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {page.reports.into_iter().map(|report| view! { <ReportRow report=report/> }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                    <nav class="pager" aria-label=t_string!(i18n, abuse.pages)>
                        <button class="secondary" disabled=move || cursor.with(Option::is_none)
                            on:click=move |_| cursor.set(None)>{t!(i18n, abuse.newest)}</button>
                        <button class="secondary" disabled=page.next_cursor.is_none()
                            on:click={
                                let next = page.next_cursor;
                                move |_| if let Some(next) = next.clone() { cursor.set(Some(next)) }
                            }>{t!(i18n, abuse.older)}</button>
                    </nav>
                }.into_any()
            }}
        </Loaded>
    }
}

#[component]
fn ReportRow(report: Report) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<AbuseState>();
    let busy = RwSignal::new(false);
    let id = report.id;
    let resolve = move |disable_link: bool| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        // The row leaves the open reports, and its button with the focus.
        let opener = document().active_element();
        leptos::task::spawn_local(async move {
            match api::resolve_report(&session, id, disable_link).await {
                Ok(_) => {
                    let done = if disable_link {
                        t_string!(i18n, abuse.resolved_disabled)
                    } else {
                        t_string!(i18n, abuse.resolved)
                    };
                    state.report_refocus.after_removal(opener.as_ref());
                    flash(state.notice, done.to_owned());
                    state.reports.update(|n| *n += 1);
                }
                Err(err) => flash(state.notice, err.message),
            }
            busy.set(false);
        });
    };
    let lift = move |_| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::lift_takedown(&session, id).await {
                Ok(()) => {
                    flash(state.notice, t_string!(i18n, abuse.lifted).to_owned());
                    state.reports.update(|n| *n += 1);
                }
                Err(err) => flash(state.notice, err.message),
            }
            busy.set(false);
        });
    };
    let open = report.resolved_at.is_none();
    // A live link, enabled or not: a link its workspace disabled is taken down too, so that
    // it cannot be enabled again.
    let can_disable = open && report.link_disabled.is_some();
    let taken_down = report.link_taken_down == Some(true);
    let goes_to = match (&report.destination, report.link_disabled) {
        (Some(destination), _) if taken_down => {
            t_string!(i18n, abuse.goes_to_taken_down, destination)
        }
        (Some(destination), Some(true)) => {
            t_string!(i18n, abuse.goes_to_disabled, destination)
        }
        (Some(destination), _) => destination.clone(),
        (None, _) => t_string!(i18n, abuse.no_live_link).to_owned(),
    };
    let details = match &report.contact {
        Some(contact) => t_string!(
            i18n,
            abuse.with_contact,
            details = report.details.clone(),
            contact
        ),
        None => report.details.clone(),
    };
    let category = match report.category {
        ReportCategory::Phishing => t_string!(i18n, abuse.category_phishing),
        ReportCategory::Malware => t_string!(i18n, abuse.category_malware),
        ReportCategory::Spam => t_string!(i18n, abuse.category_spam),
        ReportCategory::Illegal => t_string!(i18n, abuse.category_illegal),
        ReportCategory::Other => t_string!(i18n, abuse.category_other),
    };
    let resolved_by = report
        .resolved_by
        .clone()
        .filter(|_| !open)
        .map(|name| t_string!(i18n, abuse.resolved_by, name));
    view! {
        <tr data-report=report.id data-category=report.category.as_str()>
            <td>{date_time(report.created_at)}</td>
            <td class="code">{report.link.clone()}</td>
            <td>{category}</td>
            <td>{details}</td>
            <td class="goes-to">{goes_to}</td>
            <td class="actions">
                {open.then(|| view! {
                    <button class="secondary" disabled=move || busy.get()
                        on:click=move |_| resolve(false)>{t!(i18n, abuse.resolve)}</button>
                })}
                {can_disable.then(|| view! {
                    <button class="danger" disabled=move || busy.get()
                        on:click=move |_| resolve(true)>{t!(i18n, abuse.resolve_disable)}</button>
                })}
                {taken_down.then(|| view! {
                    <button class="secondary" disabled=move || busy.get()
                        on:click=lift>{t!(i18n, abuse.lift_takedown)}</button>
                })}
                {resolved_by}
            </td>
        </tr>
    }
}
