//! Members of the workspace (their roles, removing them) and invitations (making one shows
//! its link once; revoking one). Admins and owners only; only owners make or unmake owners.

use leptos::prelude::*;
use shortlink::workspace::{CreatedInvitation, Invitation, Member, Permission, Role};

use crate::i18n::{t, t_string, tu_string, use_i18n};
use crate::range::date_time;
use crate::widgets::{
    ConfirmDialog, Loaded, Refocus, Refused, ShownOnce, flash, load_json, role_label,
};
use crate::{Auth, api};

/// The members page's state, shared by its parts.
#[derive(Clone, Copy)]
struct MembersState {
    /// Bumped after a change: both lists load again.
    reload: RwSignal<u32>,
    /// What the last change did (or why it failed).
    notice: RwSignal<Option<String>>,
    /// The member the removal dialog asks about.
    removing: RwSignal<Option<Member>>,
    /// Where the focus goes once the members are drawn again after one was removed.
    refocus: Refocus,
}

impl MembersState {
    fn changed(self) {
        self.reload.update(|n| *n += 1);
    }
}

/// A role as a word in a sentence: `editor`, `편집자`.
fn role_word(role: Role) -> String {
    role_label(role).to_lowercase()
}

#[component]
pub fn Members() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    if !auth.permits(Permission::Administer) {
        return view! {
            <Refused title_id="members-title" title=move || t_string!(i18n, members.title)
                what=move || t_string!(i18n, members.refused_what)/>
        }
        .into_any();
    }
    let state = MembersState {
        reload: RwSignal::new(0),
        notice: RwSignal::new(None),
        removing: RwSignal::new(None),
        refocus: Refocus::new("#members-title"),
    };
    provide_context(state);
    let members = load_json::<Vec<Member>>(move || {
        state.reload.track();
        "/api/v1/members".to_owned()
    });
    view! {
        <section class="page" aria-labelledby="members-title">
            <div class="page-head">
                <h1 id="members-title" tabindex="-1">{t!(i18n, members.title)}</h1>
            </div>
            <p class="notice" role="status">{move || state.notice.get()}</p>
            <Loaded data=members reload=state.reload loading=t_string!(i18n, members.loading).to_string() let:list>
                {state.refocus.drawn()}
                <div class="table-wrap">
                    <table id="members-table" aria-labelledby="members-title">
                        <thead>
                            <tr>
                                <th scope="col">{t!(i18n, members.username)}</th>
                                <th scope="col">{t!(i18n, members.role)}</th>
                                <th scope="col">{t!(i18n, members.joined)}</th>
                                <th scope="col"><span class="visually-hidden">{t!(i18n, members.actions)}</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {list.into_iter().map(|member| view! { <MemberRow member=member/> }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </Loaded>
            {move || state.removing.get().map(|member| view! {
                <RemoveMember user_id=member.user_id username=member.username notice=state.notice
                    reload=state.reload refocus=state.refocus on_close=Callback::new(move |()| state.removing.set(None))/>
            })}
            <Invitations/>
        </section>
    }
    .into_any()
}

#[component]
fn MemberRow(member: Member) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<MembersState>();
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
    // The menu only chooses; the button changes. A closed menu's arrow keys fire `change` at
    // each step in some browsers: passing over a role must not give it (and lowering a role
    // revokes the member's keys at once).
    let chosen = RwSignal::new(role);
    let select = NodeRef::<leptos::html::Select>::new();
    let busy = RwSignal::new(false);
    let on_change = move |ev: leptos::ev::Event| {
        if let Some(picked) = Role::parse(&event_target_value(&ev)) {
            chosen.set(picked);
        }
    };
    let change = move |_| {
        let picked = chosen.get_untracked();
        let Some(session) = auth.session() else {
            return;
        };
        let name = username.clone();
        let word = role_word(picked);
        busy.set(true);
        leptos::task::spawn_local(async move {
            let result = api::change_role(&session, user_id, picked).await;
            busy.set(false);
            match result {
                Ok(()) => {
                    flash(
                        state.notice,
                        tu_string!(i18n, members.now_role, name, role = word),
                    );
                    if user_id == session.user_id {
                        auth.refresh();
                    }
                }
                Err(err) => {
                    // Refused: the list reloads the same, so the choice must be undone here.
                    // The row may be gone meanwhile (the page left, the list drawn again).
                    if let Some(select) = select.try_get_untracked().flatten() {
                        select.set_value(role.as_str());
                    }
                    chosen.set(role);
                    flash(state.notice, err.message);
                }
            }
            state.changed();
        });
    };
    let for_remove = member.clone();
    let name = member.username.clone();
    let change_label = t_string!(i18n, members.change_role_of, name = name.clone());
    let action_label = if me {
        t_string!(i18n, members.leave_label).to_string()
    } else {
        t_string!(i18n, members.remove_label, name = name.clone())
    };
    view! {
        <tr data-user=member.username>
            <td>{member.username.clone()}{me.then(|| t_string!(i18n, members.you))}</td>
            <td>
                <label class="visually-hidden" for=format!("role-{user_id}")>{t_string!(i18n, members.role_of, name)}</label>
                <select id=format!("role-{user_id}") node_ref=select on:change=on_change disabled=!may_change prop:value=role.as_str()>
                    {if may_change { choices } else { vec![role] }.into_iter().map(|r| view! {
                        <option value=r.as_str() selected=r == role>{role_label(r)}</option>
                    }).collect_view()}
                </select>
                {may_change.then(|| view! {
                    <button class="secondary" on:click=change aria-label=change_label
                        disabled=move || busy.get() || chosen.get() == role>
                        {t!(i18n, members.change_role)}
                    </button>
                })}
            </td>
            <td>{date_time(member.joined_at)}</td>
            <td class="actions">
                {(me || may_change).then(|| view! {
                    <button class="danger" on:click=move |_| state.removing.set(Some(for_remove.clone()))
                        aria-label=action_label>
                        {if me { t_string!(i18n, members.leave) } else { t_string!(i18n, members.remove) }}
                    </button>
                })}
            </td>
        </tr>
    }
}

/// Asks before removing a member, or before leaving (`user_id` is the person's own); also
/// the settings page's Leave.
#[component]
pub fn RemoveMember(
    user_id: i64,
    username: String,
    /// Closes the dialog.
    on_close: Callback<()>,
    notice: RwSignal<Option<String>>,
    reload: RwSignal<u32>,
    /// The members page's: where the focus goes once its list is drawn without the member.
    #[prop(optional)]
    refocus: Option<Refocus>,
) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let me = auth.session().is_some_and(|s| s.user_id == user_id);
    let location = expect_context::<crate::nav::Location>();
    let (title, text, label) = if me {
        (
            t_string!(i18n, members.leave_title).to_string(),
            t_string!(i18n, members.leave_text).to_string(),
            t_string!(i18n, members.leave).to_string(),
        )
    } else {
        let name = username.as_str();
        (
            t_string!(i18n, members.remove_title, name),
            t_string!(i18n, members.remove_text, name),
            t_string!(i18n, members.remove_confirm).to_string(),
        )
    };
    let removed = t_string!(i18n, members.removed, name = username);
    let opener = StoredValue::new_local(document().active_element());
    let confirm = Callback::new(move |()| {
        let Some(session) = auth.session() else {
            return;
        };
        let removed = removed.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::remove_member(&session, user_id).await {
                // The person may have left the page meanwhile: nothing of it is there to set.
                Ok(()) => {
                    on_close.try_run(());
                    if me {
                        // The session first: the overview then asks in the workspace the
                        // session now shows, not in the one just left (which the origin
                        // refuses as switched in another tab).
                        match api::current_session().await {
                            Ok(session) => auth.set(Some(session)),
                            Err(err) => auth.check(&err),
                        }
                        location.go(&crate::nav::Page::Overview);
                    } else {
                        if let Some(refocus) = refocus {
                            opener.try_with_value(|o| refocus.after_removal(o.as_ref()));
                        }
                        flash(notice, removed);
                        reload.try_update(|n| *n += 1);
                    }
                }
                Err(err) => {
                    error.try_set(Some(err.message));
                }
            }
            busy.try_set(false);
        });
    });
    view! {
        <ConfirmDialog title=title text=text confirm=label busy=busy error=error
            on_confirm=confirm on_cancel=on_close/>
    }
}

#[component]
fn Invitations() -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<Auth>();
    let state = expect_context::<MembersState>();
    let role = RwSignal::new(Role::Editor.as_str().to_owned());
    let created = RwSignal::new(None::<CreatedInvitation>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    // One revoke at a time: a second click sent a second DELETE, whose "not found" replaced
    // the first's notice.
    let revoking = RwSignal::new(false);
    // A revoked invitation's row goes with the button that had the focus.
    let refocus = Refocus::new("#invitations-title");
    let owner = auth.permits(Permission::Own);
    let invitations = load_json::<Vec<Invitation>>(move || {
        state.reload.track();
        "/api/v1/invitations".to_owned()
    });
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
                    state.changed();
                }
                Err(err) => error.set(Some(err.message)),
            }
            busy.set(false);
        });
    };
    let revoke = move |id: i64| {
        let Some(session) = auth.session() else {
            return;
        };
        if revoking.get_untracked() {
            return;
        }
        revoking.set(true);
        let opener = document().active_element();
        leptos::task::spawn_local(async move {
            match api::revoke_invitation(&session, id).await {
                Ok(()) => {
                    refocus.after_removal(opener.as_ref());
                    flash(state.notice, tu_string!(i18n, members.revoked).to_string());
                }
                Err(err) => flash(state.notice, err.message),
            }
            revoking.try_set(false);
            state.reload.try_update(|n| *n += 1);
        });
    };
    view! {
        <h2 id="invitations-title" tabindex="-1">{t!(i18n, members.invitations)}</h2>
        <form class="panel invite-form" on:submit=submit aria-labelledby="invite-form-title" novalidate>
            <h3 id="invite-form-title">{t!(i18n, members.invite_someone)}</h3>
            <div class="toolbar">
                <label>
                    <span class="label">{t!(i18n, members.invite_role)}</span>
                    <select prop:value=move || role.get() on:change=move |ev| role.set(event_target_value(&ev))
                        aria-describedby="invite-hint">
                        {Role::ALL.into_iter().filter(|r| owner || *r != Role::Owner).map(|r| view! {
                            <option value=r.as_str() selected=r == Role::Editor>{role_label(r)}</option>
                        }).collect_view()}
                    </select>
                </label>
                <button type="submit" class="primary" disabled=move || busy.get()>{t!(i18n, members.invite)}</button>
            </div>
            <p class="hint" id="invite-hint">{t!(i18n, members.invite_hint)}</p>
            <p class="error" role="alert">{move || error.get()}</p>
        </form>
        {move || created.get().map(|invitation| view! {
            <ShownOnce label=t_string!(i18n, members.link_label, role = role_word(invitation.invitation.role))
                value=invitation.url
                hint=t_string!(i18n, members.link_hint).to_string()
                on_done=Callback::new(move |()| created.set(None))/>
        })}
        <Loaded data=invitations reload=state.reload loading=t_string!(i18n, members.loading_invitations).to_string() let:list>
            {refocus.drawn()}
            {if list.is_empty() {
                view! { <p class="empty">{t!(i18n, members.no_invitations)}</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table id="invitations-table" aria-labelledby="invitations-title">
                            <thead>
                                <tr>
                                    <th scope="col">{t!(i18n, members.role)}</th>
                                    <th scope="col">{t!(i18n, members.made_by)}</th>
                                    <th scope="col">{t!(i18n, members.made)}</th>
                                    <th scope="col">{t!(i18n, members.expires)}</th>
                                    <th scope="col"><span class="visually-hidden">{t!(i18n, members.actions)}</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|invitation| {
                                    let id = invitation.id;
                                    let label = t_string!(i18n, members.revoke_label, role = role_word(invitation.role));
                                    view! {
                                        <tr>
                                            <td>{role_label(invitation.role)}</td>
                                            <td>{invitation.created_by.unwrap_or_else(|| "—".to_owned())}</td>
                                            <td>{date_time(invitation.created_at)}</td>
                                            <td>{date_time(invitation.expires_at)}</td>
                                            <td class="actions">
                                                <button class="danger" on:click=move |_| revoke(id)
                                                    disabled=move || revoking.get()
                                                    aria-label=label>{t!(i18n, members.revoke)}</button>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}
        </Loaded>
    }
}
