//! Accepting an invitation (`/admin/invite#<token>`). Signed in: one button joins. Signed out:
//! a sign-up form, or "sign in first" (the sign-in page, after which this page returns, the
//! token still in the address).

use leptos::prelude::*;
use shortlink::workspace::{InvitationPreview, SignUp};

use crate::api::ApiError;
use crate::nav::{Location, Page};
use crate::range::date_time;
use crate::widgets::role_label;
use crate::{Auth, Flash, SignInFirst, api};

/// The token in the address's fragment.
fn token() -> String {
    let hash = window().location().hash().unwrap_or_default();
    hash.trim_start_matches('#').to_owned()
}

#[component]
pub fn Invite() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let signed_in = auth.session().is_some();
    let preview = crate::widgets::load(move || async move {
        let token = token();
        if token.is_empty() {
            return Err(
                "This address holds no invitation: open the whole link you were sent.".to_owned(),
            );
        }
        api::lookup_invitation(token).await.map_err(|e| e.message)
    });
    let body = move || {
        match preview.get() {
        None => view! { <p class="loading">"Opening the invitation…"</p> }.into_any(),
        Some(Err(message)) => view! {
            <h1 id="invite-title">"Invitation"</h1>
            <div class="error-box" role="alert"><p>{message}</p></div>
        }
        .into_any(),
        Some(Ok(preview)) => view! {
            <h1 id="invite-title">{format!("Join {} as {}", preview.workspace_name, preview.role.as_str())}</h1>
            <p class="hint">{format!("{}s {}. The invitation expires {}.", role_label(preview.role), what_role_does(&preview), date_time(preview.expires_at))}</p>
            {if signed_in { view! { <Accept/> }.into_any() } else { view! { <SignUpForm/> }.into_any() }}
        }
        .into_any(),
    }
    };
    if signed_in {
        view! { <section class="page invite" aria-labelledby="invite-title">{body}</section> }
            .into_any()
    } else {
        view! {
            <main class="sign-in" id="main">
                <section class="invite panel" aria-labelledby="invite-title">{body}</section>
            </main>
        }
        .into_any()
    }
}

fn what_role_does(preview: &InvitationPreview) -> &'static str {
    use shortlink::workspace::Role;
    match preview.role {
        Role::Owner => "manage the workspace, its members, keys and links",
        Role::Admin => "manage members, API keys and links",
        Role::Editor => "create, edit and delete links and see their statistics",
        Role::Viewer => "see links and their statistics",
    }
}

/// Accepting as the person signed in.
#[component]
fn Accept() -> impl IntoView {
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
                    flash.set(Some(format!("You joined “{name}”.")));
                }
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err.message));
                }
            }
            busy.set(false);
        });
    };
    view! {
        <p>{format!("You are signed in as {username}.")}</p>
        <p class="error" role="alert">{move || error.get()}</p>
        <div class="buttons start">
            <button class="primary" on:click=accept disabled=move || busy.get()>"Accept the invitation"</button>
        </div>
    }
}

/// A new user: choose a username and password, and join.
#[component]
fn SignUpForm() -> impl IntoView {
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
            busy.set(false);
        });
    };
    let field_error = move |field: &'static str| {
        move || error.with(|e| e.as_ref().and_then(|e| e.for_field(field)))
    };
    let general_error = move || {
        error.with(|e| {
            e.as_ref()
                .filter(|e| !matches!(e.field.as_deref(), Some("username" | "password")))
                .map(|e| e.message.clone())
        })
    };
    view! {
        <form class="sign-up" on:submit=submit aria-labelledby="sign-up-title" novalidate>
            <h2 id="sign-up-title">"New to kurz? Choose a username and password"</h2>
            <label for="new-username">"Username"</label>
            <input id="new-username" name="username" autocomplete="username" required bind:value=username
                aria-describedby="new-username-error"/>
            <p class="field-error" id="new-username-error" role="alert">{field_error("username")}</p>
            <label for="new-password">"Password"</label>
            <input id="new-password" name="password" type="password" autocomplete="new-password" required
                bind:value=password aria-describedby="new-password-error"/>
            <p class="field-error" id="new-password-error" role="alert">{field_error("password")}</p>
            <p class="error" role="alert">{general_error}</p>
            <button type="submit" class="primary" disabled=move || busy.get()>"Sign up and join"</button>
        </form>
        <p class="hint">
            "Already have an account? "
            <button class="link-button" on:click=move |_| sign_in_first.set(true)>"Sign in first"</button>
            ", then accept the invitation."
        </p>
    }
}
