//! Members and invitations: who may see and change members, the last owner, invitations used
//! once, sign-up through an invitation, and the audit entries of each change.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{As, PUBLIC_URL, TestApp, TestResponse, spawn_app};

fn id(who: &As) -> i64 {
    match who {
        As::Session { user_id, .. } => *user_id,
        other => panic!("not a person: {other:?}"),
    }
}

/// A workspace with one signed-in member of each role.
struct Team {
    workspace: i64,
    owner: As,
    admin: As,
    editor: As,
    viewer: As,
}

async fn team(app: &TestApp, name: &str) -> Team {
    let workspace = app.workspace(name).await;
    Team {
        workspace,
        owner: app
            .user(&format!("{name}-owner"), &[(workspace, "owner")])
            .await,
        admin: app
            .user(&format!("{name}-admin"), &[(workspace, "admin")])
            .await,
        editor: app
            .user(&format!("{name}-editor"), &[(workspace, "editor")])
            .await,
        viewer: app
            .user(&format!("{name}-viewer"), &[(workspace, "viewer")])
            .await,
    }
}

async fn role_of(app: &TestApp, workspace: i64, user: i64) -> Option<String> {
    sqlx::query_scalar(
        "SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
    )
    .bind(workspace)
    .bind(user)
    .fetch_optional(&app.db)
    .await
    .expect("role")
}

/// The audit entries of `workspace` with `action`: (actor name, before, after).
async fn audited(
    app: &TestApp,
    workspace: i64,
    action: &str,
) -> Vec<(String, Option<Value>, Option<Value>)> {
    sqlx::query_as(
        "SELECT actor_name, before, after FROM audit_log
         WHERE workspace_id = $1 AND action = $2 ORDER BY id",
    )
    .bind(workspace)
    .bind(action)
    .fetch_all(&app.db)
    .await
    .expect("audit")
}

async fn invite(app: &TestApp, who: &As, role: &str) -> (i64, String) {
    let response = app
        .call(
            who,
            Method::POST,
            "/api/v1/invitations",
            Some(json!({"role": role})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let body = response.json();
    let url = body["url"].as_str().expect("url");
    let token = url
        .strip_prefix(&format!("{PUBLIC_URL}/admin/invite#"))
        .unwrap_or_else(|| panic!("url {url}"))
        .to_owned();
    (body["invitation"]["id"].as_i64().expect("id"), token)
}

async fn public(app: &TestApp, path: &str, body: Value) -> TestResponse {
    app.call(&As::Nobody, Method::POST, path, Some(body)).await
}

#[tokio::test]
async fn every_route_needs_credentials() {
    let app = spawn_app().await;
    let routes = [
        (Method::GET, "/api/v1/members"),
        (Method::PATCH, "/api/v1/members/1"),
        (Method::DELETE, "/api/v1/members/1"),
        (Method::GET, "/api/v1/invitations"),
        (Method::POST, "/api/v1/invitations"),
        (Method::DELETE, "/api/v1/invitations/1"),
        (Method::POST, "/api/v1/invitations/accept"),
    ];
    for (method, path) in routes {
        let response = app
            .call(
                &As::Nobody,
                method.clone(),
                path,
                Some(json!({"role": "viewer", "token": "x"})),
            )
            .await;
        let (code, _) = response.error(StatusCode::UNAUTHORIZED);
        assert_eq!(code, "unauthorized", "{method} {path}");
    }
    // The token is the credential of these two.
    let lookup = public(&app, "/api/v1/invitations/lookup", json!({"token": "nope"})).await;
    lookup.error(StatusCode::NOT_FOUND);
    let sign_up = public(
        &app,
        "/api/v1/invitations/sign-up",
        json!({"token": "nope", "username": "x", "password": "long enough password"}),
    )
    .await;
    sign_up.error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn who_may_list_members() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let admin_key = app.key(t.workspace, &["workspace:admin"]).await;
    let reader_key = app
        .key(t.workspace, &["links:read", "links:write", "stats:read"])
        .await;
    for who in [&t.owner, &t.admin, &t.editor, &t.viewer, &admin_key] {
        let response = app.call(who, Method::GET, "/api/v1/members", None).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{who:?}: {}",
            response.text()
        );
        let members = response.json();
        let names: Vec<&str> = members
            .as_array()
            .expect("list")
            .iter()
            .map(|m| m["username"].as_str().expect("name"))
            .collect();
        assert_eq!(
            names,
            ["acme-owner", "acme-admin", "acme-editor", "acme-viewer"]
        );
        assert_eq!(members[0]["role"], "owner");
    }
    let (code, _) = app
        .call(&reader_key, Method::GET, "/api/v1/members", None)
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(code, "forbidden");
    // Another workspace's members are not in the list of anyone here.
    let other = team(&app, "other").await;
    let response = app
        .call(&other.owner, Method::GET, "/api/v1/members", None)
        .await;
    assert_eq!(response.json().as_array().expect("list").len(), 4);
    assert!(!response.text().contains("acme"));
}

#[tokio::test]
async fn who_may_change_roles() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let admin_key = app.key(t.workspace, &["workspace:admin"]).await;
    let full_key = app
        .key(
            t.workspace,
            &["links:read", "links:write", "stats:read", "workspace:admin"],
        )
        .await;
    let reader_key = app.key(t.workspace, &["links:read", "links:write"]).await;
    let target = app.user("target", &[(t.workspace, "editor")]).await;
    let path = format!("/api/v1/members/{}", id(&target));
    // (who, new role for an editor, expected status)
    let cases: Vec<(&str, &As, &str, StatusCode)> = vec![
        ("viewer", &t.viewer, "viewer", StatusCode::FORBIDDEN),
        ("editor", &t.editor, "viewer", StatusCode::FORBIDDEN),
        (
            "key without admin",
            &reader_key,
            "viewer",
            StatusCode::FORBIDDEN,
        ),
        (
            "admin makes an owner",
            &t.admin,
            "owner",
            StatusCode::FORBIDDEN,
        ),
        (
            "key makes an owner",
            &full_key,
            "owner",
            StatusCode::FORBIDDEN,
        ),
        // A key with only workspace:admin cannot read links or stats: no role it gives may.
        (
            "workspace:admin key gives viewer",
            &admin_key,
            "viewer",
            StatusCode::FORBIDDEN,
        ),
        (
            "workspace:admin key gives editor",
            &admin_key,
            "editor",
            StatusCode::FORBIDDEN,
        ),
        (
            "workspace:admin key gives admin",
            &admin_key,
            "admin",
            StatusCode::FORBIDDEN,
        ),
        ("admin", &t.admin, "viewer", StatusCode::OK),
        ("full key gives editor", &full_key, "editor", StatusCode::OK),
        ("full key gives viewer", &full_key, "viewer", StatusCode::OK),
        ("full key gives admin", &full_key, "admin", StatusCode::OK),
        ("owner makes an owner", &t.owner, "owner", StatusCode::OK),
        (
            "admin changes an owner",
            &t.admin,
            "viewer",
            StatusCode::FORBIDDEN,
        ),
        (
            "key changes an owner",
            &full_key,
            "viewer",
            StatusCode::FORBIDDEN,
        ),
        ("owner changes an owner", &t.owner, "editor", StatusCode::OK),
    ];
    let mut expected_role = "editor";
    for (case, who, role, status) in cases {
        let response = app
            .call(who, Method::PATCH, &path, Some(json!({"role": role})))
            .await;
        assert_eq!(response.status, status, "{case}: {}", response.text());
        if status == StatusCode::OK {
            expected_role = role;
            assert_eq!(response.json()["role"], role, "{case}");
            assert_eq!(response.json()["username"], "target", "{case}");
        }
        assert_eq!(
            role_of(&app, t.workspace, id(&target)).await.as_deref(),
            Some(expected_role),
            "{case}"
        );
    }
    let entries = audited(&app, t.workspace, "member.role_changed").await;
    assert_eq!(entries.len(), 6);
    let (actor, before, after) = &entries[0];
    assert_eq!(actor, "acme-admin");
    assert_eq!(
        before.as_ref().expect("before"),
        &json!({"user_id": id(&target), "username": "target", "role": "editor"})
    );
    assert_eq!(after.as_ref().expect("after")["role"], "viewer");
    assert_eq!(entries[1].0, "test key");
    // Unknown users, members of another workspace and bad ids are 404.
    let other = team(&app, "other").await;
    for path in [
        format!("/api/v1/members/{}", id(&other.editor)),
        "/api/v1/members/999999".to_owned(),
        "/api/v1/members/abc".to_owned(),
    ] {
        for (method, body) in [
            (Method::PATCH, Some(json!({"role": "viewer"}))),
            (Method::DELETE, None),
        ] {
            let response = app.call(&t.owner, method.clone(), &path, body).await;
            response.error(StatusCode::NOT_FOUND);
        }
    }
    assert_eq!(
        role_of(&app, other.workspace, id(&other.editor))
            .await
            .as_deref(),
        Some("editor")
    );
    // A key of the other workspace cannot reach this one's members either.
    let other_key = app.key(other.workspace, &["workspace:admin"]).await;
    app.call(
        &other_key,
        Method::PATCH,
        &path,
        Some(json!({"role": "viewer"})),
    )
    .await
    .error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_last_owner_stays() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let me = format!("/api/v1/members/{}", id(&t.owner));
    let (code, _) = app
        .call(&t.owner, Method::PATCH, &me, Some(json!({"role": "admin"})))
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(code, "last_owner");
    let (code, _) = app
        .call(&t.owner, Method::DELETE, &me, None)
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(code, "last_owner");
    assert_eq!(
        role_of(&app, t.workspace, id(&t.owner)).await.as_deref(),
        Some("owner")
    );
    // With a second owner, the first may step down.
    let second = app.user("second", &[(t.workspace, "owner")]).await;
    let response = app
        .call(&t.owner, Method::PATCH, &me, Some(json!({"role": "admin"})))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let (code, _) = app
        .call(
            &second,
            Method::DELETE,
            &format!("/api/v1/members/{}", id(&second)),
            None,
        )
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(code, "last_owner");
}

#[tokio::test]
async fn two_owners_demoting_each_other_leave_one() {
    let app = spawn_app().await;
    let workspace = app.workspace("duel").await;
    let a = app.user("a", &[(workspace, "owner")]).await;
    let b = app.user("b", &[(workspace, "owner")]).await;
    for round in 0..5 {
        sqlx::query("UPDATE workspace_members SET role = 'owner' WHERE workspace_id = $1")
            .bind(workspace)
            .execute(&app.db)
            .await
            .expect("reset");
        let a_demotes_b = format!("/api/v1/members/{}", id(&b));
        let b_demotes_a = format!("/api/v1/members/{}", id(&a));
        let body = || Some(json!({"role": "editor"}));
        let (first, second) = if round % 2 == 0 {
            tokio::join!(
                app.call(&a, Method::PATCH, &a_demotes_b, body()),
                app.call(&b, Method::PATCH, &b_demotes_a, body()),
            )
        } else {
            // Removing instead of demoting: the same lock and rule.
            tokio::join!(
                app.call(&a, Method::DELETE, &a_demotes_b, None),
                app.call(&b, Method::DELETE, &b_demotes_a, None),
            )
        };
        let mut statuses = [first.status.as_u16(), second.status.as_u16()];
        statuses.sort_unstable();
        // The loser is refused either as the last owner or (demoted first) as no owner.
        assert!(
            statuses[0] < 300 && [403, 409].contains(&statuses[1]),
            "round {round}: {statuses:?}: {} / {}",
            first.text(),
            second.text()
        );
        let owners: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM workspace_members WHERE workspace_id = $1 AND role = 'owner'",
        )
        .bind(workspace)
        .fetch_one(&app.db)
        .await
        .expect("owners");
        assert_eq!(owners, 1, "round {round}");
        if round % 2 == 1 {
            // Put the removed one back for the next round.
            let removed = if role_of(&app, workspace, id(&a)).await.is_none() {
                &a
            } else {
                &b
            };
            sqlx::query("INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'owner')")
                .bind(workspace)
                .bind(id(removed))
                .execute(&app.db)
                .await
                .expect("back");
        }
    }
}

#[tokio::test]
async fn removing_members_and_leaving() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let admin_key = app.key(t.workspace, &["workspace:admin"]).await;
    let reader_key = app.key(t.workspace, &["links:read"]).await;
    let gone = app.user("gone", &[(t.workspace, "editor")]).await;
    let gone_path = format!("/api/v1/members/{}", id(&gone));
    for who in [&t.viewer, &t.editor, &reader_key] {
        app.call(who, Method::DELETE, &gone_path, None)
            .await
            .error(StatusCode::FORBIDDEN);
    }
    // Admins cannot remove an owner; a key never can.
    let owner_path = format!("/api/v1/members/{}", id(&t.owner));
    for who in [&t.admin, &admin_key] {
        app.call(who, Method::DELETE, &owner_path, None)
            .await
            .error(StatusCode::FORBIDDEN);
    }
    let before = app.call(&gone, Method::GET, "/api/v1/links", None).await;
    assert_eq!(before.status, StatusCode::OK);
    let response = app.call(&t.admin, Method::DELETE, &gone_path, None).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    assert_eq!(role_of(&app, t.workspace, id(&gone)).await, None);
    // Their session stays signed in, with no workspace.
    let (code, _) = app
        .call(&gone, Method::GET, "/api/v1/links", None)
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(code, "no_workspace");
    // A viewer may leave.
    let viewer_path = format!("/api/v1/members/{}", id(&t.viewer));
    let response = app
        .call(&t.viewer, Method::DELETE, &viewer_path, None)
        .await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    // A key with workspace:admin removes an editor.
    let editor_path = format!("/api/v1/members/{}", id(&t.editor));
    let response = app
        .call(&admin_key, Method::DELETE, &editor_path, None)
        .await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    let entries = audited(&app, t.workspace, "member.removed").await;
    let actors: Vec<&str> = entries.iter().map(|(actor, ..)| actor.as_str()).collect();
    assert_eq!(actors, ["acme-admin", "acme-viewer", "test key"]);
    assert_eq!(
        entries[0].1.as_ref().expect("before"),
        &json!({"user_id": id(&gone), "username": "gone", "role": "editor"})
    );
    assert!(entries[0].2.is_none());
}

#[tokio::test]
async fn invitations_who_may_and_what_is_stored() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let admin_key = app.key(t.workspace, &["workspace:admin"]).await;
    let full_key = app
        .key(
            t.workspace,
            &["links:read", "links:write", "stats:read", "workspace:admin"],
        )
        .await;
    let reader_key = app
        .key(t.workspace, &["links:read", "links:write", "stats:read"])
        .await;
    let mut cases: Vec<(&str, &As, &str, StatusCode)> = vec![
        ("viewer", &t.viewer, "viewer", StatusCode::FORBIDDEN),
        ("editor", &t.editor, "viewer", StatusCode::FORBIDDEN),
        (
            "key without admin",
            &reader_key,
            "viewer",
            StatusCode::FORBIDDEN,
        ),
        (
            "admin invites an owner",
            &t.admin,
            "owner",
            StatusCode::FORBIDDEN,
        ),
        ("admin", &t.admin, "editor", StatusCode::CREATED),
        (
            "admin invites an admin",
            &t.admin,
            "admin",
            StatusCode::CREATED,
        ),
        (
            "owner invites an owner",
            &t.owner,
            "owner",
            StatusCode::CREATED,
        ),
    ];
    // Invitations are made by people (whose authority is checked again when one is used),
    // whatever the key's scopes.
    for role in ["viewer", "editor", "admin", "owner"] {
        cases.push((
            "workspace:admin key",
            &admin_key,
            role,
            StatusCode::FORBIDDEN,
        ));
        cases.push((
            "key with every scope",
            &full_key,
            role,
            StatusCode::FORBIDDEN,
        ));
    }
    let mut tokens = Vec::new();
    for (case, who, role, status) in cases {
        let response = app
            .call(
                who,
                Method::POST,
                "/api/v1/invitations",
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(response.status, status, "{case}: {}", response.text());
        if status == StatusCode::CREATED {
            let body = response.json();
            assert_eq!(body["invitation"]["role"], role);
            let url = body["url"].as_str().expect("url");
            let token = url
                .strip_prefix(&format!("{PUBLIC_URL}/admin/invite#"))
                .expect("the token in the fragment");
            assert_eq!(token.len(), 64);
            assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
            tokens.push(token.to_owned());
        }
    }
    // Only the hash is stored; the audit log never has the token.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM workspace_invitations")
        .fetch_all(&app.db)
        .await
        .expect("hashes");
    assert_eq!(stored.len(), 3);
    let log: Vec<String> =
        sqlx::query_scalar("SELECT after::text FROM audit_log WHERE action = 'invitation.created'")
            .fetch_all(&app.db)
            .await
            .expect("log");
    assert_eq!(log.len(), 3);
    for token in &tokens {
        assert!(log.iter().all(|entry| !entry.contains(token.as_str())));
        assert!(
            !stored
                .iter()
                .any(|hash| hash.as_slice() == token.as_bytes())
        );
    }
    // The list: who may read it, and what it shows.
    for who in [&t.viewer, &t.editor, &reader_key] {
        app.call(who, Method::GET, "/api/v1/invitations", None)
            .await
            .error(StatusCode::FORBIDDEN);
    }
    let list = app
        .call(&t.admin, Method::GET, "/api/v1/invitations", None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.json();
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["created_by"], "acme-admin");
    assert_eq!(list[1]["created_by"], "acme-admin");
    assert_eq!(list[1]["role"], "admin");
    assert_eq!(list[2]["created_by"], "acme-owner");
    assert!(
        !list
            .iter()
            .any(|i| i.to_string().contains(tokens[0].as_str()))
    );
    // Another workspace sees none of them, and cannot revoke them.
    let other = team(&app, "other").await;
    let theirs = app
        .call(&other.admin, Method::GET, "/api/v1/invitations", None)
        .await;
    assert_eq!(theirs.json(), json!([]));
    let first_id = list[0]["id"].as_i64().expect("id");
    let other_key = app.key(other.workspace, &["workspace:admin"]).await;
    for who in [&other.owner, &other_key] {
        app.call(
            who,
            Method::DELETE,
            &format!("/api/v1/invitations/{first_id}"),
            None,
        )
        .await
        .error(StatusCode::NOT_FOUND);
    }
    let still = public(
        &app,
        "/api/v1/invitations/lookup",
        json!({"token": tokens[0]}),
    )
    .await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.text());
    assert_eq!(
        still.json(),
        json!({"workspace_name": "acme", "role": "editor", "expires_at": list[0]["expires_at"]})
    );
}

#[tokio::test]
async fn revoking_an_invitation() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let (id, token) = invite(&app, &t.admin, "viewer").await;
    let path = format!("/api/v1/invitations/{id}");
    for who in [&t.editor, &t.viewer] {
        app.call(who, Method::DELETE, &path, None)
            .await
            .error(StatusCode::FORBIDDEN);
    }
    let response = app.call(&t.admin, Method::DELETE, &path, None).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    // Revoked: gone from the list, unusable, and not revoked twice.
    let list = app
        .call(&t.admin, Method::GET, "/api/v1/invitations", None)
        .await;
    assert_eq!(list.json(), json!([]));
    public(&app, "/api/v1/invitations/lookup", json!({"token": token}))
        .await
        .error(StatusCode::NOT_FOUND);
    let joiner = app.user("joiner", &[]).await;
    app.call(
        &joiner,
        Method::POST,
        "/api/v1/invitations/accept",
        Some(json!({"token": token})),
    )
    .await
    .error(StatusCode::NOT_FOUND);
    app.call(&t.admin, Method::DELETE, &path, None)
        .await
        .error(StatusCode::NOT_FOUND);
    app.call(&t.admin, Method::DELETE, "/api/v1/invitations/x", None)
        .await
        .error(StatusCode::NOT_FOUND);
    // A used one cannot be revoked.
    let (used, token) = invite(&app, &t.admin, "viewer").await;
    let accepted = app
        .call(
            &joiner,
            Method::POST,
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());
    app.call(
        &t.admin,
        Method::DELETE,
        &format!("/api/v1/invitations/{used}"),
        None,
    )
    .await
    .error(StatusCode::NOT_FOUND);
    let entries = audited(&app, t.workspace, "invitation.revoked").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "acme-admin");
    assert_eq!(entries[0].1.as_ref().expect("before")["id"], id);
}

#[tokio::test]
async fn accepting_an_invitation() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let home = app.workspace("home").await;
    let joiner = app.user("joiner", &[(home, "owner")]).await;
    let (invitation, token) = invite(&app, &t.admin, "editor").await;
    let preview = public(&app, "/api/v1/invitations/lookup", json!({"token": token})).await;
    assert_eq!(preview.json()["workspace_name"], "acme");
    let response = app
        .call(
            &joiner,
            Method::POST,
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let session = response.json();
    assert_eq!(session["workspace"]["id"], t.workspace);
    assert_eq!(session["workspace"]["role"], "editor");
    assert_eq!(session["workspaces"].as_array().expect("list").len(), 2);
    // The session now works there: the members it lists are acme's.
    let members = app
        .call(&joiner, Method::GET, "/api/v1/members", None)
        .await;
    assert!(members.text().contains("acme-owner"));
    assert_eq!(
        role_of(&app, t.workspace, id(&joiner)).await.as_deref(),
        Some("editor")
    );
    // Used: once only.
    for _ in 0..2 {
        app.call(
            &joiner,
            Method::POST,
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await
        .error(StatusCode::NOT_FOUND);
    }
    public(&app, "/api/v1/invitations/lookup", json!({"token": token}))
        .await
        .error(StatusCode::NOT_FOUND);
    let entries = audited(&app, t.workspace, "member.joined").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "joiner", "the joining person is the actor");
    // With the invitation that let them in, and who made it.
    assert_eq!(
        entries[0].2.as_ref().expect("after"),
        &json!({"user_id": id(&joiner), "username": "joiner", "role": "editor",
                "invitation_id": invitation, "invited_by": "acme-admin"})
    );
    // A member already: 409, and the invitation stays usable by someone else.
    let (_, second) = invite(&app, &t.admin, "viewer").await;
    let (code, _) = app
        .call(
            &t.viewer,
            Method::POST,
            "/api/v1/invitations/accept",
            Some(json!({"token": second})),
        )
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(code, "already_member");
    let still = public(&app, "/api/v1/invitations/lookup", json!({"token": second})).await;
    assert_eq!(still.status, StatusCode::OK);
    // Keys cannot accept.
    let key = app
        .key(
            home,
            &["links:read", "links:write", "stats:read", "workspace:admin"],
        )
        .await;
    app.call(
        &key,
        Method::POST,
        "/api/v1/invitations/accept",
        Some(json!({"token": second})),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    // Expired: refused like an unknown token.
    sqlx::query("UPDATE workspace_invitations SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .expect("expire");
    let late = app.user("late", &[]).await;
    app.call(
        &late,
        Method::POST,
        "/api/v1/invitations/accept",
        Some(json!({"token": second})),
    )
    .await
    .error(StatusCode::NOT_FOUND);
    public(&app, "/api/v1/invitations/lookup", json!({"token": second}))
        .await
        .error(StatusCode::NOT_FOUND);
    let list = app
        .call(&t.admin, Method::GET, "/api/v1/invitations", None)
        .await;
    assert_eq!(list.json(), json!([]), "expired invitations are not listed");
}

#[tokio::test]
async fn an_invitation_is_used_once_under_a_race() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let a = app.user("a", &[]).await;
    let b = app.user("b", &[]).await;
    for round in 0..4 {
        let (_, token) = invite(&app, &t.admin, "viewer").await;
        let body = || Some(json!({"token": token}));
        let (first, second) = if round < 2 {
            let (first, second) = tokio::join!(
                app.call(&a, Method::POST, "/api/v1/invitations/accept", body()),
                app.call(&b, Method::POST, "/api/v1/invitations/accept", body()),
            );
            // Out again for the next round.
            for who in [&a, &b] {
                sqlx::query("DELETE FROM workspace_members WHERE user_id = $1")
                    .bind(id(who))
                    .execute(&app.db)
                    .await
                    .expect("out");
            }
            (first, second)
        } else {
            let sign_up = |name: String| {
                public(
                    &app,
                    "/api/v1/invitations/sign-up",
                    json!({"token": token, "username": name, "password": "long enough password"}),
                )
            };
            tokio::join!(sign_up(format!("x{round}")), sign_up(format!("y{round}")))
        };
        let mut statuses = [first.status.as_u16(), second.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 404],
            "round {round}: {} / {}",
            first.text(),
            second.text()
        );
    }
    // The losing sign-ups left no user behind.
    let users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM admin_users WHERE username ~ '^[xy][23]$'")
            .fetch_one(&app.db)
            .await
            .expect("users");
    assert_eq!(users, 2);
}

#[tokio::test]
async fn signing_up_through_an_invitation() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let (_, token) = invite(&app, &t.admin, "editor").await;
    let shared = &app;
    let sign_up = |username: &str, password: &str, token: &str| {
        let body = json!({"token": token, "username": username, "password": password});
        async move { public(shared, "/api/v1/invitations/sign-up", body).await }
    };
    // Bad fields name the field; nothing is used up.
    let long_name = "n".repeat(65);
    let long_password = "p".repeat(1025);
    for (username, password, field) in [
        ("  ", "long enough password", "username"),
        (long_name.as_str(), "long enough password", "username"),
        ("newbie", "short", "password"),
        ("newbie", long_password.as_str(), "password"),
    ] {
        let (_, got) = sign_up(username, password, &token)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(got.as_deref(), Some(field), "{username:?}");
    }
    // A taken username: 409, and the invitation stays usable.
    let (code, _) = sign_up("acme-viewer", "long enough password", &token)
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(code, "username_taken");
    let response = sign_up("  newbie ", "long enough password", &token).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let cookie = response.header(&header::SET_COOKIE).to_owned();
    assert!(cookie.starts_with("kurz_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    let session = response.json();
    assert_eq!(session["username"], "newbie");
    assert_eq!(session["workspace"]["id"], t.workspace);
    assert_eq!(session["workspace"]["role"], "editor");
    // The cookie works, and so does signing in with the password.
    let newbie = As::Session {
        cookie: cookie.split(';').next().expect("cookie").to_owned(),
        csrf: session["csrf_token"].as_str().expect("csrf").to_owned(),
        user_id: session["user_id"].as_i64().expect("id"),
    };
    let created = app
        .call(
            &newbie,
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let again = app.sign_in_as("newbie", "long enough password").await;
    let members = app.call(&again, Method::GET, "/api/v1/members", None).await;
    assert!(members.text().contains("newbie"));
    // Used: a second sign-up with it is refused and makes no user.
    sign_up("another", "long enough password", &token)
        .await
        .error(StatusCode::NOT_FOUND);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM admin_users WHERE username = 'another')")
            .fetch_one(&app.db)
            .await
            .expect("exists");
    assert!(!exists);
    let entries = audited(&app, t.workspace, "member.joined").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "newbie");
    // A sign-up without any JSON body is refused like any API body.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/invitations/sign-up")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        app.send(request).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[tokio::test]
async fn open_invitations_are_bounded() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    // 99 made in SQL by the admin (their tokens are never used), the 100th through the API.
    sqlx::query(
        "INSERT INTO workspace_invitations (workspace_id, token_hash, role, created_by,
                                           expires_at)
         SELECT $1, sha256(i::text::bytea), 'viewer', $2, now() + interval '1 day'
         FROM generate_series(1, 99) i",
    )
    .bind(t.workspace)
    .bind(id(&t.admin))
    .execute(&app.db)
    .await
    .expect("invitations");
    let (last, _) = invite(&app, &t.admin, "viewer").await;
    let (code, _) = app
        .call(
            &t.admin,
            Method::POST,
            "/api/v1/invitations",
            Some(json!({"role": "viewer"})),
        )
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(code, "too_many_invitations");
    // Revoked or expired ones do not count.
    let revoked = app
        .call(
            &t.admin,
            Method::DELETE,
            &format!("/api/v1/invitations/{last}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    invite(&app, &t.admin, "viewer").await;
    sqlx::query(
        "UPDATE workspace_invitations SET expires_at = now() - interval '1 second' WHERE id < $1",
    )
    .bind(last)
    .execute(&app.db)
    .await
    .expect("expire");
    invite(&app, &t.admin, "viewer").await;
    // Another workspace has its own budget.
    let other = team(&app, "other").await;
    invite(&app, &other.admin, "viewer").await;
}

#[tokio::test]
async fn members_are_bounded() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let (_, token) = invite(&app, &t.admin, "viewer").await;
    // 4 members already; 996 more made in SQL fill the workspace.
    sqlx::query(
        "WITH made AS (
             INSERT INTO admin_users (username, password_hash)
             SELECT 'filler' || i, 'x' FROM generate_series(1, 996) i RETURNING id
         )
         INSERT INTO workspace_members (workspace_id, user_id, role) SELECT $1, id, 'viewer' FROM made",
    )
    .bind(t.workspace)
    .execute(&app.db)
    .await
    .expect("members");
    // No invitation that could never be used is made.
    let (code, _) = app
        .call(
            &t.admin,
            Method::POST,
            "/api/v1/invitations",
            Some(json!({"role": "viewer"})),
        )
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(code, "too_many_members");
    let joiner = app.user("joiner", &[]).await;
    let (code, _) = app
        .call(
            &joiner,
            Method::POST,
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(code, "too_many_members");
    let still = public(&app, "/api/v1/invitations/lookup", json!({"token": token})).await;
    assert_eq!(still.status, StatusCode::OK, "the invitation stays unused");
}

/// Sets a member's role in SQL, past the API (and its revocations), to test what `claim`
/// checks by itself.
async fn set_role_in_sql(app: &TestApp, workspace: i64, user: i64, role: Option<&str>) {
    let query = match role {
        Some(_) => {
            "UPDATE workspace_members SET role = $3 WHERE workspace_id = $1 AND user_id = $2"
        }
        None => "DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
    };
    sqlx::query(query)
        .bind(workspace)
        .bind(user)
        .bind(role)
        .execute(&app.db)
        .await
        .expect("role");
}

#[tokio::test]
async fn an_invitation_needs_its_makers_authority_when_used() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let (_, admin_token) = invite(&app, &t.admin, "admin").await;
    let (_, editor_token) = invite(&app, &t.admin, "editor").await;
    let (_, viewer_token) = invite(&app, &t.admin, "viewer").await;
    let joiner = app.user("joiner", &[]).await;
    let accept = |token: String| {
        let (app, joiner) = (&app, &joiner);
        async move {
            app.call(
                joiner,
                Method::POST,
                "/api/v1/invitations/accept",
                Some(json!({"token": token})),
            )
            .await
        }
    };
    // The maker is now an editor: who may not invite at all.
    set_role_in_sql(&app, t.workspace, id(&t.admin), Some("editor")).await;
    for token in [&admin_token, &editor_token, &viewer_token] {
        public(&app, "/api/v1/invitations/lookup", json!({"token": token}))
            .await
            .error(StatusCode::NOT_FOUND);
    }
    accept(editor_token.clone())
        .await
        .error(StatusCode::NOT_FOUND);
    let (code, _) = public(
        &app,
        "/api/v1/invitations/sign-up",
        json!({"token": admin_token, "username": "newbie", "password": "long enough password"}),
    )
    .await
    .error(StatusCode::NOT_FOUND);
    assert_eq!(code, "invitation_invalid");
    let listed = app
        .call(&t.owner, Method::GET, "/api/v1/invitations", None)
        .await;
    assert_eq!(
        listed.json(),
        json!([]),
        "unusable invitations are not listed"
    );
    // An admin again: the invitations work again (they were refused, not used).
    set_role_in_sql(&app, t.workspace, id(&t.admin), Some("admin")).await;
    let response = accept(editor_token.clone()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(
        role_of(&app, t.workspace, id(&joiner)).await.as_deref(),
        Some("editor")
    );
    // The maker left: nothing they made lets anyone in.
    set_role_in_sql(&app, t.workspace, id(&t.admin), None).await;
    for token in [&admin_token, &viewer_token] {
        public(&app, "/api/v1/invitations/lookup", json!({"token": token}))
            .await
            .error(StatusCode::NOT_FOUND);
    }
    let late = app.user("late", &[]).await;
    app.call(
        &late,
        Method::POST,
        "/api/v1/invitations/accept",
        Some(json!({"token": viewer_token})),
    )
    .await
    .error(StatusCode::NOT_FOUND);
    assert_eq!(role_of(&app, t.workspace, id(&late)).await, None);
}

/// A key `who` makes through the API with `scopes`.
async fn make_key(app: &TestApp, who: &As, scopes: &[&str]) -> As {
    let response = app
        .call(
            who,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "made", "scopes": scopes})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    As::Key(response.json()["key"].as_str().expect("key").to_owned())
}

/// Whether a key still gets in (it may be refused what it lacks, but it is known).
async fn key_works(app: &TestApp, key: &As) -> bool {
    let response = app.call(key, Method::GET, "/api/v1/workspace", None).await;
    response.status == StatusCode::OK
}

async fn usable(app: &TestApp, token: &str) -> bool {
    let response = public(app, "/api/v1/invitations/lookup", json!({"token": token})).await;
    response.status == StatusCode::OK
}

#[tokio::test]
async fn a_removed_members_keys_and_invitations_are_revoked() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let leaver = app.user("leaver", &[(t.workspace, "admin")]).await;
    let mut made = Vec::new();
    for who in [&t.admin, &leaver] {
        let key = make_key(&app, who, &["links:read"]).await;
        let (_, token) = invite(&app, who, "viewer").await;
        made.push((key, token));
    }
    // The owner's own key and invitation stay through all of it.
    let owners_key = make_key(&app, &t.owner, &["links:read"]).await;
    let (_, owners_token) = invite(&app, &t.owner, "viewer").await;
    // Removed by the owner.
    let response = app
        .call(
            &t.owner,
            Method::DELETE,
            &format!("/api/v1/members/{}", id(&t.admin)),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert!(!key_works(&app, &made[0].0).await);
    assert!(!usable(&app, &made[0].1).await);
    assert!(
        key_works(&app, &made[1].0).await,
        "another member's key stays"
    );
    assert!(usable(&app, &made[1].1).await);
    // Leaving.
    let response = app
        .call(
            &leaver,
            Method::DELETE,
            &format!("/api/v1/members/{}", id(&leaver)),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert!(!key_works(&app, &made[1].0).await);
    assert!(!usable(&app, &made[1].1).await);
    assert!(key_works(&app, &owners_key).await);
    assert!(usable(&app, &owners_token).await);
    // Each revocation is in the log, by whoever removed the member.
    let keys = audited(&app, t.workspace, "key.revoked").await;
    let invitations = audited(&app, t.workspace, "invitation.revoked").await;
    for entries in [&keys, &invitations] {
        let actors: Vec<&str> = entries.iter().map(|(actor, ..)| actor.as_str()).collect();
        assert_eq!(actors, ["acme-owner", "leaver"]);
        assert!(
            entries
                .iter()
                .all(|(_, before, after)| before.is_some() && after.is_none())
        );
    }
    assert_eq!(
        keys[0].1.as_ref().expect("before")["created_by"],
        "acme-admin"
    );
    assert_eq!(
        invitations[1].1.as_ref().expect("before")["created_by"],
        "leaver"
    );
}

#[tokio::test]
async fn keys_made_by_keys_go_with_the_person_and_the_key_behind_them() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let all = ["links:read", "workspace:admin"];
    // A chain: the admin's key made a key, which made another.
    let first = make_key(&app, &t.admin, &all).await;
    let second = make_key(&app, &first, &all).await;
    let third = make_key(&app, &second, &["links:read"]).await;
    let keys = app
        .call(&t.owner, Method::GET, "/api/v1/keys", None)
        .await
        .json();
    let makers: Vec<&str> = keys
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["created_by"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(
        makers, ["acme-admin"; 3],
        "made on the admin's authority: {keys}"
    );
    // Revoking the middle key (the list is newest first) revokes what it made, not what
    // made it.
    let second_id = keys[1]["id"].as_i64().expect("id");
    let revoked = app
        .call(
            &t.owner,
            Method::DELETE,
            &format!("/api/v1/keys/{second_id}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let works = [
        key_works(&app, &first).await,
        key_works(&app, &second).await,
        key_works(&app, &third).await,
    ];
    assert_eq!(works, [true, false, false]);
    let entries = audited(&app, t.workspace, "key.revoked").await;
    assert_eq!(entries.len(), 2, "one entry a key: {entries:?}");
    // Again: already revoked, so unknown.
    let again = app
        .call(
            &t.owner,
            Method::DELETE,
            &format!("/api/v1/keys/{second_id}"),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // Removing the admin revokes every key made on their authority, at any depth.
    let other = make_key(&app, &first, &all).await;
    let deeper = make_key(&app, &other, &["links:read"]).await;
    let owners = make_key(&app, &t.owner, &["links:read"]).await;
    let removed = app
        .call(
            &t.owner,
            Method::DELETE,
            &format!("/api/v1/members/{}", id(&t.admin)),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    for key in [&first, &other, &deeper] {
        assert!(!key_works(&app, key).await, "{key:?}");
    }
    assert!(key_works(&app, &owners).await, "the owner's key stays");
}

/// A demotion revokes the person's keys beyond the new role and, with each, the keys it made:
/// what a key made goes with it, whatever revoked it. Before, the keys made stayed live, and
/// no revocation could reach them through their maker any more.
#[tokio::test]
async fn a_demotion_revokes_the_keys_made_by_the_keys_it_revokes() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let maker = make_key(&app, &t.admin, &["links:read", "workspace:admin"]).await;
    let made = make_key(&app, &maker, &["links:read"]).await;
    let kept = make_key(&app, &t.admin, &["links:read"]).await;
    let demoted = app
        .call(
            &t.owner,
            Method::PATCH,
            &format!("/api/v1/members/{}", id(&t.admin)),
            Some(json!({"role": "editor"})),
        )
        .await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.text());
    let works = [
        key_works(&app, &maker).await,
        key_works(&app, &made).await,
        key_works(&app, &kept).await,
    ];
    assert_eq!(works, [false, false, true], "maker, made, an editor's own");
    let entries = audited(&app, t.workspace, "key.revoked").await;
    assert_eq!(entries.len(), 2, "one entry a key: {entries:?}");
}

/// A change queued behind the revocation of its key, or its maker's demotion, is refused: the
/// caller's authority is read again once the workspace is its request's. Before, a key being
/// revoked could still revoke the owner's keys and invitations meanwhile, and an owner being
/// demoted could still rename the workspace.
#[tokio::test]
async fn changes_queued_behind_the_loss_of_their_authority_are_refused() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let owners_key = make_key(&app, &t.owner, &["links:read"]).await;
    let keys = app
        .call(&t.owner, Method::GET, "/api/v1/keys", None)
        .await
        .json();
    let owners_key_id = keys[0]["id"].as_i64().expect("id");
    let (invitation, token) = invite(&app, &t.owner, "viewer").await;
    let admin = format!("/api/v1/members/{}", id(&t.admin));
    let hook = app
        .call(
            &t.owner,
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": "https://hooks.example.com/crm", "events": ["link.created"]})),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.text());
    let hook = format!("/api/v1/webhooks/{}", hook.json()["id"]);
    let rogue_hook = json!({"url": "https://rogue.example.com/", "events": ["link.created"]});
    let cases = [
        (
            Method::DELETE,
            format!("/api/v1/keys/{owners_key_id}"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::DELETE,
            format!("/api/v1/invitations/{invitation}"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        // Where the workspace's data goes: a new endpoint (and below, an endpoint sent
        // elsewhere).
        (
            Method::POST,
            "/api/v1/webhooks".to_owned(),
            Some(rogue_hook.clone()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::PATCH,
            "/api/v1/workspace".to_owned(),
            Some(json!({"name": "taken over"})),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::PATCH,
            hook.clone(),
            Some(json!({"url": "https://rogue.example.com/"})),
            StatusCode::FORBIDDEN,
        ),
        // A new invitation, made after the demotion revoked the ones made before.
        (
            Method::POST,
            "/api/v1/invitations".to_owned(),
            Some(json!({"role": "editor"})),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (method, path, body, refused) in cases {
        // A key of the admin's to be revoked, or the admin to be demoted.
        let (who, loss) = if refused == StatusCode::UNAUTHORIZED {
            let rogue = make_key(&app, &t.admin, &["workspace:admin", "links:read"]).await;
            let keys = app
                .call(&t.owner, Method::GET, "/api/v1/keys", None)
                .await
                .json();
            let rogue_id = keys[0]["id"].as_i64().expect("id");
            let loss = (Method::DELETE, format!("/api/v1/keys/{rogue_id}"), None);
            (rogue, loss)
        } else {
            // An owner again (a case before may have demoted them), to be demoted.
            let promoted = app
                .call(
                    &t.owner,
                    Method::PATCH,
                    &admin,
                    Some(json!({"role": "owner"})),
                )
                .await;
            assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.text());
            let loss = (
                Method::PATCH,
                admin.clone(),
                Some(json!({"role": "editor"})),
            );
            (t.admin.clone(), loss)
        };
        let lock = hold(
            &app,
            &format!(
                "SELECT 1 FROM workspaces WHERE id = {} FOR UPDATE",
                t.workspace
            ),
        )
        .await;
        let lose = app.call(&t.owner, loss.0, &loss.1, loss.2);
        let act = async {
            waiting_on_locks(&app, 1).await;
            app.call(&who, method.clone(), &path, body.clone()).await
        };
        let release = async {
            waiting_on_locks(&app, 2).await;
            drop(lock);
        };
        let (lost, acted, ()) = tokio::join!(lose, act, release);
        assert!(lost.status.is_success(), "{path}: {}", lost.text());
        assert_eq!(acted.status, refused, "{path}: {}", acted.text());
    }
    assert!(key_works(&app, &owners_key).await, "the owner's key stays");
    assert!(usable(&app, &token).await, "the invitation stays");
    let name = app
        .call(&t.owner, Method::GET, "/api/v1/workspace", None)
        .await
        .json();
    assert_eq!(name["name"], "acme");
    let hooks = app
        .call(&t.owner, Method::GET, "/api/v1/webhooks", None)
        .await
        .json();
    let urls: Vec<&str> = hooks
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|hook| hook["url"].as_str().expect("url"))
        .collect();
    assert_eq!(urls, ["https://hooks.example.com/crm"]);
}

#[tokio::test]
async fn a_key_made_by_a_key_may_not_outlive_it() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let at = |days: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let make = |who: &As, expires_at: Option<String>| {
        let body = json!({"name": "made", "scopes": ["links:read", "workspace:admin"], "expires_at": expires_at});
        let (app, who) = (&app, who.clone());
        async move {
            app.call(&who, Method::POST, "/api/v1/keys", Some(body))
                .await
        }
    };
    let maker = make(&t.admin, Some(at(2))).await;
    assert_eq!(maker.status, StatusCode::CREATED, "{}", maker.text());
    let maker = As::Key(maker.json()["key"].as_str().expect("key").to_owned());
    for expires_at in [None, Some(at(3))] {
        let refused = make(&maker, expires_at.clone()).await;
        assert_eq!(
            refused.error(StatusCode::UNPROCESSABLE_ENTITY).1.as_deref(),
            Some("expires_at"),
            "{expires_at:?}"
        );
    }
    assert_eq!(make(&maker, Some(at(1))).await.status, StatusCode::CREATED);
    // A key without an expiry may make keys without one.
    let lasting = make_key(&app, &t.admin, &["links:read", "workspace:admin"]).await;
    assert_eq!(make(&lasting, None).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_lowered_members_keys_and_invitations_beyond_the_new_role_are_revoked() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let second = app.user("second", &[(t.workspace, "owner")]).await;
    let reader = make_key(&app, &second, &["links:read", "stats:read"]).await;
    let writer = make_key(&app, &second, &["links:read", "links:write"]).await;
    let admin = make_key(&app, &second, &["workspace:admin"]).await;
    let mut tokens = Vec::new();
    for role in ["owner", "admin", "editor", "viewer"] {
        tokens.push(invite(&app, &second, role).await.1);
    }
    let lower = |role: &'static str| {
        let (app, owner, path) = (&app, &t.owner, format!("/api/v1/members/{}", id(&second)));
        async move {
            let response = app
                .call(owner, Method::PATCH, &path, Some(json!({"role": role})))
                .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        }
    };
    // An admin: the owner invitation goes; every key stays.
    lower("admin").await;
    let still: Vec<bool> = usable_tokens(&app, &tokens).await;
    assert_eq!(still, [false, true, true, true]);
    for key in [&reader, &writer, &admin] {
        assert!(key_works(&app, key).await);
    }
    // An editor: every invitation (editors invite no one) and the admin key go.
    lower("editor").await;
    assert_eq!(usable_tokens(&app, &tokens).await, [false; 4]);
    assert!(key_works(&app, &reader).await);
    assert!(key_works(&app, &writer).await);
    assert!(!key_works(&app, &admin).await);
    // A viewer: the key that writes links goes.
    lower("viewer").await;
    assert!(key_works(&app, &reader).await);
    assert!(!key_works(&app, &writer).await);
    let keys = audited(&app, t.workspace, "key.revoked").await;
    let revoked: Vec<&Value> = keys
        .iter()
        .map(|(_, before, _)| &before.as_ref().expect("before")["scopes"])
        .collect();
    assert_eq!(
        revoked,
        [
            &json!(["workspace:admin"]),
            &json!(["links:read", "links:write"])
        ]
    );
    let invitations = audited(&app, t.workspace, "invitation.revoked").await;
    let roles: Vec<&Value> = invitations
        .iter()
        .map(|(_, before, _)| &before.as_ref().expect("before")["role"])
        .collect();
    assert_eq!(roles, ["owner", "admin", "editor", "viewer"]);
    assert!(
        keys.iter()
            .chain(&invitations)
            .all(|(actor, ..)| actor == "acme-owner")
    );
}

/// Which of `tokens` can still be used.
async fn usable_tokens(app: &TestApp, tokens: &[String]) -> Vec<bool> {
    let mut usable_now = Vec::new();
    for token in tokens {
        usable_now.push(usable(app, token).await);
    }
    usable_now
}

/// A transaction of its own on the test's database, held open until dropped.
async fn hold(app: &TestApp, statement: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = app.db.begin().await.expect("begin");
    sqlx::query(statement)
        .execute(&mut *tx)
        .await
        .expect("lock");
    tx
}

#[tokio::test]
async fn accepting_while_making_a_key_in_the_workspace_does_not_deadlock() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let (_, token) = invite(&app, &t.owner, "viewer").await;
    // Both wait on the workspace; the key's creation first.
    let lock = hold(
        &app,
        &format!(
            "SELECT 1 FROM workspaces WHERE id = {} FOR UPDATE",
            t.workspace
        ),
    )
    .await;
    let make_key = app.call(
        &t.admin,
        Method::POST,
        "/api/v1/keys",
        Some(json!({"name": "race", "scopes": ["links:read"]})),
    );
    let accept = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        app.call(
            &t.admin,
            Method::POST,
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await
    };
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        drop(lock);
    };
    let (made, accepted, ()) = tokio::join!(make_key, accept, release);
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    // The admin is a member already: a clear 409, not a deadlock's 500.
    assert_eq!(accepted.error(StatusCode::CONFLICT).0, "already_member");
}

#[tokio::test]
async fn a_change_of_members_does_not_hold_up_new_links() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let writer = app.key(t.workspace, &["links:write"]).await;
    // The role's change locks the workspace, then waits on this before it can write.
    let lock = hold(&app, "LOCK TABLE workspace_members IN EXCLUSIVE MODE").await;
    let path = format!("/api/v1/members/{}", id(&t.viewer));
    let change = app.call(
        &t.owner,
        Method::PATCH,
        &path,
        Some(json!({"role": "editor"})),
    );
    let create = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // A hold-up would last as long as the lock: 30 s only tells it from a slow machine.
        let created = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            app.call(
                &writer,
                Method::POST,
                "/api/v1/links",
                Some(json!({"destination": "https://example.com/"})),
            ),
        )
        .await
        .expect("a link is made while the members change");
        drop(lock);
        created
    };
    let (changed, created) = tokio::join!(change, create);
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
}

/// Waits until `count` statements wait on a lock (requests queued behind [`hold`]).
async fn waiting_on_locks(app: &TestApp, count: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting = crate::support::lock_waiters(&app.db, "%").await;
        if waiting >= count {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting} of {count} waiting"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A key made with a key while that key is being revoked does not outlive it: the creation
/// waiting for the workspace either commits first (and is revoked with its maker) or finds
/// its maker revoked (401). Before, the revocation did not wait: keys queued behind it were
/// made after it, and stayed live.
#[tokio::test]
async fn a_key_queued_while_its_maker_is_revoked_does_not_outlive_it() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let made = app
        .call(
            &t.admin,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "maker", "scopes": ["links:read", "workspace:admin"]})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let made = made.json();
    let maker = As::Key(made["key"].as_str().expect("secret").to_owned());
    let maker_id = made["id"].as_i64().expect("id");
    let lock = hold(
        &app,
        &format!(
            "SELECT 1 FROM workspaces WHERE id = {} FOR UPDATE",
            t.workspace
        ),
    )
    .await;
    let make = app.call(
        &maker,
        Method::POST,
        "/api/v1/keys",
        Some(json!({"name": "queued", "scopes": ["links:read"]})),
    );
    let revoke = async {
        waiting_on_locks(&app, 1).await;
        app.call(
            &t.owner,
            Method::DELETE,
            &format!("/api/v1/keys/{maker_id}"),
            None,
        )
        .await
    };
    let release = async {
        waiting_on_locks(&app, 1).await;
        // The revocation waits for the workspace too (or, before, was done by now).
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        drop(lock);
    };
    let (queued, revoked, ()) = tokio::join!(make, revoke, release);
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    assert!(
        matches!(
            queued.status,
            StatusCode::CREATED | StatusCode::UNAUTHORIZED
        ),
        "{} {}",
        queued.status,
        queued.text()
    );
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE made_by_key = $1 AND revoked_at IS NULL",
    )
    .bind(maker_id)
    .fetch_one(&app.db)
    .await
    .expect("keys");
    assert_eq!(live, 0, "a key made by the revoked key is live");
}

/// An admin's request queued behind their demotion acts as what they are now: the key it
/// would make with `workspace:admin` is refused. Before, it was made on the old role after
/// the demotion had revoked the admin's keys, and stayed live.
#[tokio::test]
async fn a_request_queued_behind_a_demotion_acts_with_the_new_role() {
    let app = spawn_app().await;
    let t = team(&app, "acme").await;
    let As::Session {
        user_id: admin_id, ..
    } = &t.admin
    else {
        panic!("a person");
    };
    let lock = hold(
        &app,
        &format!(
            "SELECT 1 FROM workspaces WHERE id = {} FOR UPDATE",
            t.workspace
        ),
    )
    .await;
    // The demotion waits for the workspace first, the admin's request behind it.
    let member = format!("/api/v1/members/{admin_id}");
    let demote = app.call(
        &t.owner,
        Method::PATCH,
        &member,
        Some(json!({"role": "editor"})),
    );
    let make = async {
        waiting_on_locks(&app, 1).await;
        app.call(
            &t.admin,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "late", "scopes": ["workspace:admin"]})),
        )
        .await
    };
    let release = async {
        waiting_on_locks(&app, 2).await;
        drop(lock);
    };
    let (made, demoted, ()) = tokio::join!(make, demote, release);
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.text());
    assert_eq!(made.status, StatusCode::FORBIDDEN, "{}", made.text());
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys
         WHERE created_by = $1 AND revoked_at IS NULL AND 'workspace:admin' = ANY(scopes)",
    )
    .bind(admin_id)
    .fetch_one(&app.db)
    .await
    .expect("keys");
    assert_eq!(live, 0, "an editor holds a workspace:admin key");
}
