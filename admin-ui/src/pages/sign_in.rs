//! The sign-in page: shown whenever there is no session.

use leptos::prelude::*;

use crate::i18n::{t, t_string, tu_string, use_i18n};
use crate::nav::{Location, Page};
use crate::widgets::LanguagePicker;
use crate::{Auth, SignInFirst, api};

#[component]
pub fn SignIn() -> impl IntoView {
    let i18n = use_i18n();
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
            error.set(Some(tu_string!(i18n, sign_in.missing).to_string()));
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
            // Signed in (or out), the page is gone, and its state with it.
            busy.try_set(false);
        });
    };
    // The error is about both fields (which one is wrong is not said).
    let invalid = move || error.with(Option::is_some).to_string();
    view! {
        <main class="sign-in" id="main">
            <div class="signed-out-language"><LanguagePicker/></div>
            <form on:submit=submit aria-labelledby="sign-in-title" novalidate>
                <h1 id="sign-in-title"><span class="brand">"kurz"</span>" — "{t!(i18n, sign_in.title)}</h1>
                <label for="username">{t!(i18n, sign_in.username)}</label>
                <input id="username" name="username" autocomplete="username" required autofocus
                    bind:value=username aria-invalid=invalid aria-describedby="sign-in-error"/>
                <label for="password">{t!(i18n, sign_in.password)}</label>
                <input id="password" name="password" type="password" autocomplete="current-password"
                    required bind:value=password aria-invalid=invalid aria-describedby="sign-in-error"/>
                <p class="error" id="sign-in-error" role="alert">{move || error.get()}</p>
                <button type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { t_string!(i18n, sign_in.busy) } else { t_string!(i18n, sign_in.submit) }}
                </button>
                {from_invitation.then(|| view! {
                    <p class="hint">{t!(i18n, sign_in.after_invitation)}" "
                        <button type="button" class="link-button" on:click=move |_| sign_in_first.set(false)>
                            {t!(i18n, sign_in.back_to_invitation)}
                        </button>
                    </p>
                })}
            </form>
        </main>
    }
}
