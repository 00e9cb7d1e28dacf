//! Accepting an invitation (`/admin/invite#<token>`). Signed in: one button joins. Signed out:
//! a sign-up form, or "sign in first" (the sign-in page, after which this page returns, the
//! token still in the address).

use leptos::prelude::*;
use leptos_i18n::I18nContext;
use shortlink::workspace::{Role, SignUp};

use crate::api::ApiError;
use crate::i18n::{Locale, t, t_string, tu_string, use_i18n};
use crate::nav::{Location, Page};
use crate::range::date_time;
use crate::widgets::{FormError, LanguagePicker, role_label};
use crate::{Auth, Flash, SignInFirst, api};

/// The token in the address's fragment.
fn token() -> String {
    let hash = window().location().hash().unwrap_or_default();
    hash.trim_start_matches('#').to_owned()
}

#[component]
pub fn Invite() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let signed_in = auth.session().is_some();
    // A lookup (a POST: the token stays out of addresses and logs), not a list: a refused
    // token does not get better by trying again, so no Try again here.
    let preview = crate::widgets::load(move || async move {
        let token = token();
        if token.is_empty() {
            return Err(None);
        }
        api::lookup_invitation(token).await.map_err(Some)
    });
    let body = move || match preview.get() {
        None => {
            view! { <p class="loading" role="status">{t!(i18n, invite.opening)}</p> }.into_any()
        }
        Some(Err(error)) => {
            let message = move || match &error {
                Some(error) => error.message.clone(),
                None => t_string!(i18n, invite.no_token).to_string(),
            };
            view! {
                <h1 id="invite-title">{t!(i18n, invite.title)}</h1>
                <div class="error-box" role="alert"><p>{message}</p></div>
            }
            .into_any()
        }
        Some(Ok(preview)) => {
            let workspace = preview.workspace_name.clone();
            let title = move || {
                let role = role_label(preview.role).to_lowercase();
                t_string!(i18n, invite.join_as, workspace = workspace.clone(), role)
            };
            let (role, expires_at) = (preview.role, preview.expires_at);
            view! {
                <h1 id="invite-title">{title}</h1>
                <p class="hint">{move || what_role_does(i18n, role)}" "
                    {move || t_string!(i18n, invite.expires, date = date_time(expires_at))}</p>
                {if signed_in { view! { <Accept/> }.into_any() } else { view! { <SignUpForm/> }.into_any() }}
            }
            .into_any()
        }
    };
    if signed_in {
        view! { <section class="page invite" aria-labelledby="invite-title">{body}</section> }
            .into_any()
    } else {
        // Signed out there is no header: the language is chosen here.
        view! {
            <main class="sign-in" id="main">
                <div class="signed-out-language"><LanguagePicker/></div>
                <section class="invite panel" aria-labelledby="invite-title">{body}</section>
            </main>
        }
        .into_any()
    }
}

/// What the invited role may do, as a sentence in the dashboard's language.
fn what_role_does(i18n: I18nContext<Locale>, role: Role) -> &'static str {
    match role {
        Role::Owner => t_string!(i18n, invite.does_owner),
        Role::Admin => t_string!(i18n, invite.does_admin),
        Role::Editor => t_string!(i18n, invite.does_editor),
        Role::Viewer => t_string!(i18n, invite.does_viewer),
    }
}

/// Accepting as the person signed in.
#[component]
fn Accept() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let flash = expect_context::<Flash>().0;
    let location = expect_context::<Location>();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let username = auth.session().map(|s| s.username).unwrap_or_default();
    let accept = move |_| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::accept_invitation(&session, token()).await {
                Ok(now) => {
                    let name = now
                        .workspace
                        .as_ref()
                        .map(|w| w.name.clone())
                        .unwrap_or_default();
                    location.go(&Page::Links);
                    auth.set(Some(now));
                    flash.set(Some(tu_string!(i18n, invite.joined, name)));
                }
                Err(err) => error.set(Some(err.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <p>{move || t_string!(i18n, invite.signed_in_as, username = username.clone())}</p>
        <p class="error" role="alert">{move || error.get()}</p>
        <div class="buttons start">
            <button class="primary" on:click=accept disabled=move || busy.get()>{t!(i18n, invite.accept)}</button>
        </div>
    }
}

/// A new user: choose a username and password, and join.
#[component]
fn SignUpForm() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let sign_in_first = expect_context::<SignInFirst>().0;
    let location = expect_context::<Location>();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let body = SignUp {
            token: token(),
            username: username.get_untracked().trim().to_owned(),
            password: password.get_untracked(),
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::sign_up(&body).await {
                Ok(session) => {
                    location.go(&Page::Links);
                    auth.set(Some(session));
                }
                Err(err) => error.set(Some(err)),
            }
            // Signed in (or out), the page is gone, and its state with it.
            busy.try_set(false);
        });
    };
    let form_error = FormError::new(error, &["username", "password"]);
    view! {
        <form class="sign-up" on:submit=submit aria-labelledby="sign-up-title" novalidate>
            <h2 id="sign-up-title">{t!(i18n, invite.sign_up_title)}</h2>
            <label for="new-username">{t!(i18n, invite.username)}</label>
            <input id="new-username" name="username" autocomplete="username" required bind:value=username
                aria-invalid=form_error.invalid("username") aria-describedby="new-username-error"/>
            <p class="field-error" id="new-username-error" role="alert">{form_error.at("username")}</p>
            <label for="new-password">{t!(i18n, invite.password)}</label>
            <input id="new-password" name="password" type="password" autocomplete="new-password" required
                bind:value=password aria-invalid=form_error.invalid("password") aria-describedby="new-password-error"/>
            <p class="field-error" id="new-password-error" role="alert">{form_error.at("password")}</p>
            <p class="error" role="alert">{form_error.general()}</p>
            <button type="submit" class="primary" disabled=move || busy.get()>{t!(i18n, invite.sign_up)}</button>
        </form>
        <p class="hint">
            {t!(i18n, invite.have_account)}" "
            <button class="link-button" on:click=move |_| sign_in_first.set(true)>{t!(i18n, invite.sign_in_first)}</button>
            {t!(i18n, invite.then_accept)}
        </p>
    }
}
