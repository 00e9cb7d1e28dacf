//! The person's own page: change the password; see where they are signed in, sign out one
//! of those sessions or all of them.

use leptos::prelude::*;
use shortlink::workspace::{ChangePassword, SessionEntry};

use crate::api::ApiError;
use crate::i18n::{t, t_string, tu_string, use_i18n};
use crate::range::date_time;
use crate::widgets::{ConfirmDialog, FormError, Loaded, Refocus, flash, load_json};
use crate::{Auth, api};

#[component]
pub fn Profile() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let username = auth.session().map(|s| s.username).unwrap_or_default();
    // A new password ends every other session: the list is read again after one.
    let sessions_changed = RwSignal::new(0_u32);
    view! {
        <section class="page" aria-labelledby="profile-title">
            <div class="page-head">
                <h1 id="profile-title">{t_string!(i18n, profile.title, username)}</h1>
            </div>
            <PasswordForm changed=sessions_changed/>
            <Sessions reload=sessions_changed/>
        </section>
    }
}

/// `changed` counts the passwords changed here.
#[component]
fn PasswordForm(changed: RwSignal<u32>) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let notice = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let Some(session) = auth.session() else {
            return;
        };
        let body = ChangePassword {
            current_password: current.get_untracked(),
            new_password: new.get_untracked(),
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::change_password(&session, &body).await {
                Ok(()) => {
                    current.set(String::new());
                    new.set(String::new());
                    flash(notice, tu_string!(i18n, profile.changed).to_string());
                    changed.update(|n| *n += 1);
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    let form_error = FormError::new(error, &["current_password", "new_password"]);
    view! {
        <form class="panel link-form" on:submit=submit aria-labelledby="password-title" novalidate>
            <h2 id="password-title">{t!(i18n, profile.password_title)}</h2>
            <div class="field">
                <label for="current-password">{t!(i18n, profile.current_password)}</label>
                <input id="current-password" type="password" autocomplete="current-password" bind:value=current
                    aria-invalid=form_error.invalid("current_password") aria-describedby="current-password-error"/>
                <p class="field-error" id="current-password-error" role="alert">{form_error.at("current_password")}</p>
            </div>
            <div class="field">
                <label for="new-password">{t!(i18n, profile.new_password)}</label>
                <input id="new-password" type="password" autocomplete="new-password" bind:value=new
                    aria-invalid=form_error.invalid("new_password") aria-describedby="new-password-error"/>
                <p class="field-error" id="new-password-error" role="alert">{form_error.at("new_password")}</p>
            </div>
            <p class="error" role="alert">{form_error.general()}</p>
            <p class="notice" role="status">{move || notice.get()}</p>
            <div class="buttons">
                <button type="submit" class="primary" disabled=move || busy.get()>{t!(i18n, profile.submit)}</button>
            </div>
        </form>
    }
}

/// The caller's sessions, read again whenever `reload` changes.
#[component]
fn Sessions(reload: RwSignal<u32>) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let notice = RwSignal::new(None::<String>);
    let everywhere = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let sessions = load_json::<Vec<SessionEntry>>(move || {
        reload.track();
        "/api/v1/me/sessions".to_owned()
    });
    // A session signed out goes with its row, and the button that had the focus.
    let refocus = Refocus::new("#sessions-title");
    let end = move |entry: SessionEntry| {
        let Some(session) = auth.session() else {
            return;
        };
        let opener = document().active_element();
        leptos::task::spawn_local(async move {
            match api::end_session(&session, entry.id).await {
                Ok(()) => {
                    refocus.after_removal(opener.as_ref());
                    flash(notice, tu_string!(i18n, profile.signed_out).to_string());
                }
                Err(err) => flash(notice, err.message),
            }
            reload.update(|n| *n += 1);
        });
    };
    let end_all = Callback::new(move |()| {
        let Some(session) = auth.session() else {
            return;
        };
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::end_all_sessions(&session).await {
                Ok(()) => auth.set(None),
                Err(err) => error.set(Some(err.message)),
            }
            // Signed in (or out), the page is gone, and its state with it.
            busy.try_set(false);
        });
    });
    view! {
        <section class="sessions" aria-labelledby="sessions-title">
            <div class="page-head">
                <h2 id="sessions-title" tabindex="-1">{t!(i18n, profile.sessions_title)}</h2>
                <button class="danger" on:click=move |_| { error.set(None); everywhere.set(true) }>
                    {t!(i18n, profile.sign_out_everywhere)}
                </button>
            </div>
            <p class="notice" role="status">{move || notice.get()}</p>
            <Loaded data=sessions reload=reload loading=t_string!(i18n, profile.loading).to_string() let:list>
                {refocus.drawn()}
                <div class="table-wrap">
                    <table id="sessions-table" aria-labelledby="sessions-title">
                        <thead>
                            <tr>
                                <th scope="col">{t!(i18n, profile.browser)}</th>
                                <th scope="col">{t!(i18n, profile.signed_in)}</th>
                                <th scope="col">{t!(i18n, profile.last_seen)}</th>
                                <th scope="col">{t!(i18n, profile.expires)}</th>
                                <th scope="col"><span class="visually-hidden">{t!(i18n, profile.actions)}</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {list.into_iter().map(|entry| {
                                let browser = entry.user_agent.clone().unwrap_or_else(|| t_string!(i18n, profile.unknown_browser).to_owned());
                                let label = t_string!(i18n, profile.sign_out_label, date = date_time(entry.created_at));
                                let browser_title = browser.clone();
                                let current = entry.current;
                                view! {
                                    <tr data-current=current.to_string()>
                                        <td class="destination" title=browser_title>{browser}</td>
                                        <td>{date_time(entry.created_at)}</td>
                                        <td>{date_time(entry.last_seen_at)}</td>
                                        <td>{date_time(entry.expires_at)}</td>
                                        <td class="actions">
                                            {if current {
                                                view! { <span class="badge">{t!(i18n, profile.this_browser)}</span> }.into_any()
                                            } else {
                                                view! {
                                                    <button class="secondary" aria-label=label
                                                        on:click=move |_| end(entry.clone())>{t!(i18n, profile.sign_out)}</button>
                                                }.into_any()
                                            }}
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </Loaded>
            {move || everywhere.get().then(|| view! {
                <ConfirmDialog title=t_string!(i18n, profile.everywhere_title).to_string()
                    text=t_string!(i18n, profile.everywhere_text).to_string()
                    confirm=t_string!(i18n, profile.sign_out_everywhere).to_string() busy=busy error=error on_confirm=end_all
                    on_cancel=Callback::new(move |()| everywhere.set(false))/>
            })}
        </section>
    }
}
