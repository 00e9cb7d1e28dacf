//! Which page the address names, and moving between pages without reloading.
//!
//! The dashboard has a handful of pages, so this is a parse of the path and the History API rather
//! than `leptos_router`: the router cost ~20 KB of the gzipped .wasm, which the size budget
//! (250 KiB with charts at the time) could not spare.

use leptos::ev;
use leptos::prelude::*;
use wasm_bindgen::JsValue;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    Overview,
    Links,
    /// The analytics of the link with this code. `id` pins the page to one link: a code is
    /// free again once its link is deleted, so an address kept from before (a tab, a
    /// bookmark, the overview's top links) must not show the link that took the code since.
    /// Without it (an address typed by hand) the page shows whichever link has the code now.
    Link {
        code: String,
        id: Option<i64>,
    },
    /// Members of the workspace, and invitations to it.
    Members,
    /// Accepting an invitation; its token is in the address's fragment (`#…`), which never
    /// reaches a server's log.
    Invite,
    /// The workspace's API keys.
    Keys,
    /// What changed in the workspace, by whom.
    Audit,
    /// The person's password and sessions.
    Profile,
    /// Renaming the workspace, making a new one, leaving one.
    Settings,
    /// The deployment's abuse control (operator workspace's admins).
    Abuse,
    /// Importing links from a file; exporting them.
    Import,
    /// The workspace's webhook endpoints and their deliveries.
    Webhooks,
    NotFound,
}

impl Page {
    /// The analytics page of this link.
    pub fn link(code: impl Into<String>, id: i64) -> Self {
        Self::Link {
            code: code.into(),
            id: Some(id),
        }
    }

    /// The page of a path under `/admin` and its query string (`?id=42`, or empty).
    pub fn parse(path: &str, search: &str) -> Self {
        let rest = path.strip_prefix("/admin").unwrap_or("~");
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [] if rest.is_empty() || rest == "/" => Self::Overview,
            ["links"] => Self::Links,
            ["members"] => Self::Members,
            ["invite"] => Self::Invite,
            ["keys"] => Self::Keys,
            ["audit"] => Self::Audit,
            ["profile"] => Self::Profile,
            ["settings"] => Self::Settings,
            ["abuse"] => Self::Abuse,
            ["import"] => Self::Import,
            ["webhooks"] => Self::Webhooks,
            ["links", code] => Self::Link {
                code: decode(code),
                id: query_value(search, "id").and_then(|id| id.parse().ok()),
            },
            _ => Self::NotFound,
        }
    }

    pub fn href(&self) -> String {
        match self {
            Self::Overview | Self::NotFound => "/admin".to_owned(),
            Self::Links => "/admin/links".to_owned(),
            Self::Members => "/admin/members".to_owned(),
            Self::Invite => "/admin/invite".to_owned(),
            Self::Keys => "/admin/keys".to_owned(),
            Self::Audit => "/admin/audit".to_owned(),
            Self::Profile => "/admin/profile".to_owned(),
            Self::Settings => "/admin/settings".to_owned(),
            Self::Abuse => "/admin/abuse".to_owned(),
            Self::Import => "/admin/import".to_owned(),
            Self::Webhooks => "/admin/webhooks".to_owned(),
            Self::Link { code, id } => {
                let path = format!("/admin/links/{}", crate::api::encode(code));
                match id {
                    Some(id) => format!("{path}?id={id}"),
                    None => path,
                }
            }
        }
    }
}

/// The value of `name` in a query string such as `?id=42&x=1`.
fn query_value<'a>(search: &'a str, name: &str) -> Option<&'a str> {
    search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn decode(segment: &str) -> String {
    js_sys::decode_uri_component(segment)
        .ok()
        .and_then(|decoded| decoded.as_string())
        .unwrap_or_else(|| segment.to_owned())
}

/// The current page, as a signal every component can read.
#[derive(Debug, Clone, Copy)]
pub struct Location(pub ReadSignal<Page>, WriteSignal<Page>);

/// Reads the address once, and follows the browser's back and forward buttons.
pub fn provide_location() -> Location {
    let (page, set_page) = signal(current());
    let handle = window_event_listener(ev::popstate, move |_| set_page.set(current()));
    // The app lives as long as the page.
    std::mem::forget(handle);
    let location = Location(page, set_page);
    provide_context(location);
    location
}

fn current() -> Page {
    let location = window().location();
    Page::parse(
        &location.pathname().unwrap_or_default(),
        &location.search().unwrap_or_default(),
    )
}

/// Shows `page` and puts it in the address bar and the history.
pub fn go(page: &Page) {
    expect_context::<Location>().go(page);
}

impl Location {
    /// [`go`], for code that runs after an `await` (outside the components' context).
    pub fn go(self, page: &Page) {
        if let Ok(history) = window().history() {
            let _ = history.push_state_with_url(&JsValue::NULL, "", Some(&page.href()));
        }
        self.1.set(page.clone());
        window().scroll_to_with_x_and_y(0.0, 0.0);
    }
}

/// A link to a page of the dashboard: a real `<a href>` (open in a new tab works), followed
/// in place on a plain click.
#[component]
pub fn Link(
    to: Page,
    #[prop(optional, into)] class: String,
    #[prop(optional, into)] label: Option<Signal<String>>,
    children: Children,
) -> impl IntoView {
    let Location(current, _) = expect_context::<Location>();
    let href = to.href();
    let target = to.clone();
    let on_click = move |event: ev::MouseEvent| {
        let modified = event.ctrl_key() || event.meta_key() || event.shift_key() || event.alt_key();
        if event.button() == 0 && !modified {
            event.prevent_default();
            go(&target);
        }
    };
    view! {
        <a href=href class=class on:click=on_click aria-label=label
            aria-current=move || (current.get() == to).then_some("page")>
            {children()}
        </a>
    }
}
