//! Workspaces are walls: every route of the API, called with the credentials of workspace A
//! on the resources of workspace B, answers 404 (as if they did not exist) or leaves them
//! out of its lists; and one table says what each role and each key scope may do.
//!
//! A new route belongs in both tables below.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{As, TestApp, random_hex, spawn_app};

/// Workspace B with one of everything: a link with clicks, a member, an invitation, a key,
/// a webhook endpoint with a delivery, audit entries.
struct Other {
    code: String,
    link_id: i64,
    member: i64,
    invitation: i64,
    key: i64,
    /// The id of B's owner's session.
    session: i64,
    webhook: i64,
    /// A delivery of `webhook`.
    delivery: i64,
}

/// A webhook endpoint the test receiver never hears from (tests allow any address).
fn webhook_body() -> Value {
    json!({"url": "https://hooks.example.com/kurz", "events": ["link.created"]})
}

/// A finished delivery of `endpoint` (a test event's: reading a link's or a click's needs
/// `links:read` or `stats:read` too, tested in `webhooks.rs`), written as the delivery engine
/// writes one; its id.
async fn delivery_of(app: &TestApp, endpoint: i64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload, state,
                                         attempts, delivered_at)
         VALUES ('msg_' || md5(random()::text), $1, 'webhook.test',
                 '{\"type\": \"webhook.test\", \"data\": {}}', 'delivered', 1, now())
         RETURNING id",
    )
    .bind(endpoint)
    .fetch_one(&app.db)
    .await
    .expect("delivery")
}

async fn other_workspace(app: &TestApp) -> Other {
    let b = app.workspace("B").await;
    let owner = app.user("b-owner", &[(b, "owner")]).await;
    let member = app.user("b-member", &[(b, "editor")]).await;
    let As::Session {
        user_id: member, ..
    } = member
    else {
        unreachable!("a session")
    };
    let created = app
        .call(
            &owner,
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/b", "code": "b-link"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let link_id = created.json()["id"].as_i64().expect("id");
    let invitation = app
        .call(
            &owner,
            Method::POST,
            "/api/v1/invitations",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(
        invitation.status,
        StatusCode::CREATED,
        "{:?}",
        invitation.body
    );
    let invitation = invitation.json()["invitation"]["id"]
        .as_i64()
        .expect("invitation id");
    let key = app
        .call(
            &owner,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "b key", "scopes": ["links:read"]})),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED);
    let key = key.json()["id"].as_i64().expect("key id");
    let webhook = app
        .call(
            &owner,
            Method::POST,
            "/api/v1/webhooks",
            Some(webhook_body()),
        )
        .await;
    assert_eq!(webhook.status, StatusCode::CREATED, "{}", webhook.text());
    let webhook = webhook.json()["id"].as_i64().expect("webhook id");
    let delivery = delivery_of(app, webhook).await;
    let mut event = shortlink::edge::ClickEvent {
        id: "b-click".to_owned(),
        link_id,
        code: shortlink::ShortCode::parse("b-link").expect("code"),
        at: time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
        country: Some("DE".to_owned()),
        referrer: None,
        // A person's browser (no user agent at all counts as a bot).
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36"
                .to_owned(),
        ),
        qr: false,
        head: false,
        source: shortlink::edge::ClickSource::Edge,
        visitor: None,
        variant: None,
    };
    app.state
        .store_clicks(std::slice::from_ref(&event))
        .await
        .expect("store");
    event.id = "b-click-2".to_owned();
    app.state.store_clicks(&[event]).await.expect("store");
    app.state.count_clicks().await.expect("count");
    Other {
        code: "b-link".to_owned(),
        link_id,
        member,
        invitation,
        key,
        session: sqlx::query_scalar(
            "SELECT s.id FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id
             WHERE u.username = 'b-owner'",
        )
        .fetch_one(&app.db)
        .await
        .expect("B's session"),
        webhook,
        delivery,
    }
}

#[tokio::test]
async fn workspace_a_never_reaches_workspace_b() {
    let app = spawn_app().await;
    let b = other_workspace(&app).await;
    // Workspace A (the default one) has a link of its own, and two kinds of callers.
    app.create(json!({"destination": "https://example.com/a", "code": "a-link"}))
        .await;
    let a_key = As::Key(app.api_key.clone());
    let a_owner = app.user("a-owner", &[(1, "owner")]).await;
    let code = &b.code;
    let by_id = [
        (Method::GET, format!("/api/v1/links/{code}"), None),
        (
            Method::PATCH,
            format!("/api/v1/links/{code}"),
            Some(json!({"destination": "https://evil.example/"})),
        ),
        (Method::DELETE, format!("/api/v1/links/{code}"), None),
        (Method::GET, format!("/api/v1/links/{code}/stats"), None),
        (
            Method::GET,
            format!("/api/v1/links/{code}/clicks.csv"),
            None,
        ),
        (Method::GET, format!("/api/v1/links/{code}/qr.svg"), None),
        (Method::GET, format!("/api/v1/links/{code}/qr.png"), None),
        (
            Method::PATCH,
            format!("/api/v1/members/{}", b.member),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/members/{}", b.member),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/invitations/{}", b.invitation),
            None,
        ),
        (Method::DELETE, format!("/api/v1/keys/{}", b.key), None),
        (
            Method::DELETE,
            format!("/api/v1/me/sessions/{}", b.session),
            None,
        ),
        (Method::GET, format!("/api/v1/webhooks/{}", b.webhook), None),
        (
            Method::PATCH,
            format!("/api/v1/webhooks/{}", b.webhook),
            Some(json!({"url": "https://evil.example/hook"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/webhooks/{}", b.webhook),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{}/rotate-secret", b.webhook),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{}/test", b.webhook),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{}/deliveries", b.webhook),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{}/deliveries/{}", b.webhook, b.delivery),
            None,
        ),
        (
            Method::POST,
            format!(
                "/api/v1/webhooks/{}/deliveries/{}/redeliver",
                b.webhook, b.delivery
            ),
            None,
        ),
    ];
    for who in [&a_key, &a_owner] {
        for (method, path, body) in &by_id {
            // Keys have no sessions (403 for them, tested in profile.rs).
            if path.contains("/me/") && matches!(who, As::Key(_)) {
                continue;
            }
            let response = app.call(who, method.clone(), path, body.clone()).await;
            assert_eq!(
                response.status,
                StatusCode::NOT_FOUND,
                "{method} {path} as {who:?}: {}",
                String::from_utf8_lossy(&response.body)
            );
        }
        // Lists and searches leave B out.
        let listed = |path: &'static str, field: &'static str| {
            let who = who.clone();
            let app = &app;
            async move {
                let response = app.call(&who, Method::GET, path, None).await;
                assert_eq!(response.status, StatusCode::OK, "{path}");
                let body = response.json();
                let items = if field.is_empty() {
                    body
                } else {
                    body[field].clone()
                };
                items.as_array().expect("a list").clone()
            }
        };
        let links = listed("/api/v1/links?q=link", "links").await;
        assert_eq!(codes(&links), ["a-link"]);
        let members = listed("/api/v1/members", "").await;
        assert!(
            members
                .iter()
                .all(|m| m["username"] != "b-member" && m["username"] != "b-owner"),
            "{members:?}"
        );
        let invitations = listed("/api/v1/invitations", "").await;
        assert!(invitations.iter().all(|i| i["id"] != b.invitation));
        let keys = listed("/api/v1/keys", "").await;
        assert!(keys.iter().all(|k| k["id"] != b.key));
        let webhooks = listed("/api/v1/webhooks", "").await;
        assert!(
            webhooks.iter().all(|w| w["id"] != b.webhook),
            "{webhooks:?}"
        );
        let export = app
            .call(who, Method::GET, "/api/v1/links/export", None)
            .await;
        assert_eq!(export.status, StatusCode::OK);
        let exported: Vec<Value> = export
            .text()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        assert_eq!(codes(&exported)[0], "a-link");
        assert!(
            codes(&exported).iter().all(|c| c.starts_with("a-")),
            "{exported:?}"
        );
        // A bulk create makes its links in the caller's workspace (B's list is checked below).
        let bulk = app
            .call(
                who,
                Method::POST,
                "/api/v1/links/bulk",
                Some(json!({"links": [{"destination": "https://example.com/bulk",
                                       "code": format!("a-bulk-{}", random_hex())}]})),
            )
            .await;
        assert_eq!(bulk.json()["created"], 1, "{}", bulk.text());
        let audit = app
            .call(
                who,
                Method::GET,
                &format!("/api/v1/audit?link={}", b.link_id),
                None,
            )
            .await;
        assert_eq!(audit.status, StatusCode::OK);
        assert_eq!(audit.json()["entries"], json!([]));
        let all_audit = listed("/api/v1/audit", "entries").await;
        assert!(
            all_audit.iter().all(|e| e["actor"]["name"] != "b-owner"
                && !(e["target_kind"] == "link" && e["target_id"] == b.link_id)),
            "{all_audit:?}"
        );
        // The workspace's statistics count only its own links' clicks.
        let stats = app
            .call(who, Method::GET, "/api/v1/stats?interval=day", None)
            .await;
        assert_eq!(stats.status, StatusCode::OK);
        assert_eq!(stats.json()["totals"]["clicks"], 0);
        let workspace = app.call(who, Method::GET, "/api/v1/workspace", None).await;
        assert_eq!(workspace.json()["id"], 1);
        let workspaces = listed("/api/v1/workspaces", "").await;
        assert_eq!(workspaces.len(), 1, "{workspaces:?}");
        assert_eq!(workspaces[0]["id"], 1);
    }
    // A person cannot switch into a workspace they are not a member of.
    let switch = app
        .call(
            &a_owner,
            Method::PUT,
            "/api/v1/session/workspace",
            Some(json!({"workspace_id": 2})),
        )
        .await;
    assert_eq!(switch.status, StatusCode::NOT_FOUND);
    // B's session still works.
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_sessions WHERE id = $1")
        .bind(b.session)
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(sessions, 1);
    // B's link is untouched, and B sees its clicks.
    let b_key = app.key(2, &["links:read", "stats:read"]).await;
    let link = app
        .call(&b_key, Method::GET, &format!("/api/v1/links/{code}"), None)
        .await;
    assert_eq!(link.json()["destination"], "https://example.com/b");
    let links = app.call(&b_key, Method::GET, "/api/v1/links", None).await;
    let links = links.json()["links"].as_array().expect("links").clone();
    assert_eq!(codes(&links), ["b-link"]);
    // A's deletes freed nothing: the code still routes to B's link.
    let route: Vec<i64> =
        sqlx::query_scalar("SELECT workspace_id FROM link_codes WHERE code = 'b-link'")
            .fetch_all(&app.db)
            .await
            .expect("route");
    assert_eq!(route, [2]);
    let stats = app
        .call(&b_key, Method::GET, "/api/v1/stats?interval=day", None)
        .await;
    assert_eq!(stats.json()["totals"]["clicks"], 2);
}

fn codes(links: &[Value]) -> Vec<String> {
    links
        .iter()
        .map(|l| l["code"].as_str().expect("code").to_owned())
        .collect()
}

/// One request of the role table, made fresh for each caller (the resources it acts on are
/// made first with the workspace's full key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    ListLinks,
    GetLink,
    Qr,
    CreateLink,
    UpdateLink,
    DeleteLink,
    LinkStats,
    ExportClicks,
    WorkspaceStats,
    GetWorkspace,
    ListMembers,
    ChangeRole,
    RemoveMember,
    ListInvitations,
    Invite,
    RevokeInvitation,
    ListKeys,
    CreateKey,
    RevokeKey,
    ReadAudit,
    RenameWorkspace,
    BulkCreate,
    ExportLinks,
    ListWebhooks,
    CreateWebhook,
    GetWebhook,
    UpdateWebhook,
    DeleteWebhook,
    RotateWebhookSecret,
    TestWebhook,
    ListDeliveries,
    GetDelivery,
    Redeliver,
}

impl Action {
    const ALL: [Self; 33] = [
        Self::ListLinks,
        Self::GetLink,
        Self::Qr,
        Self::CreateLink,
        Self::UpdateLink,
        Self::DeleteLink,
        Self::LinkStats,
        Self::ExportClicks,
        Self::WorkspaceStats,
        Self::GetWorkspace,
        Self::ListMembers,
        Self::ChangeRole,
        Self::RemoveMember,
        Self::ListInvitations,
        Self::Invite,
        Self::RevokeInvitation,
        Self::ListKeys,
        Self::CreateKey,
        Self::RevokeKey,
        Self::ReadAudit,
        Self::RenameWorkspace,
        Self::BulkCreate,
        Self::ExportLinks,
        Self::ListWebhooks,
        Self::CreateWebhook,
        Self::GetWebhook,
        Self::UpdateWebhook,
        Self::DeleteWebhook,
        Self::RotateWebhookSecret,
        Self::TestWebhook,
        Self::ListDeliveries,
        Self::GetDelivery,
        Self::Redeliver,
    ];

    /// Which roles may do it (owner, admin, editor, viewer).
    fn roles(self) -> [bool; 4] {
        use Action::*;
        match self {
            ListLinks | GetLink | Qr | LinkStats | ExportClicks | WorkspaceStats | GetWorkspace
            | ListMembers | ExportLinks => [true, true, true, true],
            CreateLink | UpdateLink | DeleteLink | BulkCreate => [true, true, true, false],
            ChangeRole | RemoveMember | ListInvitations | Invite | RevokeInvitation | ListKeys
            | CreateKey | RevokeKey | ReadAudit => [true, true, false, false],
            // An endpoint decides where the workspace's data goes: administrators only.
            ListWebhooks | CreateWebhook | GetWebhook | UpdateWebhook | DeleteWebhook
            | RotateWebhookSecret | TestWebhook | ListDeliveries | GetDelivery | Redeliver => {
                [true, true, false, false]
            }
            RenameWorkspace => [true, false, false, false],
        }
    }

    /// The one scope that allows it to a key, or None if no key may.
    fn scope(self) -> Option<&'static str> {
        use Action::*;
        match self {
            ListLinks | GetLink | Qr | ExportLinks => Some("links:read"),
            CreateLink | UpdateLink | DeleteLink | BulkCreate => Some("links:write"),
            LinkStats | ExportClicks | WorkspaceStats => Some("stats:read"),
            ListMembers | RemoveMember | ListInvitations | RevokeInvitation | ListKeys
            | CreateKey | RevokeKey | ReadAudit => Some("workspace:admin"),
            ListWebhooks | GetWebhook | UpdateWebhook | DeleteWebhook | RotateWebhookSecret
            | TestWebhook | ListDeliveries | GetDelivery | Redeliver => Some("workspace:admin"),
            // Its events take what they carry too (`links:read` for `link.created`): no scope
            // alone may (`webhooks.rs` tests the combinations).
            CreateWebhook => None,
            // Any key may ask which workspace it is in.
            GetWorkspace => None,
            // Invitations are made by people; giving a role takes every permission of it
            // (workspace:admin and the role's scopes: `members.rs` tests the combinations).
            Invite | ChangeRole => None,
            RenameWorkspace => None,
        }
    }

    /// Makes what the action works on, and returns its request.
    async fn request(self, app: &TestApp, n: usize) -> (Method, String, Option<Value>) {
        let full = As::Key(app.api_key.clone());
        let code = format!("t{n}");
        let needs_link = matches!(
            self,
            Self::GetLink
                | Self::Qr
                | Self::UpdateLink
                | Self::DeleteLink
                | Self::LinkStats
                | Self::ExportClicks
        );
        if needs_link {
            app.create(json!({"destination": "https://example.com/t", "code": code}))
                .await;
        }
        let post = |path: &str, body: Value| {
            let (app, full, path) = (app, full.clone(), path.to_owned());
            async move {
                let response = app.call(&full, Method::POST, &path, Some(body)).await;
                assert_eq!(response.status, StatusCode::CREATED, "{path}");
                response.json()
            }
        };
        match self {
            Self::ListLinks => (Method::GET, "/api/v1/links".into(), None),
            Self::GetLink => (Method::GET, format!("/api/v1/links/{code}"), None),
            Self::Qr => (Method::GET, format!("/api/v1/links/{code}/qr.svg"), None),
            Self::CreateLink => (
                Method::POST,
                "/api/v1/links".into(),
                Some(json!({"destination": "https://example.com/new", "code": code})),
            ),
            Self::UpdateLink => (
                Method::PATCH,
                format!("/api/v1/links/{code}"),
                Some(json!({"destination": "https://example.com/changed"})),
            ),
            Self::DeleteLink => (Method::DELETE, format!("/api/v1/links/{code}"), None),
            Self::LinkStats => (Method::GET, format!("/api/v1/links/{code}/stats"), None),
            Self::ExportClicks => (
                Method::GET,
                format!("/api/v1/links/{code}/clicks.csv"),
                None,
            ),
            Self::WorkspaceStats => (Method::GET, "/api/v1/stats".into(), None),
            Self::GetWorkspace => (Method::GET, "/api/v1/workspace".into(), None),
            Self::ListMembers => (Method::GET, "/api/v1/members".into(), None),
            Self::ChangeRole | Self::RemoveMember => {
                let As::Session { user_id, .. } =
                    app.user(&format!("target{n}"), &[(1, "editor")]).await
                else {
                    unreachable!("a session")
                };
                match self {
                    Self::ChangeRole => (
                        Method::PATCH,
                        format!("/api/v1/members/{user_id}"),
                        Some(json!({"role": "viewer"})),
                    ),
                    _ => (Method::DELETE, format!("/api/v1/members/{user_id}"), None),
                }
            }
            Self::ListInvitations => (Method::GET, "/api/v1/invitations".into(), None),
            Self::Invite => (
                Method::POST,
                "/api/v1/invitations".into(),
                Some(json!({"role": "editor"})),
            ),
            Self::RevokeInvitation => {
                // Made by a person: keys make no invitations.
                let inviter = app.user(&format!("inviter{n}"), &[(1, "owner")]).await;
                let created = app
                    .call(
                        &inviter,
                        Method::POST,
                        "/api/v1/invitations",
                        Some(json!({"role": "viewer"})),
                    )
                    .await;
                assert_eq!(created.status, StatusCode::CREATED);
                let id = &created.json()["invitation"]["id"];
                (Method::DELETE, format!("/api/v1/invitations/{id}"), None)
            }
            Self::ListKeys => (Method::GET, "/api/v1/keys".into(), None),
            Self::CreateKey => (
                Method::POST,
                "/api/v1/keys".into(),
                // The one scope a workspace:admin key has (a key grants only its own).
                Some(json!({"name": "made", "scopes": ["workspace:admin"]})),
            ),
            Self::RevokeKey => {
                let created = post(
                    "/api/v1/keys",
                    json!({"name": "doomed", "scopes": ["links:read"]}),
                )
                .await;
                (
                    Method::DELETE,
                    format!("/api/v1/keys/{}", created["id"]),
                    None,
                )
            }
            Self::ReadAudit => (Method::GET, "/api/v1/audit".into(), None),
            Self::RenameWorkspace => (
                Method::PATCH,
                "/api/v1/workspace".into(),
                Some(json!({"name": "Renamed"})),
            ),
            Self::BulkCreate => (
                Method::POST,
                "/api/v1/links/bulk".into(),
                Some(json!({"links": [{"destination": "https://example.com/bulk", "code": code}]})),
            ),
            Self::ExportLinks => (Method::GET, "/api/v1/links/export".into(), None),
            Self::ListWebhooks => (Method::GET, "/api/v1/webhooks".into(), None),
            Self::CreateWebhook => (
                Method::POST,
                "/api/v1/webhooks".into(),
                Some(webhook_body()),
            ),
            Self::DeleteWebhook => {
                let created = post("/api/v1/webhooks", webhook_body()).await;
                (
                    Method::DELETE,
                    format!("/api/v1/webhooks/{}", created["id"]),
                    None,
                )
            }
            Self::GetWebhook
            | Self::UpdateWebhook
            | Self::RotateWebhookSecret
            | Self::TestWebhook
            | Self::ListDeliveries
            | Self::GetDelivery
            | Self::Redeliver => {
                // One endpoint for all of them: a workspace has at most 20.
                let endpoint = sqlx::query_scalar(
                    "SELECT id FROM webhook_endpoints WHERE workspace_id = 1 ORDER BY id LIMIT 1",
                )
                .fetch_optional(&app.db)
                .await
                .expect("an endpoint");
                let endpoint: i64 = match endpoint {
                    Some(id) => id,
                    None => post("/api/v1/webhooks", webhook_body()).await["id"]
                        .as_i64()
                        .expect("id"),
                };
                let one = format!("/api/v1/webhooks/{endpoint}");
                match self {
                    Self::GetWebhook => (Method::GET, one, None),
                    Self::UpdateWebhook => (
                        Method::PATCH,
                        one,
                        Some(json!({"description": format!("d{n}")})),
                    ),
                    Self::RotateWebhookSecret => {
                        (Method::POST, format!("{one}/rotate-secret"), None)
                    }
                    Self::TestWebhook => (Method::POST, format!("{one}/test"), None),
                    Self::ListDeliveries => (Method::GET, format!("{one}/deliveries"), None),
                    Self::GetDelivery | Self::Redeliver => {
                        let delivery = delivery_of(app, endpoint).await;
                        let path = format!("{one}/deliveries/{delivery}");
                        match self {
                            Self::GetDelivery => (Method::GET, path, None),
                            _ => (Method::POST, format!("{path}/redeliver"), None),
                        }
                    }
                    _ => unreachable!("{self:?} is not a webhook action"),
                }
            }
        }
    }
}

/// Calls `action` as `who` and checks the answer: 2xx when allowed, 403 `forbidden` when not.
async fn check(app: &TestApp, who: &As, label: &str, action: Action, n: usize, allowed: bool) {
    let (method, path, body) = action.request(app, n).await;
    let response = app.call(who, method.clone(), &path, body).await;
    if allowed {
        assert!(
            response.status.is_success(),
            "{label} may {action:?} ({method} {path}): {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    } else {
        let (code, _) = response.error(StatusCode::FORBIDDEN);
        assert_eq!(code, "forbidden", "{label} {action:?}");
    }
}

#[tokio::test]
async fn each_role_may_do_what_the_table_says() {
    let app = spawn_app().await;
    let roles = ["owner", "admin", "editor", "viewer"];
    let mut n = 0;
    for (i, role) in roles.into_iter().enumerate() {
        let who = app.user(&format!("as-{role}"), &[(1, role)]).await;
        for action in Action::ALL {
            n += 1;
            check(&app, &who, role, action, n, action.roles()[i]).await;
        }
    }
}

#[tokio::test]
async fn each_key_scope_may_do_what_the_table_says() {
    let app = spawn_app().await;
    let mut n = 0;
    for scope in ["links:read", "links:write", "stats:read", "workspace:admin"] {
        let who = app.key(1, &[scope]).await;
        for action in Action::ALL {
            n += 1;
            let allowed = match action.scope() {
                Some(needed) => needed == scope,
                None => action == Action::GetWorkspace,
            };
            check(&app, &who, scope, action, n, allowed).await;
        }
    }
}

#[tokio::test]
async fn no_credentials_no_access() {
    let app = spawn_app().await;
    for (n, action) in Action::ALL.into_iter().enumerate() {
        let (method, path, body) = action.request(&app, n).await;
        let response = app.call(&As::Nobody, method.clone(), &path, body).await;
        let (code, _) = response.error(StatusCode::UNAUTHORIZED);
        assert_eq!(code, "unauthorized", "{method} {path}");
    }
}
