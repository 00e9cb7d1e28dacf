//! Who is calling `/api/v1`, in which workspace, and what they may do there.
//!
//! The middleware in `auth.rs` finds the caller (an API key, or a person's session) and puts
//! a [`Caller`] in the request; every handler takes it as an extractor and asks it for a
//! [`WorkspaceId`] with the [`Permission`] it needs. A `WorkspaceId` comes only from there,
//! and every query of the workspace's data takes one, so no handler can reach another
//! workspace's rows.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use shortlink::workspace::{Permission, Role, Scope};
use time::OffsetDateTime;

use crate::error::Error;

/// A workspace the caller was allowed into, for what it asked. Made only by [`Caller`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WorkspaceId(i64);

impl WorkspaceId {
    pub(crate) fn get(self) -> i64 {
        self.0
    }

    /// For work done on behalf of no caller: the first start, migrations' tests, sign-ups
    /// through an invitation (whose token names the workspace).
    pub(crate) fn trusted(id: i64) -> Self {
        Self(id)
    }
}

/// The deployment's operator workspace: the first one (`0012_workspaces.sql`), whose first
/// owner and key the first start makes. Its admins control what is deployment-wide.
pub(crate) const OPERATOR_WORKSPACE: i64 = 1;

/// Who made an API request and where.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) actor: Actor,
    /// `None`: a person who belongs to no workspace (left or was removed from all).
    workspace: Option<(i64, Grant)>,
}

#[derive(Debug, Clone)]
pub(crate) enum Actor {
    User {
        id: i64,
        name: String,
        session: Session,
    },
    Key {
        id: i64,
        name: String,
    },
}

/// A person's signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) id: i64,
    pub(crate) token_hash: [u8; 32],
    pub(crate) csrf_token: String,
    pub(crate) expires_at: OffsetDateTime,
}

/// What the caller holds in its workspace: a member's role or a key's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    Role(Role),
    Scopes(Vec<Scope>),
}

impl Grant {
    pub(crate) fn permits(&self, permission: Permission) -> bool {
        match self {
            Self::Role(role) => role.permits(permission),
            Self::Scopes(scopes) => scopes.iter().any(|s| s.permission() == permission),
        }
    }

    /// Whether this grant may give `role` to a person (invite with it, or change a member to
    /// it): only if every permission the role allows is allowed to this grant too, so nobody
    /// makes a person more powerful than themselves. A role grants itself and lesser roles;
    /// scopes grant a role only if they hold all its permissions (never `owner`: no scope owns).
    pub(crate) fn may_grant(&self, role: Role) -> bool {
        PERMISSIONS
            .into_iter()
            .all(|permission| !role.permits(permission) || self.permits(permission))
    }
}

/// Every permission, for [`Grant::may_grant`].
const PERMISSIONS: [Permission; 5] = {
    // A new permission fails to compile here until it is added to the list.
    match Permission::ReadLinks {
        Permission::ReadLinks
        | Permission::WriteLinks
        | Permission::ReadStats
        | Permission::Administer
        | Permission::Own => {}
    }
    [
        Permission::ReadLinks,
        Permission::WriteLinks,
        Permission::ReadStats,
        Permission::Administer,
        Permission::Own,
    ]
};

impl Caller {
    pub(crate) fn new(actor: Actor, workspace: Option<(i64, Grant)>) -> Self {
        Self { actor, workspace }
    }

    /// The caller as the database says now, read with the workspace locked
    /// ([`crate::members::lock`]). A request that waited for the lock while the caller's key
    /// was revoked, or their role lowered, then acts on what they may do now: what a
    /// revocation or a demotion takes away is not handed out again (a key made, a role given)
    /// by a request queued behind it. A key revoked or expired meanwhile: 401; a person no
    /// longer a member: 403.
    pub(crate) async fn as_now(&self, tx: &mut sqlx::PgConnection) -> Result<Self, Error> {
        let Some((workspace, grant)) = &self.workspace else {
            return Ok(self.clone());
        };
        let grant = match &self.actor {
            Actor::Key { id, .. } => {
                let live: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL
                                    AND (expires_at IS NULL OR expires_at > now()))",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if !live {
                    return Err(Error::Unauthorized);
                }
                // A key's scopes never change.
                grant.clone()
            }
            Actor::User { id, .. } => {
                let role: Option<String> = sqlx::query_scalar(
                    "SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(workspace)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let role = role.ok_or(Error::Forbidden {
                    needs: "a member of this workspace",
                })?;
                Grant::Role(crate::members::parse_role(&role)?)
            }
        };
        Ok(Self::new(self.actor.clone(), Some((*workspace, grant))))
    }

    /// The caller's workspace, if the caller may do `permission` there: 403 otherwise.
    pub(crate) fn may(&self, permission: Permission) -> Result<WorkspaceId, Error> {
        let (id, grant) = self.workspace.as_ref().ok_or(Error::NoWorkspace)?;
        if grant.permits(permission) {
            Ok(WorkspaceId(*id))
        } else {
            Err(Error::Forbidden {
                needs: needs(permission, grant),
            })
        }
    }

    /// The operator workspace, if the caller may control the whole deployment (the abuse
    /// blocklist and reports): its owners and admins, and its keys with `workspace:admin`,
    /// while working in it. Everyone else gets 403, admins of other workspaces too. The one
    /// place this rule lives.
    pub(crate) fn may_operate(&self) -> Result<WorkspaceId, Error> {
        match &self.workspace {
            Some((OPERATOR_WORKSPACE, grant)) if grant.permits(Permission::Administer) => {
                Ok(WorkspaceId(OPERATOR_WORKSPACE))
            }
            _ => Err(Error::Forbidden {
                needs: "an admin or owner of the operator workspace (the first one), working \
                        in it, or its key with the scope workspace:admin",
            }),
        }
    }

    /// Nothing, if the caller may give `role` to a person ([`Grant::may_grant`]): 403 otherwise.
    pub(crate) fn may_grant(&self, role: Role) -> Result<(), Error> {
        let (_, grant) = self.workspace.as_ref().ok_or(Error::NoWorkspace)?;
        if grant.may_grant(role) {
            return Ok(());
        }
        let needs = match (grant, role) {
            (_, Role::Owner) => "an owner of the workspace to make an owner (API keys cannot)",
            (Grant::Role(_), Role::Admin) => "the role admin or owner to give the role admin",
            (Grant::Role(_), Role::Editor) => {
                "the role editor, admin or owner to give the role editor"
            }
            (Grant::Role(_), Role::Viewer) => "membership of the workspace to give the role viewer",
            (Grant::Scopes(_), Role::Admin) => {
                "the scopes links:read, links:write, stats:read and workspace:admin to give \
                 the role admin (a key may give only a role that can do no more than the key)"
            }
            (Grant::Scopes(_), Role::Editor) => {
                "the scopes links:read, links:write and stats:read to give the role editor \
                 (a key may give only a role that can do no more than the key)"
            }
            (Grant::Scopes(_), Role::Viewer) => {
                "the scopes links:read and stats:read to give the role viewer (a key may give \
                 only a role that can do no more than the key)"
            }
        };
        Err(Error::Forbidden { needs })
    }

    /// The caller's workspace, for anything any member may do (see who else is in it).
    pub(crate) fn member(&self) -> Result<WorkspaceId, Error> {
        self.workspace
            .as_ref()
            .map(|(id, _)| WorkspaceId(*id))
            .ok_or(Error::NoWorkspace)
    }

    /// The workspace's id without any permission, to compare with a header or show.
    pub(crate) fn workspace_id(&self) -> Option<i64> {
        self.workspace.as_ref().map(|(id, _)| *id)
    }

    pub(crate) fn grant(&self) -> Option<&Grant> {
        self.workspace.as_ref().map(|(_, grant)| grant)
    }

    /// The caller's role, if a person in a workspace.
    pub(crate) fn role(&self) -> Option<Role> {
        match self.grant() {
            Some(Grant::Role(role)) => Some(*role),
            _ => None,
        }
    }

    /// The person and their session; a key gets 403 (keys have no password or sessions).
    pub(crate) fn user(&self) -> Result<(i64, &Session), Error> {
        match &self.actor {
            Actor::User { id, session, .. } => Ok((*id, session)),
            Actor::Key { .. } => Err(Error::Forbidden {
                needs: "a person signed in to the dashboard (API keys cannot do this)",
            }),
        }
    }

    pub(crate) fn session(&self) -> Option<&Session> {
        match &self.actor {
            Actor::User { session, .. } => Some(session),
            Actor::Key { .. } => None,
        }
    }

    /// Who the audit log says made a change.
    pub(crate) fn audit_actor(&self) -> crate::audit::ActorRef<'_> {
        match &self.actor {
            Actor::User { id, name, .. } => crate::audit::ActorRef::user(*id, name),
            Actor::Key { id, name } => crate::audit::ActorRef::key(*id, name),
        }
    }
}

/// What a refusal tells the caller it would need.
fn needs(permission: Permission, grant: &Grant) -> &'static str {
    match (grant, permission) {
        (Grant::Scopes(_), Permission::ReadLinks) => "the scope links:read",
        (Grant::Scopes(_), Permission::WriteLinks) => "the scope links:write",
        (Grant::Scopes(_), Permission::ReadStats) => "the scope stats:read",
        (Grant::Scopes(_), Permission::Administer) => "the scope workspace:admin",
        (Grant::Scopes(_), Permission::Own) => {
            "an owner of the workspace (API keys cannot do this)"
        }
        (Grant::Role(_), Permission::ReadLinks | Permission::ReadStats) => {
            "membership of the workspace"
        }
        (Grant::Role(_), Permission::WriteLinks) => "the role editor, admin or owner",
        (Grant::Role(_), Permission::Administer) => "the role admin or owner",
        (Grant::Role(_), Permission::Own) => "the role owner",
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            // Only a route outside `auth::require_caller` could get here: a bug.
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("route without a caller")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[Scope]) -> Caller {
        Caller::new(
            Actor::Key {
                id: 1,
                name: "k".into(),
            },
            Some((7, Grant::Scopes(scopes.to_vec()))),
        )
    }

    #[test]
    fn scopes_allow_what_they_name() {
        let reader = key(&[Scope::LinksRead]);
        assert_eq!(reader.may(Permission::ReadLinks).ok(), Some(WorkspaceId(7)));
        for refused in [
            Permission::WriteLinks,
            Permission::ReadStats,
            Permission::Administer,
            Permission::Own,
        ] {
            assert!(matches!(reader.may(refused), Err(Error::Forbidden { .. })));
        }
        let everything = key(&Scope::ALL);
        assert!(everything.may(Permission::Administer).is_ok());
        assert!(everything.may(Permission::Own).is_err(), "keys never own");
    }

    #[test]
    fn a_grant_gives_only_roles_that_can_do_no_more_than_itself() {
        use Role::*;
        // (grant, the roles it may give)
        let cases: [(Grant, &[Role]); 7] = [
            (Grant::Role(Owner), &[Owner, Admin, Editor, Viewer]),
            (Grant::Role(Admin), &[Admin, Editor, Viewer]),
            (Grant::Role(Editor), &[Editor, Viewer]),
            (Grant::Role(Viewer), &[Viewer]),
            (Grant::Scopes(Scope::ALL.to_vec()), &[Admin, Editor, Viewer]),
            (Grant::Scopes(vec![Scope::WorkspaceAdmin]), &[]),
            (
                Grant::Scopes(vec![Scope::LinksRead, Scope::StatsRead]),
                &[Viewer],
            ),
        ];
        for (grant, allowed) in cases {
            for role in Role::ALL {
                assert_eq!(
                    grant.may_grant(role),
                    allowed.contains(&role),
                    "{grant:?} giving {role:?}"
                );
            }
        }
        let admin_key = key(&[Scope::WorkspaceAdmin]);
        assert!(matches!(
            admin_key.may_grant(Viewer),
            Err(Error::Forbidden { .. })
        ));
        assert!(key(&Scope::ALL).may_grant(Admin).is_ok());
    }

    #[test]
    fn no_workspace_no_access() {
        let lost = Caller::new(
            Actor::Key {
                id: 1,
                name: "k".into(),
            },
            None,
        );
        assert!(matches!(
            lost.may(Permission::ReadLinks),
            Err(Error::NoWorkspace)
        ));
        assert!(matches!(lost.member(), Err(Error::NoWorkspace)));
    }
}
