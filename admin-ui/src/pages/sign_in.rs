//! The sign-in page: shown whenever there is no session.

use leptos::prelude::*;

use crate::nav::{Location, Page};
use crate::{Auth, SignInFirst, api};

#[component]
pub fn SignIn() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    // Opened from an invitation: after signing in, its page returns (the token is still in
    // the address) to accept it.
    let from_invitation = expect_context::<Location>().0.get_untracked() == Page::Invite;
    let sign_in_first = expect_context::<SignInFirst>().0;
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let (user, pass) = (username.get_untracked(), password.get_untracked());
        if user.trim().is_empty() || pass.is_empty() {
            error.set(Some("Enter your username and password.".to_owned()));
            return;
        }
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::sign_in(user.trim(), &pass).await {
                Ok(session) => {
                    password.set(String::new());
                    auth.set(Some(session));
                }
                Err(err) => error.set(Some(err.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <main class="sign-in" id="main">
            <form on:submit=submit aria-labelledby="sign-in-title" novalidate>
                <h1 id="sign-in-title"><span class="brand">"kurz"</span>" — sign in"</h1>
                <label for="username">"Username"</label>
                <input id="username" name="username" autocomplete="username" required autofocus
                    bind:value=username/>
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password"
                    required bind:value=password/>
                <p class="error" role="alert" aria-live="assertive">{move || error.get()}</p>
                <button type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                </button>
                {from_invitation.then(|| view! {
                    <p class="hint">"You will accept the invitation after signing in. "
                        <button type="button" class="link-button" on:click=move |_| sign_in_first.set(false)>
                            "Back to the invitation"
                        </button>
                    </p>
                })}
            </form>
        </main>
    }
}
