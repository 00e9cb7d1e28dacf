//! The audit log: who changed what in the workspace, newest first, with the fields each
//! change touched (before → after). Filters by action, actor and link; pages by cursor.

use leptos::prelude::*;
use serde_json::Value;
use shortlink::workspace::{Actor, AuditEntry, AuditPage, AuditQuery, Permission};

use crate::i18n::{t, t_string, td_string, use_i18n};
use crate::range::{date_time, locale};
use crate::widgets::{Loaded, Refused, load_json};
use crate::{Auth, api};

/// Entries a page asks for.
const PAGE: i64 = 50;

/// Every action the log records (see [`AuditEntry::action`]), in the order the filter offers
/// them.
const ACTIONS: [&str; 22] = [
    "link.created",
    "link.updated",
    "link.deleted",
    "key.created",
    "key.revoked",
    "member.joined",
    "member.role_changed",
    "member.removed",
    "invitation.created",
    "invitation.revoked",
    "workspace.created",
    "workspace.renamed",
    "workspace.rate_limits_changed",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.secret_rotated",
    "webhook.disabled",
    "abuse.rule_added",
    "abuse.rule_removed",
    "abuse.report_resolved",
    "abuse.takedown_lifted",
];

/// What an audit query filters by (its action, actor and link), without its page.
type Filters = (Option<String>, Option<String>, Option<String>);

fn filters_of(query: &AuditQuery) -> Filters {
    (
        query.action.clone(),
        query.actor.clone(),
        query.link.clone(),
    )
}

#[component]
pub fn Audit() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    if !auth.permits(Permission::Administer) {
        return view! {
            <Refused title_id="audit-title" title=move || t_string!(i18n, audit.title)
                what=move || t_string!(i18n, audit.refused_what)/>
        }
        .into_any();
    }
    // What is asked: the filters and the page.
    let query = RwSignal::new(AuditQuery {
        limit: Some(PAGE),
        ..AuditQuery::default()
    });
    // The link id as typed; it filters once submitted.
    let link = RwSignal::new(String::new());
    let reload = RwSignal::new(0_u32);
    // The entries of the pages before the one asked: "Load more" keeps them shown.
    let earlier = RwSignal::new(Vec::<AuditEntry>::new());
    // Whom the actor filter offers: everyone seen in the log so far (`user:1`, name).
    let actors = RwSignal::new(Vec::<(String, String)>::new());
    // The filters asked for last, and those of the answer shown: until they are one again,
    // "Load more" loads nothing (its cursor is of another list).
    let asked = StoredValue::new(Filters::default());
    let shown = StoredValue::new(Filters::default());
    let page = load_json::<AuditPage>(move || {
        reload.track();
        asked.set_value(query.with(filters_of));
        format!("/api/v1/audit?{}", api::query_string(&query.get()))
    });
    // Every answer is the last request's, also one equal to the answer shown.
    Effect::new(move || {
        if page.answered().is_some() {
            shown.set_value(asked.get_value());
        }
    });
    Effect::new(move || {
        if let Some(Ok(page)) = page.get() {
            actors.update(|known| {
                for entry in &page.entries {
                    let value = actor_filter(&entry.actor);
                    if !known.iter().any(|(v, _)| *v == value) {
                        known.push((value, actor_label(&entry.actor)));
                    }
                }
            });
        }
    });
    // A new filter shows the newest entries that match, from the first page.
    let filter_by = move |set: fn(&mut AuditQuery, Option<String>), value: String| {
        earlier.set(Vec::new());
        query.update(|q| {
            set(q, Some(value).filter(|v| !v.trim().is_empty()));
            q.cursor = None;
        });
    };
    let on_actor = Callback::new(move |actor: String| filter_by(|q, v| q.actor = v, actor));
    let on_link = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        filter_by(|q, v| q.link = v, link.get_untracked());
    };
    let selected = move |field: fn(&AuditQuery) -> &Option<String>| {
        move || query.with(|q| field(q).clone().unwrap_or_default())
    };
    view! {
        <section class="page" aria-labelledby="audit-title">
            <div class="page-head">
                <h1 id="audit-title">{t!(i18n, audit.title)}</h1>
            </div>
            <form class="toolbar" role="search" on:submit=on_link aria-label=t_string!(i18n, audit.filters)>
                <label>
                    <span class="label">{t!(i18n, audit.action)}</span>
                    <select prop:value=selected(|q| &q.action)
                        on:change=move |ev| filter_by(|q, v| q.action = v, event_target_value(&ev))>
                        <option value="">{t!(i18n, audit.any_action)}</option>
                        {ACTIONS.iter().map(|a| view! { <option value=*a>{action_label(a)}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    <span class="label">{t!(i18n, audit.actor)}</span>
                    <select prop:value=selected(|q| &q.actor)
                        on:change=move |ev| filter_by(|q, v| q.actor = v, event_target_value(&ev))>
                        <option value="">{t!(i18n, audit.anyone)}</option>
                        {move || actors.get().into_iter().map(|(value, name)| view! {
                            <option value=value>{name}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label>
                    <span class="label">{t!(i18n, audit.link_id)}</span>
                    <input type="number" min="1" inputmode="numeric" bind:value=link
                        placeholder=t_string!(i18n, audit.link_placeholder)/>
                </label>
                <button type="submit" class="secondary">{t!(i18n, audit.filter)}</button>
            </form>
            <Loaded data=page reload=reload loading=t_string!(i18n, audit.loading).to_owned() let:page>
                <Entries page=page earlier=earlier query=query listed=shown on_actor=on_actor/>
            </Loaded>
        </section>
    }
    .into_any()
}

/// The entries kept from earlier pages and those of `page`, and "Load more" while there are
/// more and `page` is the answer for the filters asked for now (`listed`: those of the answer
/// shown).
#[component]
fn Entries(
    page: AuditPage,
    earlier: RwSignal<Vec<AuditEntry>>,
    query: RwSignal<AuditQuery>,
    listed: StoredValue<Filters>,
    on_actor: Callback<String>,
) -> impl IntoView {
    let i18n = use_i18n();
    move || {
        // Until the next page comes, the page shown is the one `earlier` already holds: only
        // entries older than those kept are new.
        let shown = earlier.with(|kept| {
            let oldest = kept.last().map(|e| e.id);
            let newer = page
                .entries
                .iter()
                .filter(|e| oldest.is_none_or(|oldest| e.id < oldest));
            kept.iter().chain(newer).cloned().collect::<Vec<_>>()
        });
        if shown.is_empty() {
            return view! { <p class="empty" role="status">{t!(i18n, audit.empty)}</p> }.into_any();
        }
        let more = page.next_cursor.clone().map(|cursor| {
            let kept = shown.clone();
            view! {
                <nav class="pager" aria-label=t_string!(i18n, audit.more)>
                    <span></span>
                    <button class="secondary" on:click=move |_| {
                        if listed.with_value(|listed| query.with_untracked(filters_of) != *listed) {
                            return;
                        }
                        earlier.set(kept.clone());
                        query.update(|q| q.cursor = Some(cursor.clone()));
                    }>{t!(i18n, audit.load_more)}</button>
                </nav>
            }
        });
        view! {
            <div class="table-wrap">
                <table id="audit-table">
                    <thead>
                        <tr>
                            <th scope="col">{t!(i18n, audit.col_time)}</th>
                            <th scope="col">{t!(i18n, audit.col_who)}</th>
                            <th scope="col">{t!(i18n, audit.col_action)}</th>
                            <th scope="col">{t!(i18n, audit.col_target)}</th>
                            <th scope="col">{t!(i18n, audit.col_changes)}</th>
                        </tr>
                    </thead>
                    <tbody>
                        {shown.into_iter().map(|entry| view! { <EntryRow entry=entry on_actor=on_actor/> }).collect_view()}
                    </tbody>
                </table>
            </div>
            {more}
        }
        .into_any()
    }
}

#[component]
fn EntryRow(entry: AuditEntry, on_actor: Callback<String>) -> impl IntoView {
    let i18n = use_i18n();
    let filter = actor_filter(&entry.actor);
    let label = actor_label(&entry.actor);
    let changes = diff(entry.before.as_ref(), entry.after.as_ref());
    let target = t_string!(
        i18n,
        audit.target,
        kind = kind_label(&entry.target_kind),
        id = entry.target_id
    );
    let only = t_string!(i18n, audit.only_actor, name = label.clone());
    let (action, actor_name) = (entry.action.clone(), label.clone());
    view! {
        <tr data-action=action data-actor=actor_name>
            <td>{date_time(entry.at)}</td>
            <td>
                <button class="link-button" on:click=move |_| on_actor.run(filter.clone())
                    title=only>{label}</button>
            </td>
            <td>{action_label(&entry.action)}" "<code class="hint">{entry.action}</code></td>
            <td>{target}</td>
            <td>
                <ul class="diff">
                    {changes.into_iter().map(|(field, before, after)| view! {
                        <li>
                            <code>{field}</code>": "
                            {before.map(|b| view! { <del>{b}</del>" → " })}
                            <ins>{after.unwrap_or_else(|| "—".to_owned())}</ins>
                        </li>
                    }).collect_view()}
                </ul>
            </td>
        </tr>
    }
}

/// The actor filter's value: `user:1`, `key:2`.
fn actor_filter(actor: &Actor) -> String {
    format!("{}:{}", actor.kind, actor.id)
}

/// A person by name, a key as `key <name>`.
fn actor_label(actor: &Actor) -> String {
    match actor.kind.as_str() {
        "key" => td_string!(locale(), audit.actor_key, name = actor.name.clone()),
        _ => actor.name.clone(),
    }
}

/// What an action did, in words (an action this dashboard does not know: as it is).
fn action_label(action: &str) -> String {
    let l = locale();
    match action {
        "link.created" => td_string!(l, audit.link_created),
        "link.updated" => td_string!(l, audit.link_updated),
        "link.deleted" => td_string!(l, audit.link_deleted),
        "key.created" => td_string!(l, audit.key_created),
        "key.revoked" => td_string!(l, audit.key_revoked),
        "member.joined" => td_string!(l, audit.member_joined),
        "member.role_changed" => td_string!(l, audit.member_role_changed),
        "member.removed" => td_string!(l, audit.member_removed),
        "invitation.created" => td_string!(l, audit.invitation_created),
        "invitation.revoked" => td_string!(l, audit.invitation_revoked),
        "workspace.created" => td_string!(l, audit.workspace_created),
        "workspace.renamed" => td_string!(l, audit.workspace_renamed),
        "workspace.rate_limits_changed" => td_string!(l, audit.workspace_rate_limits_changed),
        "webhook.created" => td_string!(l, audit.webhook_created),
        "webhook.updated" => td_string!(l, audit.webhook_updated),
        "webhook.deleted" => td_string!(l, audit.webhook_deleted),
        "webhook.secret_rotated" => td_string!(l, audit.webhook_secret_rotated),
        "webhook.disabled" => td_string!(l, audit.webhook_disabled),
        "abuse.rule_added" => td_string!(l, audit.abuse_rule_added),
        "abuse.rule_removed" => td_string!(l, audit.abuse_rule_removed),
        "abuse.report_resolved" => td_string!(l, audit.abuse_report_resolved),
        "abuse.takedown_lifted" => td_string!(l, audit.abuse_takedown_lifted),
        _ => action,
    }
    .to_owned()
}

/// What kind of thing a change touched, in words.
fn kind_label(kind: &str) -> String {
    let l = locale();
    match kind {
        "link" => td_string!(l, audit.kind_link),
        "key" => td_string!(l, audit.kind_key),
        "member" => td_string!(l, audit.kind_member),
        "invitation" => td_string!(l, audit.kind_invitation),
        "workspace" => td_string!(l, audit.kind_workspace),
        "webhook" => td_string!(l, audit.kind_webhook),
        "blocklist_rule" => td_string!(l, audit.kind_blocklist_rule),
        "abuse_report" => td_string!(l, audit.kind_abuse_report),
        _ => kind,
    }
    .to_owned()
}

/// The fields that differ between `before` and `after`, as text: `(field, before, after)`.
/// A creation lists every field as new; a deletion every field as removed.
fn diff<'a>(
    before: Option<&'a Value>,
    after: Option<&'a Value>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let none = serde_json::Map::new();
    let object = |v: Option<&'a Value>| v.and_then(Value::as_object).unwrap_or(&none);
    let (old, new) = (object(before), object(after));
    // The fields before, then those only after (each map is in order already).
    old.keys()
        .chain(new.keys().filter(|field| !old.contains_key(*field)))
        .filter(|field| old.get(*field) != new.get(*field))
        .map(|field| {
            (
                field.clone(),
                old.get(field).map(text),
                new.get(field).map(text),
            )
        })
        .collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => td_string!(locale(), audit.none).to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // Lists (a key's scopes) as `a, b`; nested objects are not logged.
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(_) => "…".to_owned(),
    }
}
