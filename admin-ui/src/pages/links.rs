//! The links page: search, filter (tag, switched off or on), sort (by the column headers too,
//! clicks included) and page through links (keyset pages: as fast at link 1,000,000 as at
//! link 1), each with its clicks in all and in the last 7 days; create, edit, switch off,
//! delete, copy, QR codes.

use gloo_storage::Storage;
use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use shortlink::api::{Link, LinkPage};
use shortlink::query::{LinkListQuery, LinkSort};
use shortlink::workspace::Permission;

use crate::i18n::{t, t_string, use_i18n};
use crate::nav::{Link as PageLink, Page};
use crate::pages::link_form::FormMode;
use crate::range::{count, date_time};
use crate::widgets::{ConfirmDialog, Loaded, Modal, flash, focus_when_drawn, load_json};
use crate::{Auth, api};

const PAGE_SIZE_KEY: &str = "kurz.links.page_size";

/// The links page's state, shared by its parts.
#[derive(Clone, Copy)]
struct LinksState {
    /// The search as applied (typed text is applied 250 ms after the last keystroke).
    query: RwSignal<String>,
    /// The tag filter as typed, and as applied.
    typed_tag: RwSignal<String>,
    tag: RwSignal<String>,
    /// Switched off (`Some(true)`), on, or every link.
    disabled: RwSignal<Option<bool>>,
    sort: RwSignal<LinkSort>,
    page_size: RwSignal<i64>,
    /// The cursors of the pages before this one; the last is this page's.
    cursors: RwSignal<Vec<String>>,
    /// The list asked for last, and the list of the answer shown: until they are one again,
    /// the table shown pages no more (its cursors are of another list).
    asked: StoredValue<LinkListQuery>,
    shown: StoredValue<LinkListQuery>,
    /// Bumped after a change (and by Try again): the page loads again.
    reload: RwSignal<u32>,
    /// The link form, when open.
    form: RwSignal<Option<FormMode>>,
    /// The link the delete dialog asks about, and the one the QR dialog shows.
    deleting: RwSignal<Option<Link>>,
    qr: RwSignal<Option<Link>>,
    /// What the last action did (or why it failed).
    notice: RwSignal<Option<String>>,
    /// Where the focus goes once the table is drawn again after an action (a CSS selector):
    /// the redrawn table has none of the buttons that had it.
    refocus: StoredValue<Option<String>, LocalStorage>,
}

impl LinksState {
    fn changed(self) {
        self.reload.update(|n| *n += 1);
    }

    /// [`LinksState::changed`], the focus then on `target` (else on the page's heading).
    fn changed_then_focus(self, target: String) {
        self.refocus.set_value(Some(target));
        self.changed();
    }

    /// Back to the first page, then `change` (a new search, filter or order).
    fn restart(self, change: impl FnOnce()) {
        // A target left by an action whose reload drew nothing new is not for this redraw.
        self.refocus.set_value(None);
        self.cursors.set(Vec::new());
        change();
    }

    fn sort_by(self, sort: LinkSort) {
        self.restart(|| self.sort.set(sort));
    }

    /// Whether a search or filter narrows the list.
    fn filtered(self) -> bool {
        !(self.query.with(String::is_empty)
            && self.tag.with(String::is_empty)
            && self.disabled.with(Option::is_none))
    }

    /// The list asked for (the search, filters, order and page size), at its first page.
    fn list(self) -> LinkListQuery {
        let non_empty = |text: String| (!text.is_empty()).then_some(text);
        LinkListQuery {
            cursor: None,
            limit: Some(self.page_size.get()),
            q: non_empty(self.query.get()),
            tag: non_empty(self.tag.get()),
            disabled: self.disabled.get(),
            sort: self.sort.get(),
        }
    }
}

/// The orders of the Sort menu, as the query names them.
const SORTS: [LinkSort; 6] = [
    LinkSort::Newest,
    LinkSort::Oldest,
    LinkSort::CodeAsc,
    LinkSort::CodeDesc,
    LinkSort::Clicks,
    LinkSort::Clicks7d,
];

fn sort_id(sort: LinkSort) -> &'static str {
    match sort {
        LinkSort::Newest => "newest",
        LinkSort::Oldest => "oldest",
        LinkSort::CodeAsc => "code_asc",
        LinkSort::CodeDesc => "code_desc",
        LinkSort::Clicks => "clicks",
        LinkSort::Clicks7d => "clicks_7d",
    }
}

#[component]
pub fn Links() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = LinksState {
        query: RwSignal::new(String::new()),
        typed_tag: RwSignal::new(String::new()),
        tag: RwSignal::new(String::new()),
        disabled: RwSignal::new(None),
        sort: RwSignal::new(LinkSort::Newest),
        page_size: RwSignal::new(
            gloo_storage::LocalStorage::get::<i64>(PAGE_SIZE_KEY).unwrap_or(25),
        ),
        cursors: RwSignal::new(Vec::new()),
        reload: RwSignal::new(0),
        form: RwSignal::new(None),
        deleting: RwSignal::new(None),
        qr: RwSignal::new(None),
        notice: RwSignal::new(None),
        refocus: StoredValue::new_local(None),
        asked: StoredValue::new(LinkListQuery::default()),
        shown: StoredValue::new(LinkListQuery::default()),
    };
    provide_context(state);
    let typed = RwSignal::new(String::new());
    let page = load_json::<LinkPage>(move || {
        state.reload.track();
        let list = state.list();
        state.asked.set_value(list.clone());
        // The list at this page.
        let query = LinkListQuery {
            cursor: state.cursors.with(|c| c.last().cloned()),
            ..list
        };
        format!("/api/v1/links?{}", api::query_string(&query))
    });
    // Every answer is the last request's (an overtaken one is dropped), also one equal to the
    // answer shown, which draws nothing new.
    Effect::new(move || {
        if page.answered().is_some() {
            state.shown.set_value(state.asked.get_value());
        }
    });
    // The search and the tag filter run 250 ms after the last keystroke, not on every one;
    // each input has its own timer, so typing in one does not cancel the other.
    let typing = move |typed: RwSignal<String>, applied: RwSignal<String>| {
        let debounce = StoredValue::new_local(None::<Timeout>);
        move |event: leptos::ev::Event| {
            typed.set(event_target_value(&event));
            let timeout = Timeout::new(250, move || {
                state.restart(|| applied.set(typed.get_untracked()));
            });
            // Dropping the previous timeout cancels it.
            debounce.set_value(Some(timeout));
        }
    };
    let on_saved = Callback::new(move |(link, created): (Link, bool)| {
        state.form.set(None);
        if created {
            state.sort_by(LinkSort::Newest);
        }
        // A new link's short link (its row is first, newest first); an edited one's Edit
        // button again.
        let code = link.code.as_str();
        let target = if created {
            format!("{} td.code a", row(code))
        } else {
            row_action(code, "edit")
        };
        state.changed_then_focus(target);
        let url = link.short_url;
        let text = if created {
            t_string!(i18n, links.created, url)
        } else {
            t_string!(i18n, links.saved, url)
        };
        flash(state.notice, text);
    });
    let on_deleted = Callback::new(move |code: String| {
        // The next row's Delete button (or the previous row's, for the last), where a person
        // deleting several links goes on.
        let neighbour = document()
            .query_selector(&row(&code))
            .ok()
            .flatten()
            .and_then(|row| {
                row.next_element_sibling()
                    .or_else(|| row.previous_element_sibling())
            })
            .and_then(|row| row.get_attribute("data-code"));
        match neighbour {
            Some(other) => state.changed_then_focus(row_action(&other, "delete")),
            None => state.changed_then_focus(HEADING.to_owned()),
        }
        flash(state.notice, t_string!(i18n, links.deleted, code));
    });

    view! {
        <section class="page links-page" aria-labelledby="links-title">
            <div class="page-head">
                <h1 id="links-title" tabindex="-1">{t!(i18n, links.title)}</h1>
                // Viewers read links; creating, editing and deleting are hidden from them.
                {move || auth.permits(Permission::WriteLinks).then(|| view! {
                    <button class="primary" data-action="new" on:click=move |_| state.form.set(Some(FormMode::Create))>{t!(i18n, links.new_link)}</button>
                })}
            </div>
            <p class="notice" role="status" aria-live="polite">{move || state.notice.get()}</p>
            {move || state.form.get().map(|mode| {
                crate::lazy_page(crate::pages::link_form_chunk(), move || crate::pages::link_form(mode.clone(), on_saved, Callback::new(move |()| close_form(state))))
            })}
            <div class="toolbar" role="search">
                <label class="grow">
                    <span class="label">{t!(i18n, links.search)}</span>
                    <input type="search" placeholder=move || t_string!(i18n, links.search_placeholder) prop:value=move || typed.get()
                        on:input=typing(typed, state.query) aria-controls="links-table"/>
                </label>
                <label>
                    <span class="label">{t!(i18n, links.tag)}</span>
                    <input placeholder=move || t_string!(i18n, links.tag_any) prop:value=move || state.typed_tag.get()
                        on:input=typing(state.typed_tag, state.tag) aria-controls="links-table"/>
                </label>
                <label>
                    <span class="label">{t!(i18n, links.show)}</span>
                    // Named here too: a label around a select also holds the options' text.
                    <select aria-label=move || t_string!(i18n, links.show)
                        prop:value=move || state.disabled.get().map_or("", |d| if d { "true" } else { "false" })
                        on:change=move |ev| {
                            let shown = event_target_value(&ev).parse::<bool>().ok();
                            state.restart(|| state.disabled.set(shown));
                        }>
                        <option value="">{t!(i18n, links.show_all)}</option>
                        <option value="false">{t!(i18n, links.show_enabled)}</option>
                        <option value="true">{t!(i18n, links.show_disabled)}</option>
                    </select>
                </label>
                <label>
                    <span class="label">{t!(i18n, links.sort)}</span>
                    <select aria-label=move || t_string!(i18n, links.sort)
                        prop:value=move || sort_id(state.sort.get())
                        on:change=move |ev| {
                            let id = event_target_value(&ev);
                            if let Some(sort) = SORTS.into_iter().find(|s| sort_id(*s) == id) {
                                state.sort_by(sort);
                            }
                        }>
                        {SORTS.into_iter().map(|sort| view! { <option value=sort_id(sort)>{sort_label(sort)}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    <span class="label">{t!(i18n, links.per_page)}</span>
                    <select aria-label=move || t_string!(i18n, links.per_page)
                        prop:value=move || state.page_size.get().to_string() on:change=move |ev| {
                        let size = event_target_value(&ev).parse().unwrap_or(25);
                        let _ = gloo_storage::LocalStorage::set(PAGE_SIZE_KEY, size);
                        state.restart(|| state.page_size.set(size));
                    }>
                        <option value="25">"25"</option>
                        <option value="50">"50"</option>
                        <option value="100">"100"</option>
                    </select>
                </label>
            </div>
            <Loaded data=page reload=state.reload loading=Signal::derive(move || t_string!(i18n, links.loading).to_string()) let:page>
                <LinkTable page=page/>
            </Loaded>
            {move || state.deleting.get().map(|link| crate::lazy_page(crate::pages::delete_dialog_chunk(), move || crate::pages::delete_dialog(link.clone(), on_deleted)))}
            {move || state.qr.get().map(|link| crate::lazy_page(crate::pages::qr_chunk(), move || crate::pages::qr_dialog(link.clone())))}
        </section>
    }
}

/// The links page's heading: where the focus goes when what had it is gone for good.
const HEADING: &str = "#links-title";

/// The row of the link `code` (codes are letters, digits, `-` and `_`: nothing to escape).
fn row(code: &str) -> String {
    format!("tr[data-code=\"{code}\"]")
}

/// A control of the link `code`'s row, by its `data-action`.
fn row_action(code: &str, action: &str) -> String {
    format!("{} [data-action=\"{action}\"]", row(code))
}

/// Closes the link form without saving: the focus goes back to the button that opened it
/// (the form, above the table, took it with it).
fn close_form(state: LinksState) {
    let opener = match state.form.get_untracked() {
        Some(FormMode::Edit(link)) => row_action(link.code.as_str(), "edit"),
        _ => "[data-action=\"new\"]".to_owned(),
    };
    state.form.set(None);
    focus_when_drawn(opener, HEADING);
}

/// A sort's name in the Sort menu.
fn sort_label(sort: LinkSort) -> impl IntoView {
    let i18n = use_i18n();
    match sort {
        LinkSort::Newest => t!(i18n, links.sort_newest).into_any(),
        LinkSort::Oldest => t!(i18n, links.sort_oldest).into_any(),
        LinkSort::CodeAsc => t!(i18n, links.sort_code_asc).into_any(),
        LinkSort::CodeDesc => t!(i18n, links.sort_code_desc).into_any(),
        LinkSort::Clicks => t!(i18n, links.sort_clicks).into_any(),
        LinkSort::Clicks7d => t!(i18n, links.sort_clicks_7d).into_any(),
    }
}

/// A column header that sorts the list: a button in the `<th>`, whose `aria-sort` says whether
/// (and which way) the list is sorted by it. `first` is the order a click gives; a click on
/// the column already sorted that way gives `then` (the other way, or back to newest first
/// for the counts, which sort most first only).
#[component]
fn SortHeader(
    first: LinkSort,
    then: LinkSort,
    /// Whether `then` sorts by this column too (the other way).
    #[prop(default = true)]
    both_ways: bool,
    #[prop(optional)] class: &'static str,
    children: Children,
) -> impl IntoView {
    let state = expect_context::<LinksState>();
    let ascending = |sort: LinkSort| matches!(sort, LinkSort::Oldest | LinkSort::CodeAsc);
    let aria_sort = move || {
        let sort = state.sort.get();
        if sort == first || (both_ways && sort == then) {
            if ascending(sort) {
                "ascending"
            } else {
                "descending"
            }
        } else {
            "none"
        }
    };
    view! {
        <th scope="col" class=class aria-sort=aria_sort>
            <button type="button" class="sort-header" aria-controls="links-table"
                on:click=move |_| state.sort_by(if state.sort.get_untracked() == first { then } else { first })>
                {children()}
            </button>
        </th>
    }
}

#[component]
fn LinkTable(page: LinkPage) -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<LinksState>();
    if let Some(target) = state.refocus.try_update_value(Option::take).flatten() {
        focus_when_drawn(target, HEADING);
    }
    if page.links.is_empty() {
        let first_page = state.cursors.with_untracked(Vec::is_empty);
        return if !first_page {
            // A later page whose links were deleted (or moved on): the way back.
            let cursors = state.cursors;
            view! {
                <p class="empty">{t!(i18n, links.page_empty)}</p>
                <nav class="pager" aria-label=move || t_string!(i18n, links.pages)>
                    <button class="secondary" on:click=move |_| cursors.update(|c| { c.pop(); })>{t!(i18n, links.previous)}</button>
                </nav>
            }
            .into_any()
        } else if state.filtered() {
            view! { <p class="empty">{t!(i18n, links.no_match)}</p> }.into_any()
        } else {
            view! { <p class="empty">{t!(i18n, links.empty)}</p> }.into_any()
        };
    }
    let next = page.next_cursor.clone();
    let shown = count(page.links.len() as i64);
    let rows = page
        .links
        .into_iter()
        .map(|link| view! { <LinkRow link=link/> })
        .collect_view();
    let cursors = state.cursors;
    // The page this table shows: until the next one's answer is drawn, this table and its
    // buttons stay, and a second click (a double click, a slow network) must not step again.
    let depth = cursors.with_untracked(Vec::len);
    // This table is the answer for the list asked for now, at this page: once another list
    // was asked for, its cursors (of this one) page no more until that answer comes.
    let current = move |c: &Vec<String>| {
        c.len() == depth
            && state
                .shown
                .with_value(|shown| untrack(move || state.list()) == *shown)
    };
    view! {
        <div class="table-wrap">
            <table id="links-table">
                <thead>
                    <tr>
                        <SortHeader first=LinkSort::CodeAsc then=LinkSort::CodeDesc>{t!(i18n, links.col_short)}</SortHeader>
                        <th scope="col">{t!(i18n, links.col_destination)}</th>
                        <th scope="col" class="narrow">{t!(i18n, links.col_status)}</th>
                        <SortHeader first=LinkSort::Clicks then=LinkSort::Newest both_ways=false class="number">{t!(i18n, links.col_clicks)}</SortHeader>
                        <SortHeader first=LinkSort::Clicks7d then=LinkSort::Newest both_ways=false class="number">{t!(i18n, links.col_7d)}</SortHeader>
                        <SortHeader first=LinkSort::Newest then=LinkSort::Oldest>{t!(i18n, links.col_created)}</SortHeader>
                        <th scope="col">{t!(i18n, links.col_expires)}</th>
                        <th scope="col"><span class="visually-hidden">{t!(i18n, links.col_actions)}</span></th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <nav class="pager" aria-label=move || t_string!(i18n, links.pages)>
            <button class="secondary" disabled=move || cursors.with(Vec::is_empty)
                on:click=move |_| cursors.maybe_update(|c| current(c) && c.pop().is_some())>{t!(i18n, links.previous)}</button>
            <span>{move || t!(i18n, links.page_info, page = count(cursors.with(Vec::len) as i64 + 1), shown = shown.clone())}</span>
            <button class="secondary" disabled=next.is_none()
                on:click=move |_| if let Some(next) = next.clone() {
                    cursors.maybe_update(|c| current(c) && { c.push(next); true });
                }>{t!(i18n, links.next)}</button>
        </nav>
    }
    .into_any()
}

#[component]
fn LinkRow(link: Link) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<LinksState>();
    let code = link.code.to_string();
    let tags = link
        .tags
        .as_slice()
        .iter()
        .map(|tag| {
            let tag = tag.to_string();
            let label = t_string!(i18n, links.tagged, tag = tag.clone());
            let chosen = tag.clone();
            let show = move |_| {
                state.typed_tag.set(chosen.clone());
                let chosen = chosen.clone();
                state.restart(|| state.tag.set(chosen));
            };
            view! { <li><button type="button" class="chip" aria-label=label on:click=show>{tag}</button></li> }
        })
        .collect_view();
    let limit = link.max_clicks.map(|max| {
        t_string!(
            i18n,
            links.limit,
            used = count(link.clicks_used as i64),
            max = count(max.get() as i64)
        )
    });
    let clicks = link.click_counts.unwrap_or_default();
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
                let switch = row_action(&code, "toggle");
                toggling.set(false);
                let text = match done {
                    Ok(()) if now_disabled => t_string!(i18n, links.enabled_done, code),
                    Ok(()) => t_string!(i18n, links.disabled_done, code),
                    Err(err) => err.message,
                };
                flash(state.notice, text);
                state.changed_then_focus(switch);
            });
        }
    };
    let short_url = link.short_url.clone();
    let copy = move |_| {
        let text = short_url.clone();
        leptos::task::spawn_local(async move {
            let clipboard = window().navigator().clipboard();
            let copied = wasm_bindgen_futures::JsFuture::from(clipboard.write_text(&text)).await;
            let message = match copied {
                Ok(_) => t_string!(i18n, common.copied, text),
                Err(_) => t_string!(i18n, common.clipboard_refused, text),
            };
            flash(state.notice, message);
        });
    };
    let expires = link.expires_at.map_or_else(|| "—".to_owned(), date_time);
    let (for_edit, for_delete, for_qr) = (link.clone(), link.clone(), link.clone());
    let code_text = code.clone();
    let stats_label = t_string!(i18n, links.stats_label, code = code.clone());
    let copy_label = t_string!(i18n, links.copy_label, url = link.short_url.clone());
    let qr_label = t_string!(i18n, links.qr_label, code = code.clone());
    let enabled_label = t_string!(i18n, links.enabled_label, code = code.clone());
    let edit_label = t_string!(i18n, links.edit_label, code = code.clone());
    let delete_label = t_string!(i18n, links.delete_label, code = code.clone());
    view! {
        <tr data-code=code>
            <td class="code">
                <PageLink to=Page::link(code.clone(), link.id)>{code_text}</PageLink>
                <button class="icon" on:click=copy aria-label=copy_label>{t!(i18n, common.copy)}</button>
            </td>
            <td class="destination">
                {link.title.as_ref().map(|title| view! { <strong class="link-title">{title.as_str().to_owned()}</strong><br/> })}
                <a href=link.destination.as_str().to_owned() target="_blank" rel="noopener noreferrer">
                    {link.destination.as_str().to_owned()}
                </a>
                <ul class="meta">
                    {link.disabled.then(|| view! { <li class="badge off">{t!(i18n, links.badge_disabled)}</li> })}
                    {link.password_protected.then(|| view! { <li class="badge">{t!(i18n, links.badge_protected)}</li> })}
                    {limit.map(|limit| view! { <li class="badge">{limit}</li> })}
                    {tags}
                </ul>
            </td>
            <td class="narrow">{link.status.code()}</td>
            <td class="number clicks">{count(clicks.total as i64)}</td>
            <td class="number clicks-7d">{count(clicks.last_7_days as i64)}</td>
            <td>{date_time(link.created_at)}</td>
            <td>{expires}</td>
            <td class="actions">
                <PageLink to=Page::link(code.clone(), link.id) class="button secondary" label=stats_label>{t!(i18n, links.stats)}</PageLink>
                <button class="secondary" on:click=move |_| state.qr.set(Some(for_qr.clone()))
                    aria-label=qr_label>{t!(i18n, links.qr)}</button>
                {auth.permits(Permission::WriteLinks).then(|| view! {
                    <button class="secondary" data-action="toggle" role="switch" aria-checked=(!link.disabled).to_string()
                        aria-label=enabled_label disabled=move || toggling.get() on:click=toggle>
                        {if link.disabled { t!(i18n, links.enable).into_any() } else { t!(i18n, links.disable).into_any() }}
                    </button>
                    <button class="secondary" data-action="edit" on:click=move |_| state.form.set(Some(FormMode::Edit(Box::new(for_edit.clone()))))
                        aria-label=edit_label>{t!(i18n, links.edit)}</button>
                    <button class="danger" data-action="delete" on:click=move |_| state.deleting.set(Some(for_delete.clone()))
                        aria-label=delete_label>{t!(i18n, links.delete)}</button>
                })}
            </td>
        </tr>
    }
}

#[component]
pub fn ConfirmDelete(link: Link, on_deleted: Callback<String>) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<LinksState>();
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
                    // The person may have left the page meanwhile: nothing of it is there to set.
                    Ok(()) => {
                        state.deleting.try_set(None);
                        on_deleted.try_run(code);
                    }
                    Err(err) => {
                        error.try_set(Some(err.message));
                    }
                }
                busy.try_set(false);
            });
        })
    };
    view! {
        <ConfirmDialog title=t_string!(i18n, links.delete_title, code)
            text=t_string!(i18n, links.delete_text, url = link.short_url)
            confirm=t_string!(i18n, links.delete_confirm).to_string() busy=busy error=error on_confirm=confirm
            on_cancel=Callback::new(move |()| state.deleting.set(None))/>
    }
}

#[component]
pub fn QrDialog(link: Link) -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<LinksState>();
    let code = api::encode(link.code.as_str());
    let close = Callback::new(move |()| state.qr.set(None));
    view! {
        <Modal labelledby="qr-title" class="qr" on_close=close>
            <h2 id="qr-title">{t!(i18n, links.qr_label, code = link.code.to_string())}</h2>
            <img src=format!("/api/v1/links/{code}/qr.svg") width="240" height="240"
                alt=t_string!(i18n, links.qr_alt, url = link.short_url.clone())/>
            <p class="hint">{t!(i18n, links.qr_hint)}</p>
            <div class="buttons">
                <a class="button secondary" href=format!("/api/v1/links/{code}/qr.svg")
                    download=format!("{}-qr.svg", link.code)>{t!(i18n, links.download_svg)}</a>
                <a class="button secondary" href=format!("/api/v1/links/{code}/qr.png?size=1024")
                    download=format!("{}-qr.png", link.code)>{t!(i18n, links.download_png)}</a>
                <button class="primary" autofocus on:click=move |_| close.run(())>{t!(i18n, links.close)}</button>
            </div>
        </Modal>
    }
}
