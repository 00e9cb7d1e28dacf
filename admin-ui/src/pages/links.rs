//! The links page: search, filter (tag, switched off or on), sort and page through links
//! (keyset pages: as fast at link 1,000,000 as at link 1), create, edit, switch off, delete,
//! copy, QR codes.

use gloo_storage::Storage;
use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use shortlink::api::{Link, LinkPage};
use shortlink::workspace::Permission;

use crate::nav::{Link as PageLink, Page};
use crate::pages::link_form::{FormMode, LinkForm};
use crate::range::{count, date_time};
use crate::widgets::ConfirmDialog;
use crate::{Auth, api};

const PAGE_SIZE_KEY: &str = "kurz.links.page_size";
const SORTS: [(&str, &str); 4] = [
    ("newest", "Newest first"),
    ("oldest", "Oldest first"),
    ("code_asc", "Code A–Z"),
    ("code_desc", "Code Z–A"),
];

#[component]
pub fn Links() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let typed = RwSignal::new(String::new());
    let query = RwSignal::new(String::new());
    let typed_tag = RwSignal::new(String::new());
    let tag = RwSignal::new(String::new());
    let disabled = RwSignal::new(String::new());
    let sort = RwSignal::new("newest".to_owned());
    let page_size =
        RwSignal::new(gloo_storage::LocalStorage::get::<u32>(PAGE_SIZE_KEY).unwrap_or(25));
    // The cursors of the pages before this one; the last is this page's.
    let cursors = RwSignal::new(Vec::<String>::new());
    let reload = RwSignal::new(0_u32);
    let form = RwSignal::new(None::<FormMode>);
    let deleting = RwSignal::new(None::<Link>);
    let qr = RwSignal::new(None::<Link>);
    let notice = RwSignal::new(None::<String>);

    let page = crate::widgets::load_json::<LinkPage>(move || {
        reload.track();
        api::links_url(&api::LinkQuery {
            q: query.get(),
            tag: tag.get(),
            disabled: disabled.get(),
            sort: sort.get(),
            limit: page_size.get(),
            cursor: cursors.with(|c| c.last().cloned().unwrap_or_default()),
        })
    });
    // The search and the tag filter run 250 ms after the last keystroke, not on every one;
    // each input has its own timer, so typing in one does not cancel the other.
    let typing = move |typed: RwSignal<String>, applied: RwSignal<String>| {
        let debounce = StoredValue::new_local(None::<Timeout>);
        move |event: leptos::ev::Event| {
            typed.set(event_target_value(&event));
            let timeout = Timeout::new(250, move || {
                cursors.set(Vec::new());
                applied.set(typed.get_untracked());
            });
            // Dropping the previous timeout cancels it.
            debounce.set_value(Some(timeout));
        }
    };
    // A tag chip in a row shows the links with that tag.
    let filter_tag = Callback::new(move |chosen: String| {
        typed_tag.set(chosen.clone());
        cursors.set(Vec::new());
        tag.set(chosen);
    });
    let show_notice = move |text: String| {
        notice.set(Some(text));
        Timeout::new(4000, move || notice.set(None)).forget();
    };
    let on_saved = Callback::new(move |(link, created): (Link, bool)| {
        form.set(None);
        if created {
            cursors.set(Vec::new());
            sort.set("newest".to_owned());
        }
        reload.update(|n| *n += 1);
        show_notice(format!(
            "{} {}.",
            if created { "Created" } else { "Saved" },
            link.short_url
        ));
    });

    view! {
        <section class="page links-page" aria-labelledby="links-title">
            <div class="page-head">
                <h1 id="links-title">"Links"</h1>
                // Viewers read links; creating, editing and deleting are hidden from them.
                {move || auth.permits(Permission::WriteLinks).then(|| view! {
                    <button class="primary" on:click=move |_| form.set(Some(FormMode::Create))>"New link"</button>
                })}
            </div>
            <p class="notice" role="status" aria-live="polite">{move || notice.get()}</p>
            {move || form.get().map(|mode| view! {
                <LinkForm mode=mode on_saved=on_saved on_cancel=Callback::new(move |()| form.set(None))/>
            })}
            <div class="toolbar" role="search">
                <label class="grow">
                    <span class="label">"Search"</span>
                    <input type="search" placeholder="Code, destination, title or note" prop:value=move || typed.get()
                        on:input=typing(typed, query) aria-controls="links-table"/>
                </label>
                <label>
                    <span class="label">"Tag"</span>
                    <input placeholder="any" prop:value=move || typed_tag.get()
                        on:input=typing(typed_tag, tag) aria-controls="links-table"/>
                </label>
                <label>
                    <span class="label">"Show"</span>
                    // Named here too: a label around a select also holds the options' text.
                    <select aria-label="Show" prop:value=move || disabled.get()
                        on:change=move |ev| { cursors.set(Vec::new()); disabled.set(event_target_value(&ev)); }>
                        <option value="">"All links"</option>
                        <option value="false">"Enabled"</option>
                        <option value="true">"Disabled"</option>
                    </select>
                </label>
                <label>
                    <span class="label">"Sort"</span>
                    <select on:change=move |ev| { cursors.set(Vec::new()); sort.set(event_target_value(&ev)); }
                        prop:value=move || sort.get()>
                        {SORTS.iter().map(|(value, label)| view! { <option value=*value>{*label}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    <span class="label">"Per page"</span>
                    <select prop:value=move || page_size.get().to_string() on:change=move |ev| {
                        let size = event_target_value(&ev).parse().unwrap_or(25);
                        let _ = gloo_storage::LocalStorage::set(PAGE_SIZE_KEY, size);
                        cursors.set(Vec::new());
                        page_size.set(size);
                    }>
                        <option value="25">"25"</option>
                        <option value="50">"50"</option>
                        <option value="100">"100"</option>
                    </select>
                </label>
            </div>
            {move || match page.get() {
                None => view! { <p class="loading">"Loading links…"</p> }.into_any(),
                Some(Err(err)) => view! {
                    <div class="error-box" role="alert">
                        <p>{err.message}</p>
                        <button on:click=move |_| reload.update(|n| *n += 1)>"Try again"</button>
                    </div>
                }.into_any(),
                Some(Ok(page)) => view! {
                    <LinkTable page=page filtered=Signal::derive(move || !(query.with(String::is_empty) && tag.with(String::is_empty) && disabled.with(String::is_empty)))
                        cursors=cursors form=form deleting=deleting qr=qr notice=notice filter_tag=filter_tag reload=reload/>
                }.into_any(),
            }}
            {move || deleting.get().map(|link| view! {
                <ConfirmDelete link=link deleting=deleting on_deleted=Callback::new(move |code: String| {
                    reload.update(|n| *n += 1);
                    show_notice(format!("Deleted {code}."));
                })/>
            })}
            {move || qr.get().map(|link| view! { <QrDialog link=link qr=qr/> })}
        </section>
    }
}

#[component]
fn LinkTable(
    page: LinkPage,
    /// Whether a search or filter narrows the list.
    filtered: Signal<bool>,
    cursors: RwSignal<Vec<String>>,
    form: RwSignal<Option<FormMode>>,
    deleting: RwSignal<Option<Link>>,
    qr: RwSignal<Option<Link>>,
    notice: RwSignal<Option<String>>,
    filter_tag: Callback<String>,
    reload: RwSignal<u32>,
) -> impl IntoView {
    if page.links.is_empty() {
        let empty = if !filtered.get_untracked() && cursors.with_untracked(Vec::is_empty) {
            "No links yet."
        } else {
            "No links match the search and filters."
        };
        return view! { <p class="empty">{empty}</p> }.into_any();
    }
    let next = page.next_cursor.clone();
    let shown = page.links.len();
    let rows = page
        .links
        .into_iter()
        .map(|link| view! { <LinkRow link=link form=form deleting=deleting qr=qr notice=notice filter_tag=filter_tag reload=reload/> })
        .collect_view();
    view! {
        <div class="table-wrap">
            <table id="links-table">
                <thead>
                    <tr>
                        <th scope="col">"Short link"</th>
                        <th scope="col">"Destination"</th>
                        <th scope="col" class="narrow">"Status"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages of links">
            <button class="secondary" disabled=move || cursors.with(Vec::is_empty)
                on:click=move |_| cursors.update(|c| { c.pop(); })>"← Previous"</button>
            <span>{move || format!("Page {} · {} shown", cursors.with(Vec::len) + 1, count(shown as i64))}</span>
            <button class="secondary" disabled=next.is_none()
                on:click=move |_| if let Some(next) = next.clone() { cursors.update(|c| c.push(next)) }>"Next →"</button>
        </nav>
    }
    .into_any()
}

#[component]
fn LinkRow(
    link: Link,
    form: RwSignal<Option<FormMode>>,
    deleting: RwSignal<Option<Link>>,
    qr: RwSignal<Option<Link>>,
    notice: RwSignal<Option<String>>,
    filter_tag: Callback<String>,
    reload: RwSignal<u32>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let code = link.code.to_string();
    let tags = link
        .tags
        .as_slice()
        .iter()
        .map(|tag| {
            let tag = tag.to_string();
            let label = format!("Show links tagged {tag}");
            let chosen = tag.clone();
            view! { <li><button type="button" class="chip" aria-label=label on:click=move |_| filter_tag.run(chosen.clone())>{tag}</button></li> }
        })
        .collect_view();
    let limit = link
        .max_clicks
        .map(|max| format!("limit {}/{}", link.clicks_used, max.get()));
    let toggling = RwSignal::new(false);
    let toggle = {
        let code = code.clone();
        let now_disabled = link.disabled;
        move |_| {
            let Some(session) = auth.session() else {
                return;
            };
            let code = code.clone();
            toggling.set(true);
            leptos::task::spawn_local(async move {
                let done = api::set_disabled(&session, &code, !now_disabled).await;
                toggling.set(false);
                let text = match done {
                    Ok(()) if now_disabled => format!("Enabled {code}."),
                    Ok(()) => format!("Disabled {code}: it answers “not found” (or its fallback)."),
                    Err(err) => err.message,
                };
                crate::widgets::flash(notice, text);
                reload.update(|n| *n += 1);
            });
        }
    };
    let short_url = link.short_url.clone();
    let copy = move |_| {
        let url = short_url.clone();
        leptos::task::spawn_local(async move {
            let clipboard = window().navigator().clipboard();
            let copied = wasm_bindgen_futures::JsFuture::from(clipboard.write_text(&url)).await;
            notice.set(Some(match copied {
                Ok(_) => format!("Copied {url}"),
                Err(_) => format!("The browser refused the clipboard; copy it by hand: {url}"),
            }));
            Timeout::new(4000, move || notice.set(None)).forget();
        });
    };
    let expires = link.expires_at.map_or_else(|| "—".to_owned(), date_time);
    let (for_edit, for_delete, for_qr) = (link.clone(), link.clone(), link.clone());
    let code_text = code.clone();
    view! {
        <tr data-code=code>
            <td class="code">
                <PageLink to=Page::link(code.clone(), link.id)>{code_text}</PageLink>
                <button class="icon" on:click=copy aria-label=format!("Copy the short link {}", link.short_url)>"Copy"</button>
            </td>
            <td class="destination">
                {link.title.as_ref().map(|title| view! { <strong class="link-title">{title.as_str().to_owned()}</strong><br/> })}
                <a href=link.destination.as_str().to_owned() target="_blank" rel="noopener noreferrer">
                    {link.destination.as_str().to_owned()}
                </a>
                <ul class="meta">
                    {link.disabled.then(|| view! { <li class="badge off">"disabled"</li> })}
                    {link.password_protected.then(|| view! { <li class="badge">"protected"</li> })}
                    {limit.map(|limit| view! { <li class="badge">{limit}</li> })}
                    {tags}
                </ul>
            </td>
            <td class="narrow">{link.status.code()}</td>
            <td>{date_time(link.created_at)}</td>
            <td>{expires}</td>
            <td class="actions">
                <PageLink to=Page::link(code.clone(), link.id) class="button secondary" label=format!("Analytics of {code}")>"Stats"</PageLink>
                <button class="secondary" on:click=move |_| qr.set(Some(for_qr.clone()))
                    aria-label=format!("QR code of {code}")>"QR"</button>
                {auth.permits(Permission::WriteLinks).then(|| view! {
                    <button class="secondary" role="switch" aria-checked=(!link.disabled).to_string()
                        aria-label=format!("Enabled: {code}") disabled=move || toggling.get() on:click=toggle>
                        {if link.disabled { "Enable" } else { "Disable" }}
                    </button>
                    <button class="secondary" on:click=move |_| form.set(Some(FormMode::Edit(Box::new(for_edit.clone()))))
                        aria-label=format!("Edit {}", link.code)>"Edit"</button>
                    <button class="danger" on:click=move |_| deleting.set(Some(for_delete.clone()))
                        aria-label=format!("Delete {}", link.code)>"Delete"</button>
                })}
            </td>
        </tr>
    }
}

#[component]
fn ConfirmDelete(
    link: Link,
    deleting: RwSignal<Option<Link>>,
    on_deleted: Callback<String>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let code = link.code.to_string();
    let confirm = {
        let code = code.clone();
        Callback::new(move |()| {
            let Some(session) = auth.session() else {
                return;
            };
            let code = code.clone();
            busy.set(true);
            leptos::task::spawn_local(async move {
                match api::delete_link(&session, &code).await {
                    Ok(()) => {
                        deleting.set(None);
                        on_deleted.run(code);
                    }
                    Err(err) => error.set(Some(err.message)),
                }
                busy.set(false);
            });
        })
    };
    view! {
        <ConfirmDialog title=format!("Delete {code}?")
            text=format!("{} will answer 404 from now on. Its analytics are kept. This cannot be undone.", link.short_url)
            confirm="Delete link".to_owned() busy=busy error=error on_confirm=confirm
            on_cancel=Callback::new(move |()| deleting.set(None))/>
    }
}

#[component]
fn QrDialog(link: Link, qr: RwSignal<Option<Link>>) -> impl IntoView {
    let code = api::encode(link.code.as_str());
    let close_button = NodeRef::<leptos::html::Button>::new();
    Effect::new(move || {
        if let Some(button) = close_button.get() {
            let _ = button.focus();
        }
    });
    view! {
        <div class="overlay" on:keydown=move |ev| if ev.key() == "Escape" { qr.set(None) }>
            <div class="dialog qr" role="dialog" aria-modal="true" aria-labelledby="qr-title">
                <h2 id="qr-title">{format!("QR code of {}", link.code)}</h2>
                <img src=format!("/api/v1/links/{code}/qr.svg") width="240" height="240"
                    alt=format!("QR code that opens {}", link.short_url)/>
                <p class="hint">"Scans are counted apart from clicks."</p>
                <div class="buttons">
                    <a class="button secondary" href=format!("/api/v1/links/{code}/qr.svg")
                        download=format!("{}-qr.svg", link.code)>"Download SVG"</a>
                    <a class="button secondary" href=format!("/api/v1/links/{code}/qr.png?size=1024")
                        download=format!("{}-qr.png", link.code)>"Download PNG"</a>
                    <button class="primary" node_ref=close_button on:click=move |_| qr.set(None)>"Close"</button>
                </div>
            </div>
        </div>
    }
}
