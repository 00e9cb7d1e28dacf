//! The audit log: who changed what in the workspace, newest first, with the fields each
//! change touched (before → after). Filters by action, actor and link; pages by cursor.

use leptos::prelude::*;
use serde_json::Value;
use shortlink::workspace::{ApiKey, AuditEntry, Member, Permission};

use crate::range::date_time;
use crate::widgets::{ErrorBox, Refused};
use crate::{Auth, api};

const ACTIONS: [&str; 12] = [
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
];

#[component]
pub fn Audit() -> impl IntoView {
    let auth = expect_context::<Auth>();
    if !auth.permits(Permission::Administer) {
        return view! {
            <section class="page" aria-labelledby="audit-title">
                <h1 id="audit-title">"Audit log"</h1>
                <Refused role=auth.role() what="reading the audit log"/>
            </section>
        }
        .into_any();
    }
    let action = RwSignal::new(String::new());
    let actor = RwSignal::new(String::new());
    let link = RwSignal::new(String::new());
    let reload = RwSignal::new(0_u32);
    // Entries shown so far, and the cursor of the next page (None: no more).
    let entries = RwSignal::new(Vec::<AuditEntry>::new());
    let next = RwSignal::new(None::<String>);
    let loading = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Who can be chosen as the actor: members and keys (each list needs admin rights, which
    // this page has).
    let members = crate::widgets::load_json::<Vec<Member>>(|| "/api/v1/members".to_owned());
    let keys = crate::widgets::load_json::<Vec<ApiKey>>(|| "/api/v1/keys".to_owned());
    let actors = move || {
        let mut found = Vec::new();
        if let Some(Ok(members)) = members.get() {
            found.extend(
                members
                    .into_iter()
                    .map(|m| (format!("user:{}", m.user_id), m.username)),
            );
        }
        if let Some(Ok(keys)) = keys.get() {
            found.extend(
                keys.into_iter()
                    .map(|k| (format!("key:{}", k.id), format!("key {}", k.name))),
            );
        }
        found
    };
    let load = move |more: bool| {
        let cursor = if more {
            next.get_untracked().unwrap_or_default()
        } else {
            String::new()
        };
        let query = [
            ("action", action.get_untracked()),
            ("actor", actor.get_untracked()),
            ("link", link.get_untracked().trim().to_owned()),
            ("cursor", cursor),
        ];
        loading.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::audit(&query).await {
                Ok(page) => {
                    if more {
                        entries.update(|e| e.extend(page.entries));
                    } else {
                        entries.set(page.entries);
                    }
                    next.set(page.next_cursor);
                }
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err.message));
                }
            }
            loading.set(false);
        });
    };
    Effect::new(move || {
        reload.track();
        action.track();
        actor.track();
        load(false);
    });
    let on_link = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        load(false);
    };
    view! {
        <section class="page" aria-labelledby="audit-title">
            <div class="page-head">
                <h1 id="audit-title">"Audit log"</h1>
            </div>
            <form class="toolbar" role="search" on:submit=on_link aria-label="Filter the audit log">
                <label>
                    <span class="label">"Action"</span>
                    <select prop:value=move || action.get() on:change=move |ev| action.set(event_target_value(&ev))>
                        <option value="">"Any action"</option>
                        {ACTIONS.iter().map(|a| view! { <option value=*a>{*a}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    <span class="label">"Actor"</span>
                    <select prop:value=move || actor.get() on:change=move |ev| actor.set(event_target_value(&ev))>
                        <option value="">"Anyone"</option>
                        {move || actors().into_iter().map(|(value, name)| view! {
                            <option value=value>{name}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label>
                    <span class="label">"Link id"</span>
                    <input type="number" min="1" inputmode="numeric" bind:value=link placeholder="any"/>
                </label>
                <button type="submit" class="secondary">"Filter"</button>
            </form>
            {move || error.get().map(|message| view! { <ErrorBox message=message reload=reload/> })}
            {move || {
                let shown = entries.get();
                if shown.is_empty() {
                    let text = if loading.get() { "Loading the audit log…" } else { "No entries match." };
                    return view! { <p class="empty">{text}</p> }.into_any();
                }
                view! {
                    <div class="table-wrap">
                        <table id="audit-table">
                            <thead>
                                <tr>
                                    <th scope="col">"Time"</th>
                                    <th scope="col">"Who"</th>
                                    <th scope="col">"Action"</th>
                                    <th scope="col">"Target"</th>
                                    <th scope="col">"Changes"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {shown.into_iter().map(|entry| view! { <EntryRow entry=entry actor=actor/> }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}
            {move || next.get().is_some().then(|| view! {
                <nav class="pager" aria-label="More of the audit log">
                    <span></span>
                    <button class="secondary" on:click=move |_| load(true) disabled=move || loading.get()>"Load more"</button>
                </nav>
            })}
        </section>
    }
    .into_any()
}

#[component]
fn EntryRow(entry: AuditEntry, actor: RwSignal<String>) -> impl IntoView {
    let who = entry.actor.clone();
    let filter = format!("{}:{}", who.kind, who.id);
    let label = match who.kind.as_str() {
        "key" => format!("key {}", who.name),
        _ => who.name.clone(),
    };
    let changes = diff(entry.before.as_ref(), entry.after.as_ref());
    let (action, actor_name) = (entry.action.clone(), label.clone());
    view! {
        <tr data-action=action data-actor=actor_name>
            <td>{date_time(entry.at)}</td>
            <td>
                <button class="link-button" on:click=move |_| actor.set(filter.clone())
                    title="Show only this actor's changes">{label}</button>
            </td>
            <td class="code">{entry.action}</td>
            <td>{format!("{} {}", entry.target_kind, entry.target_id)}</td>
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

/// The fields that differ between `before` and `after`, as text: `(field, before, after)`.
/// A creation lists every field as new; a deletion every field as removed.
fn diff(
    before: Option<&Value>,
    after: Option<&Value>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let object = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
    let (old, new) = (object(before), object(after));
    let mut fields: Vec<&String> = old.keys().chain(new.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
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
        Value::Null => "none".to_owned(),
        other => other.to_string(),
    }
}
