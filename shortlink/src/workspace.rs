//! Workspaces, who may do what in them, and the bodies of their API routes.
//!
//! Every link, key and statistic belongs to one workspace. People are members with a
//! [`Role`]; API keys carry [`Scope`]s. Both come down to [`Permission`]s, which is what a
//! route asks for: one table below decides what each role and scope allows.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What a request may need to be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read and list links, their QR codes.
    ReadLinks,
    /// Create, edit and delete links.
    WriteLinks,
    /// Read statistics and export clicks.
    ReadStats,
    /// Manage API keys, members and invitations; read the audit log.
    Administer,
    /// Rename the workspace; make, change and remove owners.
    Own,
}

/// A member's role in a workspace, from the most to the least allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Editor,
    Viewer,
}

impl Role {
    pub const ALL: [Self; 4] = [Self::Owner, Self::Admin, Self::Editor, Self::Viewer];

    /// Viewers read links and stats; editors also change links; admins also manage keys and
    /// members; owners also manage the workspace and other owners.
    pub fn permits(self, permission: Permission) -> bool {
        match permission {
            Permission::ReadLinks | Permission::ReadStats => true,
            Permission::WriteLinks => self <= Self::Editor,
            Permission::Administer => self <= Self::Admin,
            Permission::Own => self == Self::Owner,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

/// What an API key may do. A key never has [`Permission::Own`]: a workspace is managed by
/// people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    #[serde(rename = "links:read")]
    LinksRead,
    #[serde(rename = "links:write")]
    LinksWrite,
    #[serde(rename = "stats:read")]
    StatsRead,
    #[serde(rename = "workspace:admin")]
    WorkspaceAdmin,
}

impl Scope {
    pub const ALL: [Self; 4] = [
        Self::LinksRead,
        Self::LinksWrite,
        Self::StatsRead,
        Self::WorkspaceAdmin,
    ];

    pub fn permission(self) -> Permission {
        match self {
            Self::LinksRead => Permission::ReadLinks,
            Self::LinksWrite => Permission::WriteLinks,
            Self::StatsRead => Permission::ReadStats,
            Self::WorkspaceAdmin => Permission::Administer,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinksRead => "links:read",
            Self::LinksWrite => "links:write",
            Self::StatsRead => "stats:read",
            Self::WorkspaceAdmin => "workspace:admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == text)
    }
}

/// A workspace as its members see it, with the caller's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workspace {
    pub id: i64,
    pub name: String,
    /// The caller's role; absent for an API key (which has scopes instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `POST /api/v1/workspaces` and `PATCH /api/v1/workspace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkspaceName {
    pub name: String,
}

/// The signed-in person, as `GET /api/v1/session` and sign-in answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    pub user_id: i64,
    pub username: String,
    /// To send in `X-CSRF-Token` with every request that changes something.
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The workspace this session works in (absent when the person belongs to none).
    #[serde(default)]
    pub workspace: Option<Workspace>,
    /// Every workspace the person belongs to, by name.
    pub workspaces: Vec<Workspace>,
}

/// `PUT /api/v1/session/workspace`: work in another of one's workspaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SwitchWorkspace {
    pub workspace_id: i64,
}

/// A member of the caller's workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
}

/// `PATCH /api/v1/members/{user_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: Role,
}

/// An invitation not yet used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invitation {
    pub id: i64,
    pub role: Role,
    /// Who made it, if that user still exists.
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `POST /api/v1/invitations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    pub role: Role,
}

/// The answer to `POST /api/v1/invitations`: the only time the link exists outside the
/// person who copies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedInvitation {
    pub invitation: Invitation,
    /// The dashboard address that accepts it (with the token).
    pub url: String,
}

/// What an invitation's token opens, before it is used (`POST /api/v1/invitations/lookup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvitationPreview {
    pub workspace_name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `POST /api/v1/invitations/lookup` and `/accept` (signed in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InvitationToken {
    pub token: String,
}

/// `POST /api/v1/invitations/sign-up`: a new user joins through an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    pub token: String,
    pub username: String,
    pub password: String,
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    /// Who made it, if a person did and still exists.
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// To the minute.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// `POST /api/v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    #[serde(default, with = "crate::timestamp::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// The answer to `POST /api/v1/keys`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The secret, to send as `Authorization: Bearer <key>`.
    pub key: String,
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    /// `user` or `key`.
    pub kind: String,
    pub id: i64,
    /// The username or key name at the time of the change.
    pub name: String,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: Actor,
    /// `link.created` (one per link, a bulk create's too), `link.updated`, `link.deleted`,
    /// `key.created`, `key.revoked`, `member.joined`, `member.role_changed`, `member.removed`,
    /// `invitation.created`, `invitation.revoked`, `workspace.created`, `workspace.renamed`,
    /// `workspace.rate_limits_changed` (by the operator), `webhook.created`,
    /// `webhook.updated`, `webhook.deleted`, `webhook.secret_rotated`, `webhook.disabled`
    /// (by kurz, when deliveries keep failing or the receiver answers 410),
    /// and in the operator's workspace `abuse.rule_added`, `abuse.rule_removed`,
    /// `abuse.report_resolved`, `abuse.takedown_lifted`.
    pub action: String,
    /// What was changed: `link`, `key`, `member`, `invitation`, `workspace`, `webhook`,
    /// `blocklist_rule`, `abuse_report`, and its id.
    pub target_kind: String,
    pub target_id: i64,
    /// The fields before the change (absent for a creation; for a link's entry, also for a
    /// caller who may not read links).
    pub before: Option<serde_json::Value>,
    /// The fields after the change (absent for a deletion; for a link's entry, also for a
    /// caller who may not read links).
    pub after: Option<serde_json::Value>,
}

/// `GET /api/v1/audit`: the filters and the page. Empty values count as absent (a form sends
/// its empty fields); the origin checks the values and names the parameter at fault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// `user:<id>` or `key:<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// An action, e.g. `link.updated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A link's id: the entries about that link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// From a previous page's `next_cursor`: the id of its last entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// One page of `GET /api/v1/audit`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// One of the caller's sessions (`GET /api/v1/me/sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionEntry {
    pub id: i64,
    /// The browser that signed in, as it said (shortened).
    pub user_agent: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// To the minute.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The session this request came with.
    pub current: bool,
}

/// `PUT /api/v1/me/password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_role_may_do() {
        use Permission::*;
        let table = [
            (Role::Owner, [true, true, true, true, true]),
            (Role::Admin, [true, true, true, true, false]),
            (Role::Editor, [true, true, true, false, false]),
            (Role::Viewer, [true, false, true, false, false]),
        ];
        for (role, allowed) in table {
            for (permission, allowed) in [ReadLinks, WriteLinks, ReadStats, Administer, Own]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(role.permits(permission), allowed, "{role:?} {permission:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            let json = serde_json::to_string(&role).expect("serialises");
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            let json = serde_json::to_string(&scope).expect("serialises");
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Scope::parse("links:*"), None);
        let err = serde_json::from_str::<CreateApiKey>(r#"{"name":"x","scopes":["links:*"]}"#)
            .expect_err("unknown scope");
        assert!(err.to_string().contains("links:read"), "{err}");
    }
}
