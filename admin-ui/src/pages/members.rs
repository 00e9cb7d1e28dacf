//! Members of the workspace (their roles, removing them) and invitations (making one shows
//! its link once; revoking one). Admins and owners only; only owners make or unmake owners.

use leptos::prelude::*;
use shortlink::workspace::{CreatedInvitation, Invitation, Member, Permission, Role};

use crate::range::date_time;
use crate::widgets::{ConfirmDialog, ErrorBox, Refused, ShownOnce, flash, role_label};
use crate::{Auth, api};

#[component]
pub fn Members() -> impl IntoView {
    let auth = expect_context::<Auth>();
    if !auth.permits(Permission::Administer) {
        return view! {
            <section class="page" aria-labelledby="members-title">
                <h1 id="members-title">"Members"</h1>
                <Refused role=auth.role() what="managing members"/>
            </section>
        }
        .into_any();
    }
    let reload = RwSignal::new(0_u32);
    let notice = RwSignal::new(None::<String>);
    let removing = RwSignal::new(None::<Member>);
    let members = crate::widgets::load_json::<Vec<Member>>(move || {
        reload.track();
        "/api/v1/members".to_owned()
    });
    let invitations = crate::widgets::load_json::<Vec<Invitation>>(move || {
        reload.track();
        "/api/v1/invitations".to_owned()
    });
    view! {
        <section class="page" aria-labelledby="members-title">
            <div class="page-head">
                <h1 id="members-title">"Members"</h1>
            </div>
            <p class="notice" role="status" aria-live="polite">{move || notice.get()}</p>
            {move || match members.get() {
                None => view! { <p class="loading">"Loading members…"</p> }.into_any(),
                Some(Err(err)) => view! { <ErrorBox message=err.message reload=reload/> }.into_any(),
                Some(Ok(list)) => view! {
                    <div class="table-wrap">
                        <table id="members-table">
                            <thead>
                                <tr>
                                    <th scope="col">"Username"</th>
                                    <th scope="col">"Role"</th>
                                    <th scope="col">"Joined"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|member| view! {
                                    <MemberRow member=member notice=notice reload=reload removing=removing/>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            }}
            {move || removing.get().map(|member| view! {
                <RemoveMember user_id=member.user_id username=member.username notice=notice reload=reload
                    on_close=Callback::new(move |()| removing.set(None))/>
            })}
            <Invitations invitations=invitations reload=reload notice=notice/>
        </section>
    }
    .into_any()
}

#[component]
fn MemberRow(
    member: Member,
    notice: RwSignal<Option<String>>,
    reload: RwSignal<u32>,
    removing: RwSignal<Option<Member>>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let me = auth.session().is_some_and(|s| s.user_id == member.user_id);
    let owner = auth.permits(Permission::Own);
    // Admins manage admins, editors and viewers; owners also owners.
    let may_change = owner || member.role != Role::Owner;
    let choices: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|role| owner || *role != Role::Owner)
        .collect();
    let (user_id, username) = (member.user_id, member.username.clone());
    let role = member.role;
    let on_change = move |ev: leptos::ev::Event| {
        let Some(chosen) = Role::parse(&event_target_value(&ev)) else {
            return;
        };
        let Some(session) = auth.session() else {
            return;
        };
        let username = username.clone();
        leptos::task::spawn_local(async move {
            match api::change_role(&session, user_id, chosen).await {
                Ok(()) => {
                    flash(notice, format!("{username} is now {}.", chosen.as_str()));
                    if user_id == session.user_id {
                        auth.refresh();
                    }
                }
                Err(err) => {
                    auth.check(&err);
                    flash(notice, err.message);
                }
            }
            reload.update(|n| *n += 1);
        });
    };
    let for_remove = member.clone();
    let name = member.username.clone();
    view! {
        <tr data-user=member.username>
            <td>{member.username.clone()}{me.then_some(" (you)")}</td>
            <td>
                <label class="visually-hidden" for=format!("role-{user_id}")>{format!("Role of {name}")}</label>
                <select id=format!("role-{user_id}") on:change=on_change disabled=!may_change prop:value=role.as_str()>
                    {if may_change { choices } else { vec![role] }.into_iter().map(|r| view! {
                        <option value=r.as_str() selected=r == role>{role_label(r)}</option>
                    }).collect_view()}
                </select>
            </td>
            <td>{date_time(member.joined_at)}</td>
            <td class="actions">
                {(me || may_change).then(|| view! {
                    <button class="danger" on:click=move |_| removing.set(Some(for_remove.clone()))
                        aria-label=if me { "Leave the workspace".to_owned() } else { format!("Remove {name}") }>
                        {if me { "Leave" } else { "Remove" }}
                    </button>
                })}
            </td>
        </tr>
    }
}

#[component]
pub fn RemoveMember(
    user_id: i64,
    username: String,
    /// Closes the dialog.
    on_close: Callback<()>,
    notice: RwSignal<Option<String>>,
    reload: RwSignal<u32>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let me = auth.session().is_some_and(|s| s.user_id == user_id);
    let location = expect_context::<crate::nav::Location>();
    let name = username.clone();
    let confirm = Callback::new(move |()| {
        let Some(session) = auth.session() else {
            return;
        };
        let username = username.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::remove_member(&session, user_id).await {
                Ok(()) => {
                    on_close.run(());
                    if me {
                        location.go(&crate::nav::Page::Overview);
                        auth.refresh();
                    } else {
                        flash(notice, format!("Removed {username}."));
                        reload.update(|n| *n += 1);
                    }
                }
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err.message));
                }
            }
            busy.set(false);
        });
    });
    let (title, text, label) = if me {
        (
            "Leave this workspace?".to_owned(),
            "You lose access to its links, keys and statistics until someone invites you again."
                .to_owned(),
            "Leave",
        )
    } else {
        (
            format!("Remove {name}?"),
            format!("{name} loses access at once; their sessions in this workspace end."),
            "Remove member",
        )
    };
    view! {
        <ConfirmDialog title=title text=text confirm=label.to_owned() busy=busy error=error
            on_confirm=confirm on_cancel=on_close/>
    }
}

#[component]
fn Invitations(
    invitations: crate::widgets::Json<Vec<Invitation>>,
    reload: RwSignal<u32>,
    notice: RwSignal<Option<String>>,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let role = RwSignal::new(Role::Editor.as_str().to_owned());
    let created = RwSignal::new(None::<CreatedInvitation>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let owner = auth.permits(Permission::Own);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let (Some(session), Some(chosen)) = (auth.session(), Role::parse(&role.get_untracked()))
        else {
            return;
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::create_invitation(&session, chosen).await {
                Ok(invitation) => {
                    created.set(Some(invitation));
                    reload.update(|n| *n += 1);
                }
                Err(err) => {
                    auth.check(&err);
                    error.set(Some(err.message));
                }
            }
            busy.set(false);
        });
    };
    let revoke = move |id: i64| {
        let Some(session) = auth.session() else {
            return;
        };
        leptos::task::spawn_local(async move {
            match api::revoke_invitation(&session, id).await {
                Ok(()) => flash(
                    notice,
                    "Revoked the invitation: its link no longer works.".to_owned(),
                ),
                Err(err) => {
                    auth.check(&err);
                    flash(notice, err.message);
                }
            }
            reload.update(|n| *n += 1);
        });
    };
    view! {
        <h2 id="invitations-title">"Invitations"</h2>
        <form class="panel invite-form" on:submit=submit aria-labelledby="invite-form-title" novalidate>
            <h3 id="invite-form-title">"Invite someone"</h3>
            <div class="toolbar">
                <label>
                    <span class="label">"Role for the invited person"</span>
                    <select prop:value=move || role.get() on:change=move |ev| role.set(event_target_value(&ev))>
                        {Role::ALL.into_iter().filter(|r| owner || *r != Role::Owner).map(|r| view! {
                            <option value=r.as_str() selected=r == Role::Editor>{role_label(r)}</option>
                        }).collect_view()}
                    </select>
                </label>
                <button type="submit" class="primary" disabled=move || busy.get()>"Invite"</button>
            </div>
            <p class="hint">"Makes a link that lets one person join (or sign up and join) with this role. It expires unused."</p>
            <p class="error" role="alert">{move || error.get()}</p>
        </form>
        {move || created.get().map(|invitation| view! {
            <ShownOnce label=format!("Invitation link for a new {}", invitation.invitation.role.as_str())
                value=invitation.url
                hint="Copy it now and send it to the person: it is shown only once. Revoke it below if it goes astray.".to_owned()
                on_done=Callback::new(move |()| created.set(None))/>
        })}
        {move || match invitations.get() {
            None => view! { <p class="loading">"Loading invitations…"</p> }.into_any(),
            Some(Err(err)) => view! { <ErrorBox message=err.message reload=reload/> }.into_any(),
            Some(Ok(list)) if list.is_empty() => view! { <p class="empty">"No open invitations."</p> }.into_any(),
            Some(Ok(list)) => view! {
                <div class="table-wrap">
                    <table id="invitations-table" aria-labelledby="invitations-title">
                        <thead>
                            <tr>
                                <th scope="col">"Role"</th>
                                <th scope="col">"Made by"</th>
                                <th scope="col">"Made"</th>
                                <th scope="col">"Expires"</th>
                                <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {list.into_iter().map(|invitation| {
                                let id = invitation.id;
                                view! {
                                    <tr>
                                        <td>{role_label(invitation.role)}</td>
                                        <td>{invitation.created_by.unwrap_or_else(|| "—".to_owned())}</td>
                                        <td>{date_time(invitation.created_at)}</td>
                                        <td>{date_time(invitation.expires_at)}</td>
                                        <td class="actions">
                                            <button class="danger" on:click=move |_| revoke(id)
                                                aria-label=format!("Revoke the invitation for a new {}", invitation.role.as_str())>"Revoke"</button>
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }.into_any(),
        }}
    }
}
