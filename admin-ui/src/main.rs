//! The kurz dashboard: sign in, manage links, see their analytics.
//!
//! A client-side Leptos app served by the origin at `/admin`; it talks only to `/api/v1` with
//! the session cookie. Code map: `api` (calls and errors), `nav` (pages and addresses),
//! `range` (time ranges and formats), `chart` (plotters), `pages/*` (one module per screen).

mod api;
mod chart;
mod nav;
mod pages;
mod range;

use crate::api::Session;
use crate::nav::{Link, Page};
use leptos::prelude::*;

/// The signed-in session (None: show the sign-in page).
#[derive(Debug, Clone, Copy)]
pub struct Auth(pub RwSignal<Option<Session>>);

impl Auth {
    /// The session, for calls that change something; a missing one sends the person to
    /// sign in.
    pub fn session(self) -> Option<Session> {
        self.0.get_untracked()
    }

    /// Handles an API error common to every page: a 401 means the session ended.
    pub fn check(self, error: &api::ApiError) {
        if error.is_unauthorized() {
            self.0.set(None);
        }
    }
}

fn main() {
    console_error_panic_hook_lite();
    leptos::mount::mount_to_body(App);
}

/// Panics show in the browser's console instead of an opaque "unreachable" trap.
fn console_error_panic_hook_lite() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&info.to_string().into());
    }));
}

#[component]
fn App() -> impl IntoView {
    provide_context(chart::watch_dark_mode());
    nav::provide_location();
    let session = RwSignal::new(None::<Session>);
    let auth = Auth(session);
    provide_context(auth);
    // Whether we asked the origin for an existing session yet (avoids flashing the sign-in).
    let checked = RwSignal::new(false);
    leptos::task::spawn_local(async move {
        match api::current_session().await {
            Ok(found) => session.set(Some(found)),
            Err(err) if err.is_unauthorized() => {}
            Err(err) => web_sys::console::warn_1(&err.message.into()),
        }
        checked.set(true);
    });
    view! {
        {move || {
                if !checked.get() {
                    view! { <p class="loading page-loading">"Loading…"</p> }.into_any()
                } else if session.with(Option::is_none) {
                    view! { <pages::sign_in::SignIn/> }.into_any()
                } else {
                    view! { <Shell/> }.into_any()
                }
        }}
    }
}

/// The signed-in layout: header with navigation, and the page.
#[component]
fn Shell() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let page = expect_context::<nav::Location>().0;
    let username = move || {
        auth.0
            .with(|s| s.as_ref().map(|s| s.username.clone()).unwrap_or_default())
    };
    let signing_out = RwSignal::new(false);
    let sign_out = move |_| {
        let Some(session) = auth.session() else {
            return;
        };
        signing_out.set(true);
        leptos::task::spawn_local(async move {
            if let Err(err) = api::sign_out(&session).await {
                web_sys::console::warn_1(&err.message.into());
            }
            signing_out.set(false);
            auth.0.set(None);
        });
    };
    view! {
        <a class="skip" href="#main">"Skip to content"</a>
        <header class="top">
            <Link to=Page::Overview class="brand" label="kurz: overview">"kurz"</Link>
            <nav aria-label="Main">
                <Link to=Page::Overview>"Overview"</Link>
                <Link to=Page::Links>"Links"</Link>
            </nav>
            <div class="who">
                <span class="username" title="Signed in">{username}</span>
                <button class="secondary" on:click=sign_out disabled=move || signing_out.get()>
                    "Sign out"
                </button>
            </div>
        </header>
        <main id="main">
            {move || match page.get() {
                Page::Overview => view! { <pages::overview::Overview/> }.into_any(),
                Page::Links => view! { <pages::links::Links/> }.into_any(),
                Page::Link { code, id } => view! { <pages::link_stats::LinkStats code=code id=id/> }.into_any(),
                Page::NotFound => view! {
                    <p class="empty">"There is no such page. "<Link to=Page::Overview>"Go to the overview"</Link></p>
                }.into_any(),
            }}
        </main>
    }
}
