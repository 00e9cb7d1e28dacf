//! The kurz dashboard: sign in, manage links, see their analytics.
//!
//! A client-side Leptos app served by the origin at `/admin`; it talks only to `/api/v1` with
//! the session cookie. Code map: `api` (calls and errors), `nav` (pages and addresses),
//! `range` (time ranges and formats), `chart` (the SVG chart), `pages/*` (one module per screen).

mod api;
mod chart;
mod nav;
mod pages;
mod range;
mod widgets;

// `pub mod i18n`, made by build.rs from `locales/*.json`.
include!(concat!(env!("OUT_DIR"), "/i18n/mod.rs"));

use crate::api::Session;
use crate::i18n::{I18nContextProvider, t, t_string, tu_string, use_i18n};
use crate::nav::{Link, Page};
use leptos::prelude::*;
use leptos::wasm_split::SplitLoaderError;
use shortlink::workspace::{Permission, Role};

/// The signed-in session (None: show the sign-in page).
#[derive(Debug, Clone, Copy)]
pub struct Auth(pub RwSignal<Option<Session>>);

impl Auth {
    /// The session, for calls that change something; a missing one sends the person to
    /// sign in.
    pub fn session(self) -> Option<Session> {
        self.0.get_untracked()
    }

    /// A new session (signed in, switched workspace, or None: signed out). Every call names
    /// its workspace from now on.
    pub fn set(self, session: Option<Session>) {
        api::show_workspace(
            session
                .as_ref()
                .and_then(|s| s.workspace.as_ref())
                .map(|w| w.id),
        );
        self.0.set(session);
    }

    /// Asks the origin for the session again (after a change of workspace or role).
    pub fn refresh(self) {
        leptos::task::spawn_local(async move {
            match api::current_session().await {
                Ok(session) => self.set(Some(session)),
                Err(err) => self.check(&err),
            }
        });
    }

    /// The workspace shown (tracked): a download's URL names it, as every call's header does.
    pub fn workspace_id(self) -> Option<i64> {
        self.0
            .with(|s| s.as_ref().and_then(|s| s.workspace.as_ref()).map(|w| w.id))
    }

    /// The person's role in the workspace shown (tracked).
    pub fn role(self) -> Option<Role> {
        self.0.with(|s| {
            s.as_ref()
                .and_then(|s| s.workspace.as_ref())
                .and_then(|w| w.role)
        })
    }

    /// Whether the person owns some workspace (tracked): only they may make another (the
    /// origin refuses the rest, so an invited viewer cannot publish redirects of their own).
    pub fn owns_a_workspace(self) -> bool {
        self.0.with(|s| {
            s.as_ref()
                .is_some_and(|s| s.workspaces.iter().any(|w| w.role == Some(Role::Owner)))
        })
    }

    /// Whether the role allows `permission` (tracked): what it may not do is hidden.
    pub fn permits(self, permission: Permission) -> bool {
        self.role().is_some_and(|role| role.permits(permission))
    }

    /// Handles an API error common to every page: a 401 means the session ended.
    pub fn check(self, error: &api::ApiError) {
        if error.is_unauthorized() {
            self.set(None);
        }
    }
}

/// A message for the whole dashboard, under the header (e.g. the workspace changed).
#[derive(Debug, Clone, Copy)]
pub struct Flash(pub RwSignal<Option<String>>);

/// Whether a person who opened an invitation asked to sign in before accepting it.
#[derive(Debug, Clone, Copy)]
pub struct SignInFirst(pub RwSignal<bool>);

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

/// The dashboard in the person's language: the browser's first (English or Korean), or the one
/// chosen in the header, kept in a cookie.
#[component]
fn App() -> impl IntoView {
    view! {
        <I18nContextProvider>
            <Dashboard/>
        </I18nContextProvider>
    }
}

#[component]
fn Dashboard() -> impl IntoView {
    let i18n = use_i18n();
    range::follow_locale(i18n);
    provide_context(chart::watch_dark_mode());
    nav::provide_location();
    let location = expect_context::<nav::Location>();
    let page = location.0;
    let session = RwSignal::new(None::<Session>);
    let auth = Auth(session);
    provide_context(auth);
    let flash = Flash(RwSignal::new(None));
    provide_context(flash);
    let sign_in_first = SignInFirst(RwSignal::new(false));
    provide_context(sign_in_first);
    // The session ended: sign in again. Another tab switched the session to another
    // workspace: show that one here too, and say why, rather than act on a workspace the
    // person is not looking at.
    api::on_session_error(move |error| {
        if error.is_unauthorized() {
            auth.set(None);
            return;
        }
        leptos::task::spawn_local(async move {
            match api::current_session().await {
                Ok(now) => {
                    let name = now
                        .workspace
                        .as_ref()
                        .map(|w| w.name.clone())
                        .unwrap_or_default();
                    flash
                        .0
                        .set(Some(t_string!(i18n, common.switched_elsewhere, name)));
                    // A link's page belongs to the workspace left behind: asked for in the
                    // new one, it said the link was deleted.
                    if matches!(page.get_untracked(), Page::Link { .. }) {
                        location.go(&Page::Links);
                    }
                    auth.set(Some(now));
                }
                Err(err) => auth.check(&err),
            }
        });
    });
    // Whether we asked the origin for an existing session yet (avoids flashing the sign-in).
    let checked = RwSignal::new(false);
    // Only signing in and out changes the layout; a new session (another workspace) does not.
    let signed_in = Memo::new(move |_| session.with(Option::is_some));
    leptos::task::spawn_local(async move {
        match api::current_session().await {
            Ok(found) => auth.set(Some(found)),
            Err(err) if err.is_unauthorized() => {}
            Err(err) => web_sys::console::warn_1(&err.message.into()),
        }
        checked.set(true);
    });
    view! {
        {move || {
                if !checked.get() {
                    view! { <p class="loading page-loading">{t!(i18n, common.loading)}</p> }.into_any()
                } else if !signed_in.get() {
                    if page.get() == Page::Invite && !sign_in_first.0.get() {
                        lazy_page(pages::invite_chunk(), pages::invite_page)
                    } else {
                        lazy_page(pages::sign_in_chunk(), pages::sign_in_page)
                    }
                } else {
                    view! { <Shell/> }.into_any()
                }
        }}
    }
}

/// The signed-in layout: header with the workspace, navigation, and the page.
#[component]
fn Shell() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let flash = expect_context::<Flash>().0;
    let page = expect_context::<nav::Location>().0;
    let username = move || {
        auth.0
            .with(|s| s.as_ref().map(|s| s.username.clone()).unwrap_or_default())
    };
    // The page is made anew (its data loaded again) when the workspace or role changes.
    let shown = Memo::new(move |_| {
        auth.0.with(|s| {
            s.as_ref()
                .and_then(|s| s.workspace.as_ref())
                .map(|w| (w.id, w.role))
        })
    });
    let admin = move || auth.permits(Permission::Administer);
    // Abuse control is deployment-wide: the API decides who may (a probe of its list, made
    // again when the workspace or role changes), the navigation only follows.
    let operator = crate::widgets::load(move || {
        let admin = shown.get().is_some() && auth.permits(Permission::Administer);
        async move { admin && api::get_text("/api/v1/abuse/blocklist").await.is_ok() }
    });
    let signing_out = RwSignal::new(false);
    let sign_out = move |_| {
        let Some(session) = auth.session() else {
            return;
        };
        signing_out.set(true);
        leptos::task::spawn_local(async move {
            let result = api::sign_out(&session).await;
            signing_out.set(false);
            match result {
                // A session already ended (401) is signed out too.
                Ok(()) => auth.set(None),
                Err(err) if err.is_unauthorized() => auth.set(None),
                // The session still works (on a shared computer, for the next person at it):
                // say so, rather than show the sign-in page over it.
                Err(err) => crate::widgets::flash(
                    flash,
                    tu_string!(i18n, common.sign_out_failed, message = err.message),
                ),
            }
        });
    };
    view! {
        <a class="skip" href="#main">{t!(i18n, common.skip)}</a>
        <header class="top">
            <Link to=Page::Overview class="brand" label=Signal::derive(move || t_string!(i18n, common.brand_label).to_owned())>"kurz"</Link>
            <pages::workspaces::Switcher/>
            <nav aria-label=move || t_string!(i18n, common.nav_main)>
                <Link to=Page::Overview>{t!(i18n, common.nav_overview)}</Link>
                <Link to=Page::Links>{t!(i18n, common.nav_links)}</Link>
                // One page: importing for those who may write links, exporting for everyone.
                <Link to=Page::Import>{move || if auth.permits(Permission::WriteLinks) {
                    t_string!(i18n, common.nav_import)
                } else {
                    t_string!(i18n, common.nav_export)
                }}</Link>
                {move || admin().then(|| view! {
                    <Link to=Page::Members>{t!(i18n, common.nav_members)}</Link>
                    <Link to=Page::Keys>{t!(i18n, common.nav_keys)}</Link>
                    <Link to=Page::Webhooks>{t!(i18n, common.nav_webhooks)}</Link>
                    <Link to=Page::Audit>{t!(i18n, common.nav_audit)}</Link>
                })}
                {move || (operator.get() == Some(true)).then(|| view! { <Link to=Page::Abuse>{t!(i18n, common.nav_abuse)}</Link> })}
                <Link to=Page::Settings>{t!(i18n, common.nav_settings)}</Link>
            </nav>
            <div class="who">
                <widgets::LanguagePicker/>
                <Link to=Page::Profile class="username"
                    label=Signal::derive(move || format!("{} ({})", username(), t_string!(i18n, common.your_profile)))>{username}</Link>
                <button class="secondary" on:click=sign_out disabled=move || signing_out.get()>
                    {t!(i18n, common.sign_out)}
                </button>
            </div>
        </header>
        <p class="notice flash" role="status">{move || flash.get()}</p>
        <main id="main">
            {move || {
                shown.track();
                // A new language draws the page anew: its dates and numbers too.
                i18n.get_locale();
                if shown.with(Option::is_none) && !matches!(page.get(), Page::Invite | Page::Profile | Page::Settings) {
                    return lazy_page(pages::no_workspace_chunk(), pages::no_workspace_page);
                }
                match page.get() {
                    Page::Overview => lazy_page(pages::overview_chunk(), pages::overview_page),
                    Page::Links => view! { <pages::links::Links/> }.into_any(),
                    Page::Link { code, id } => lazy_page(pages::link_stats_chunk(), move || pages::link_stats_page(code.clone(), id)),
                    Page::Members => lazy_page(pages::members_chunk(), pages::members_page),
                    Page::Invite => lazy_page(pages::invite_chunk(), pages::invite_page),
                    Page::Keys => lazy_page(pages::keys_chunk(), pages::keys_page),
                    Page::Audit => lazy_page(pages::audit_chunk(), pages::audit_page),
                    Page::Profile => lazy_page(pages::profile_chunk(), pages::profile_page),
                    Page::Settings => lazy_page(pages::settings_chunk(), pages::settings_page),
                    Page::Abuse => lazy_page(pages::abuse_chunk(), pages::abuse_page),
                    Page::Import => lazy_page(pages::import_chunk(), pages::import_page),
                    Page::Webhooks => lazy_page(pages::webhooks_chunk(), pages::webhooks_page),
                    Page::NotFound => view! {
                        <section class="page">
                            <h1>{t!(i18n, common.no_page)}</h1>
                            <p class="empty"><Link to=Page::Overview>{t!(i18n, common.go_overview)}</Link></p>
                        </section>
                    }.into_any(),
                }
            }}
        </main>
    }
}

/// A page from a chunk of the .wasm: "Loading…" until `load` (its `pages::*_chunk`) has
/// fetched it (once; later visits draw at once), then `page` (its `pages::*_page`), drawn in
/// this owner, so the page's state lives as long as it is shown; or, if the chunk cannot be
/// fetched, what happened and a way out.
pub fn lazy_page<F>(
    load: impl Future<Output = Result<(), SplitLoaderError>> + 'static,
    page: impl Fn() -> F + Send + Sync + 'static,
) -> AnyView
where
    F: Future<Output = Result<AnyView, pages::ChunkMissing>>,
{
    let i18n = use_i18n();
    let mut load = Box::pin(load);
    let loaded = RwSignal::new(ready(load.as_mut()).map(|done| done.is_ok()));
    if loaded.get_untracked().is_none() {
        leptos::task::spawn_local(async move {
            let done = load.await;
            loaded.try_set(Some(done.is_ok()));
        });
    }
    let missing = move || {
        view! {
            <div class="error-box" role="alert">
                <p>{t!(i18n, common.chunk_missing)}</p>
                <button on:click=|_| {
                    if let Some(window) = web_sys::window() {
                        let _ = window.location().reload();
                    }
                }>{t!(i18n, common.reload)}</button>
            </div>
        }
        .into_any()
    };
    (move || match loaded.get() {
        None => {
            view! { <p class="loading" role="status">{t!(i18n, common.loading)}</p> }.into_any()
        }
        // Loaded: the page's future is ready at its first poll.
        Some(true) => match ready(std::pin::pin!(page())) {
            Some(Ok(view)) => view,
            _ => missing(),
        },
        Some(false) => missing(),
    })
    .into_any()
}

/// A future's output if it has one at its first poll.
fn ready<F: Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}
