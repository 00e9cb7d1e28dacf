//! The audit log: who changed what in the workspace, newest first, with the fields each
//! change touched (before → after). Filters by action, actor and link; pages by cursor.

use leptos::prelude::*;
use serde_json::Value;
use shortlink::workspace::{Actor, AuditEntry, Permission};

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
    // Whom the actor filter offers: everyone seen in the log so far (`user:1`, name).
    let actors = RwSignal::new(Vec::<(String, String)>::new());
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
                    actors.update(|known| {
                        for entry in &page.entries {
                            let value = format!("{}:{}", entry.actor.kind, entry.actor.id);
                            if !known.iter().any(|(v, _)| *v == value) {
                                known.push((value, actor_label(&entry.actor)));
                            }
                        }
                    });
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
                        {move || actors.get().into_iter().map(|(value, name)| view! {
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
    let label = actor_label(&who);
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

/// A person by name, a key as `key <name>`.
fn actor_label(actor: &Actor) -> String {
    match actor.kind.as_str() {
        "key" => format!("key {}", actor.name),
        _ => actor.name.clone(),
    }
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
        Value::Null => "none".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // Lists (a key's scopes) as `a, b`; nested objects are not logged.
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(_) => "…".to_owned(),
    }
}
