//! The person's own page: change the password; see where they are signed in, sign out one
//! of those sessions or all of them.

use leptos::prelude::*;
use shortlink::workspace::{ChangePassword, SessionEntry};

use crate::api::ApiError;
use crate::range::date_time;
use crate::widgets::{ConfirmDialog, ErrorBox, flash};
use crate::{Auth, api};

#[component]
pub fn Profile() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let username = auth.session().map(|s| s.username).unwrap_or_default();
    view! {
        <section class="page" aria-labelledby="profile-title">
            <div class="page-head">
                <h1 id="profile-title">{format!("Profile of {username}")}</h1>
            </div>
            <PasswordForm/>
            <Sessions/>
        </section>
    }
}

#[component]
fn PasswordForm() -> impl IntoView {
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
                    flash(
                        notice,
                        "Password changed. Your other sessions were signed out.".to_owned(),
                    );
                }
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err));
                }
            }
            busy.set(false);
        });
    };
    let field_error = move |field: &'static str| {
        move || error.with(|e| e.as_ref().and_then(|e| e.for_field(field)))
    };
    let invalid = move |field: &'static str| {
        move || {
            error
                .with(|e| {
                    e.as_ref()
                        .is_some_and(|e| e.field.as_deref() == Some(field))
                })
                .to_string()
        }
    };
    let general_error = move || {
        error.with(|e| {
            e.as_ref()
                .filter(|e| {
                    !matches!(
                        e.field.as_deref(),
                        Some("current_password" | "new_password")
                    )
                })
                .map(|e| e.message.clone())
        })
    };
    view! {
        <form class="panel link-form" on:submit=submit aria-labelledby="password-title" novalidate>
            <h2 id="password-title">"Change password"</h2>
            <div class="field">
                <label for="current-password">"Current password"</label>
                <input id="current-password" type="password" autocomplete="current-password" bind:value=current
                    aria-invalid=invalid("current_password") aria-describedby="current-password-error"/>
                <p class="field-error" id="current-password-error" role="alert">{field_error("current_password")}</p>
            </div>
            <div class="field">
                <label for="new-password">"New password"</label>
                <input id="new-password" type="password" autocomplete="new-password" bind:value=new
                    aria-invalid=invalid("new_password") aria-describedby="new-password-error"/>
                <p class="field-error" id="new-password-error" role="alert">{field_error("new_password")}</p>
            </div>
            <p class="error" role="alert">{general_error}</p>
            <p class="notice" role="status">{move || notice.get()}</p>
            <div class="buttons">
                <button type="submit" class="primary" disabled=move || busy.get()>"Change password"</button>
            </div>
        </form>
    }
}

#[component]
fn Sessions() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let reload = RwSignal::new(0_u32);
    let notice = RwSignal::new(None::<String>);
    let everywhere = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let sessions = crate::widgets::load_json::<Vec<SessionEntry>>(move || {
        reload.track();
        "/api/v1/me/sessions".to_owned()
    });
    let end = move |entry: SessionEntry| {
        let Some(session) = auth.session() else {
            return;
        };
        leptos::task::spawn_local(async move {
            match api::end_session(&session, entry.id).await {
                Ok(()) => flash(notice, "Signed out that session.".to_owned()),
                Err(err) => {
                    auth.check(&err);
                    flash(notice, err.message);
                }
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
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err.message));
                }
            }
            busy.set(false);
        });
    });
    view! {
        <section class="sessions" aria-labelledby="sessions-title">
            <div class="page-head">
                <h2 id="sessions-title">"Where you are signed in"</h2>
                <button class="danger" on:click=move |_| { error.set(None); everywhere.set(true) }>"Sign out everywhere"</button>
            </div>
            <p class="notice" role="status" aria-live="polite">{move || notice.get()}</p>
            {move || match sessions.get() {
                None => view! { <p class="loading">"Loading sessions…"</p> }.into_any(),
                Some(Err(err)) => view! { <ErrorBox message=err.message reload=reload/> }.into_any(),
                Some(Ok(list)) => view! {
                    <div class="table-wrap">
                        <table id="sessions-table">
                            <thead>
                                <tr>
                                    <th scope="col">"Browser"</th>
                                    <th scope="col">"Signed in"</th>
                                    <th scope="col">"Last seen"</th>
                                    <th scope="col">"Expires"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|entry| {
                                    let browser = entry.user_agent.clone().unwrap_or_else(|| "Unknown browser".to_owned());
                                    let label = format!("Sign out the session signed in {}", date_time(entry.created_at));
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
                                                    view! { <span class="badge">"This browser"</span> }.into_any()
                                                } else {
                                                    view! {
                                                        <button class="secondary" aria-label=label
                                                            on:click=move |_| end(entry.clone())>"Sign out"</button>
                                                    }.into_any()
                                                }}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            }}
            {move || everywhere.get().then(|| view! {
                <ConfirmDialog title="Sign out everywhere?".to_owned()
                    text="Every browser signed in as you, this one too, has to sign in again.".to_owned()
                    confirm="Sign out everywhere".to_owned() busy=busy error=error on_confirm=end_all
                    on_cancel=Callback::new(move |()| everywhere.set(false))/>
            })}
        </section>
    }
}
