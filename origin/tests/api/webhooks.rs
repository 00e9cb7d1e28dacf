//! The webhook API: who may manage endpoints (admins, owners and `workspace:admin` keys),
//! workspaces as walls (another's endpoint or delivery is a 404), the refusals naming their
//! field, the secret shown once and rotated, the cap on endpoints under a burst, re-enabling,
//! and the delivery log (pages, filter, attempts, test event, redelivery).

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{As, TestApp, TestResponse, app_with, config, new_database, spawn_app};

const URL: &str = "https://hooks.example.com/kurz";

fn body() -> Value {
    json!({"url": URL, "events": ["link.created", "link.deleted"], "description": "CRM"})
}

fn admin_key(app: &TestApp) -> As {
    As::Key(app.api_key.clone())
}

/// Creates an endpoint as `who`; the answer's JSON (with its secret).
async fn create(app: &TestApp, who: &As) -> Value {
    let response = app
        .call(who, Method::POST, "/api/v1/webhooks", Some(body()))
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    response.json()
}

/// `PATCH path` as `who` with `body`.
async fn patch(app: &TestApp, who: &As, path: &str, body: Value) -> TestResponse {
    app.call(who, Method::PATCH, path, Some(body)).await
}

fn id(value: &Value) -> i64 {
    value["id"].as_i64().expect("an id")
}

/// A delivery of `endpoint` written as the delivery engine writes one; its id.
async fn delivery(app: &TestApp, endpoint: i64, state: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload, state,
                                         attempts, delivered_at)
         VALUES ('msg_' || md5(random()::text), $1, 'link.created',
                 '{\"type\": \"link.created\", \"data\": {}}', $2,
                 CASE WHEN $2 = 'pending' THEN 0 ELSE 1 END,
                 CASE WHEN $2 = 'delivered' THEN now() END)
         RETURNING id",
    )
    .bind(endpoint)
    .bind(state)
    .fetch_one(&app.db)
    .await
    .expect("delivery")
}

/// Every route, with the endpoint and delivery ids it names, and a body where it takes one.
fn routes(endpoint: i64, delivery: i64) -> Vec<(Method, String, Option<Value>)> {
    let one = format!("/api/v1/webhooks/{endpoint}");
    vec![
        (Method::GET, "/api/v1/webhooks".to_owned(), None),
        (Method::POST, "/api/v1/webhooks".to_owned(), Some(body())),
        (Method::GET, one.clone(), None),
        (
            Method::PATCH,
            one.clone(),
            Some(json!({"description": "x"})),
        ),
        (Method::POST, format!("{one}/rotate-secret"), None),
        (Method::POST, format!("{one}/test"), None),
        (Method::GET, format!("{one}/deliveries"), None),
        (Method::GET, format!("{one}/deliveries/{delivery}"), None),
        (
            Method::POST,
            format!("{one}/deliveries/{delivery}/redeliver"),
            None,
        ),
        (Method::DELETE, one, None),
    ]
}

#[tokio::test]
async fn every_route_needs_credentials() {
    let app = spawn_app().await;
    let endpoint = id(&create(&app, &admin_key(&app)).await);
    let delivery = delivery(&app, endpoint, "failed").await;
    for (method, path, body) in routes(endpoint, delivery) {
        let response = app.call(&As::Nobody, method.clone(), &path, body).await;
        assert_eq!(
            response.error(StatusCode::UNAUTHORIZED).0,
            "unauthorized",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn owners_admins_and_admin_keys_only() {
    let app = spawn_app().await;
    let endpoint = id(&create(&app, &admin_key(&app)).await);
    let delivery = delivery(&app, endpoint, "failed").await;
    let refused = [
        app.user("ed", &[(1, "editor")]).await,
        app.user("vic", &[(1, "viewer")]).await,
        app.key(1, &["links:read", "links:write", "stats:read"])
            .await,
    ];
    for who in &refused {
        for (method, path, body) in routes(endpoint, delivery) {
            let response = app.call(who, method.clone(), &path, body).await;
            assert_eq!(
                response.error(StatusCode::FORBIDDEN).0,
                "forbidden",
                "{who:?} {method} {path}"
            );
        }
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(count, 1, "refusals created nothing");

    let allowed = [
        app.user("olga", &[(1, "owner")]).await,
        app.user("ann", &[(1, "admin")]).await,
        // Its endpoints' messages are links: it must read them too (below).
        app.key(1, &["workspace:admin", "links:read"]).await,
    ];
    for who in &allowed {
        // Each route in turn, on an endpoint of its own; the last deletes it.
        let endpoint = id(&create(&app, who).await);
        let delivery = delivery_of(&app, endpoint).await;
        for (method, path, body) in routes(endpoint, delivery) {
            let response = app.call(who, method.clone(), &path, body).await;
            assert!(
                response.status.is_success(),
                "{who:?} {method} {path}: {} {}",
                response.status,
                response.text()
            );
        }
    }
}

/// An endpoint's link messages are the links (destination, rules, note): a key with
/// `workspace:admin` alone (which `/links` and the export refuse) may not make an endpoint
/// that receives them, point one elsewhere, nor read or send again a link's delivery; it sees
/// who changed which link in the audit log, not the link. With `links:read` too it may, as
/// owners and admins may. Before, such a key read every link of the workspace that way.
#[tokio::test]
async fn link_messages_reach_only_those_who_may_read_links() {
    let app = spawn_app().await;
    let admin_only = app.key(1, &["workspace:admin"]).await;
    let with_links = app.key(1, &["workspace:admin", "links:read"]).await;
    for events in [
        json!(["link.created"]),
        json!(["link.updated"]),
        json!(["link.deleted"]),
        json!(["link.limit_reached"]),
    ] {
        let body = json!({"url": URL, "events": events});
        let refused = app
            .call(&admin_only, Method::POST, "/api/v1/webhooks", Some(body))
            .await;
        assert_eq!(
            refused.error(StatusCode::FORBIDDEN).0,
            "forbidden",
            "{events}"
        );
    }
    let endpoint = id(&create(&app, &with_links).await);
    let one = format!("/api/v1/webhooks/{endpoint}");
    let made = delivery(&app, endpoint, "failed").await;
    let refusals = [
        (
            Method::PATCH,
            one.clone(),
            Some(json!({"url": "https://elsewhere.example.com/"})),
        ),
        (
            Method::PATCH,
            one.clone(),
            Some(json!({"events": ["link.updated"]})),
        ),
        (Method::GET, format!("{one}/deliveries/{made}"), None),
        (
            Method::POST,
            format!("{one}/deliveries/{made}/redeliver"),
            None,
        ),
    ];
    for (method, path, body) in refusals {
        let response = app.call(&admin_only, method.clone(), &path, body).await;
        assert_eq!(
            response.error(StatusCode::FORBIDDEN).0,
            "forbidden",
            "{method} {path}"
        );
    }
    // Nor by a key that reads clicks, not links, in two steps: subscribed to clicks only, the
    // endpoint still has its link messages queued, and a new URL would take them.
    let clicks_reader = app.key(1, &["workspace:admin", "stats:read"]).await;
    let queued = delivery(&app, endpoint, "pending").await;
    let to_clicks = patch(
        &app,
        &clicks_reader,
        &one,
        json!({"events": ["link.clicked"]}),
    )
    .await;
    assert_eq!(to_clicks.status, StatusCode::OK, "{}", to_clicks.text());
    let moved = patch(
        &app,
        &clicks_reader,
        &one,
        json!({"url": "https://elsewhere.example.com/"}),
    )
    .await;
    assert_eq!(moved.error(StatusCode::FORBIDDEN).0, "forbidden");
    sqlx::query("DELETE FROM webhook_deliveries WHERE id = $1")
        .bind(queued)
        .execute(&app.db)
        .await
        .expect("delivered");
    let moved = patch(
        &app,
        &clicks_reader,
        &one,
        json!({"url": "https://elsewhere.example.com/"}),
    )
    .await;
    assert_eq!(
        moved.status,
        StatusCode::OK,
        "nothing of links queued: {}",
        moved.text()
    );

    // What carries no link is still the admin key's: the list, the log's lines, a test event.
    for path in ["/api/v1/webhooks".to_owned(), format!("{one}/deliveries")] {
        let response = app.call(&admin_only, Method::GET, &path, None).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{path}: {}",
            response.text()
        );
    }
    let tested = app
        .call(&admin_only, Method::POST, &format!("{one}/test"), None)
        .await;
    assert!(tested.status.is_success(), "{}", tested.text());
    let read = app
        .call(
            &with_links,
            Method::GET,
            &format!("{one}/deliveries/{made}"),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());

    // The audit log: the link's entry, with its contents for those who may read links.
    app.create(json!({"destination": "https://secret.example.com/plan", "code": "plan"}))
        .await;
    let link_entry = |who: As| {
        let app = &app;
        async move {
            let response = app
                .call(&who, Method::GET, "/api/v1/audit?action=link.created", None)
                .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.text());
            response.json()["entries"][0].clone()
        }
    };
    let hidden = link_entry(admin_only).await;
    assert_eq!(hidden["target_kind"], "link");
    assert!(hidden.get("after").is_none_or(Value::is_null), "{hidden}");
    assert!(
        !hidden.to_string().contains("secret.example.com"),
        "{hidden}"
    );
    let shown = link_entry(with_links).await;
    assert_eq!(
        shown["after"]["destination"],
        "https://secret.example.com/plan"
    );
}

/// Clicks are statistics: a key with `workspace:admin` alone (which `/stats` and the click
/// export refuse) may not make an endpoint that receives them, subscribe one to them or send
/// one's elsewhere, nor read a click's delivery; with `stats:read` too it may, as owners and
/// admins may. Before, such a key read every click of the workspace in a delivery's body.
#[tokio::test]
async fn clicks_reach_only_those_who_may_read_stats() {
    let app = spawn_app().await;
    let admin_only = app.key(1, &["workspace:admin"]).await;
    let with_stats = app.key(1, &["workspace:admin", "stats:read"]).await;
    let clicks = json!({"url": URL, "events": ["link.clicked"]});
    let refused = app
        .call(
            &admin_only,
            Method::POST,
            "/api/v1/webhooks",
            Some(clicks.clone()),
        )
        .await;
    assert_eq!(refused.error(StatusCode::FORBIDDEN).0, "forbidden");
    let mut made = Vec::new();
    for who in [
        &with_stats,
        &app.user("olga", &[(1, "owner")]).await,
        &app.user("ann", &[(1, "admin")]).await,
    ] {
        let response = app
            .call(who, Method::POST, "/api/v1/webhooks", Some(clicks.clone()))
            .await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{who:?} {}",
            response.text()
        );
        made.push(id(&response.json()));
    }
    let one = format!("/api/v1/webhooks/{}", made[0]);
    let clicked: i64 = sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload)
         VALUES ('msg_clicked', $1, 'link.clicked',
                 '{\"type\": \"link.clicked\", \"data\": {\"country\": \"DE\"}}')
         RETURNING id",
    )
    .bind(made[0])
    .fetch_one(&app.db)
    .await
    .expect("delivery");
    let with_links = app.key(1, &["workspace:admin", "links:read"]).await;
    let plain = id(&create(&app, &with_links).await);
    for (path, body) in [
        (
            one.clone(),
            Some(json!({"url": "https://elsewhere.example.com/"})),
        ),
        // Elsewhere, and off the clicks in the same change: the queued clicks would go there.
        (
            one.clone(),
            Some(json!({"url": "https://elsewhere.example.com/", "events": ["link.created"]})),
        ),
        (
            one.clone(),
            Some(json!({"events": ["link.clicked", "link.created"]})),
        ),
        (
            format!("/api/v1/webhooks/{plain}"),
            Some(json!({"events": ["link.clicked"]})),
        ),
        (format!("{one}/deliveries/{clicked}"), None),
    ] {
        let method = if body.is_some() {
            Method::PATCH
        } else {
            Method::GET
        };
        let response = app.call(&admin_only, method, &path, body.clone()).await;
        assert_eq!(
            response.error(StatusCode::FORBIDDEN).0,
            "forbidden",
            "{path} {body:?}"
        );
    }
    // Nor is a click's message sent again by it.
    let redeliver = format!("{one}/deliveries/{clicked}/redeliver");
    let refused = app.call(&admin_only, Method::POST, &redeliver, None).await;
    assert_eq!(refused.error(StatusCode::FORBIDDEN).0, "forbidden");
    let again = app.call(&with_stats, Method::POST, &redeliver, None).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text());
    let kept = app.call(&with_stats, Method::GET, &one, None).await.json();
    assert_eq!(
        (&kept["url"], &kept["events"]),
        (&json!(URL), &json!(["link.clicked"]))
    );
    // The rest of a clicks endpoint is the admin key's, as before.
    let described = patch(&app, &admin_only, &one, json!({"description": "x"})).await;
    assert_eq!(described.status, StatusCode::OK, "{}", described.text());
    let moved = patch(
        &app,
        &with_stats,
        &one,
        json!({"url": "https://elsewhere.example.com/"}),
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    let read = app
        .call(
            &with_stats,
            Method::GET,
            &format!("{one}/deliveries/{clicked}"),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    assert_eq!(read.json()["payload"]["data"]["country"], "DE");
}

/// A delivery of `endpoint` that may be redelivered (the endpoint is on).
async fn delivery_of(app: &TestApp, endpoint: i64) -> i64 {
    delivery(app, endpoint, "delivered").await
}

#[tokio::test]
async fn another_workspace_finds_nothing() {
    let app = spawn_app().await;
    let ours = create(&app, &admin_key(&app)).await;
    let endpoint = id(&ours);
    let delivery = delivery(&app, endpoint, "failed").await;

    let b = app.workspace("B").await;
    let strangers = [
        app.user("b-owner", &[(b, "owner")]).await,
        app.key(b, &["workspace:admin"]).await,
    ];
    let theirs = create(&app, &strangers[0]).await;
    let their_delivery = delivery_of(&app, id(&theirs)).await;
    for who in &strangers {
        for (method, path, body) in routes(endpoint, delivery) {
            if path == "/api/v1/webhooks" {
                continue;
            }
            let response = app.call(who, method.clone(), &path, body).await;
            assert_eq!(
                response.error(StatusCode::NOT_FOUND).0,
                "not_found",
                "{who:?} {method} {path}"
            );
        }
        let listed = app.call(who, Method::GET, "/api/v1/webhooks", None).await;
        let listed: Vec<i64> = listed
            .json()
            .as_array()
            .expect("a list")
            .iter()
            .map(id)
            .collect();
        assert_eq!(listed, [id(&theirs)], "{who:?}");
    }

    // Our delivery under their endpoint, and theirs under ours, are 404 as well.
    let b_owner = &strangers[0];
    let mixed = [
        (
            b_owner,
            format!("/api/v1/webhooks/{}/deliveries/{delivery}", id(&theirs)),
        ),
        (
            b_owner,
            format!(
                "/api/v1/webhooks/{}/deliveries/{delivery}/redeliver",
                id(&theirs)
            ),
        ),
    ];
    for (who, path) in mixed {
        let method = if path.ends_with("redeliver") {
            Method::POST
        } else {
            Method::GET
        };
        let response = app.call(who, method, &path, None).await;
        assert_eq!(
            response.error(StatusCode::NOT_FOUND).0,
            "not_found",
            "{path}"
        );
    }
    let ours_with_theirs = app
        .call(
            &admin_key(&app),
            Method::POST,
            &format!("/api/v1/webhooks/{endpoint}/deliveries/{their_delivery}/redeliver"),
            None,
        )
        .await;
    assert_eq!(ours_with_theirs.error(StatusCode::NOT_FOUND).0, "not_found");
    let state: String = sqlx::query_scalar("SELECT state FROM webhook_deliveries WHERE id = $1")
        .bind(their_delivery)
        .fetch_one(&app.db)
        .await
        .expect("state");
    assert_eq!(state, "delivered", "a foreign redeliver changed nothing");

    // Malformed ids name nothing either.
    for path in [
        "/api/v1/webhooks/abc".to_owned(),
        format!("/api/v1/webhooks/{endpoint}/deliveries/x"),
    ] {
        let response = app.call(&admin_key(&app), Method::GET, &path, None).await;
        assert_eq!(
            response.error(StatusCode::NOT_FOUND).0,
            "not_found",
            "{path}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let key = admin_key(&app);
    let long = "x".repeat(501);
    let cases = [
        (
            json!({"url": "not a url", "events": ["link.created"]}),
            "url",
        ),
        (
            json!({"url": "ftp://h.example/", "events": ["link.created"]}),
            "url",
        ),
        (
            json!({"url": "https://u:p@h.example/", "events": ["link.created"]}),
            "url",
        ),
        (
            json!({"url": "https://h.example/#x", "events": ["link.created"]}),
            "url",
        ),
        // This deployment's own host (the tests' public URL), in another spelling.
        (
            json!({"url": "https://KURZ.test./hook", "events": ["link.created"]}),
            "url",
        ),
        (
            json!({"url": URL, "events": ["link.exploded"]}),
            "events[0]",
        ),
        (json!({"url": URL, "events": []}), "events"),
        (
            json!({"url": URL, "events": ["link.created", "link.created"]}),
            "events",
        ),
        (json!({"url": URL, "events": ["webhook.test"]}), "events"),
        (
            json!({"url": URL, "events": ["link.created"], "description": long}),
            "description",
        ),
        (
            json!({"url": URL, "events": ["link.created"], "secret": "mine"}),
            "secret",
        ),
        (json!({"events": ["link.created"]}), "url"),
    ];
    for (body, field) in cases {
        let response = app
            .call(&key, Method::POST, "/api/v1/webhooks", Some(body.clone()))
            .await;
        let (code, named) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code, "invalid_input", "{body}");
        assert_eq!(named.as_deref(), Some(field), "{body}");
    }

    let endpoint = id(&create(&app, &key).await);
    let path = format!("/api/v1/webhooks/{endpoint}");
    let cases = [
        (json!({"url": "https://kurz.test/x"}), Some("url")),
        (json!({"events": []}), Some("events")),
        (json!({"enabled": "yes"}), Some("enabled")),
        (json!({"enabeld": true}), Some("enabeld")),
        (json!({}), None),
    ];
    for (body, field) in cases {
        let response = app
            .call(&key, Method::PATCH, &path, Some(body.clone()))
            .await;
        let (code, named) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code, "invalid_input", "{body}");
        assert_eq!(named.as_deref(), field, "{body}");
    }
    let deliveries = format!("{path}/deliveries");
    for (query, field) in [
        ("?state=lost", "state"),
        ("?cursor=abc", "cursor"),
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?colour=red", "colour"),
    ] {
        let response = app
            .call(&key, Method::GET, &format!("{deliveries}{query}"), None)
            .await;
        let (_, named) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(named.as_deref(), Some(field), "{query}");
    }
}

#[tokio::test]
async fn without_private_networks_only_public_https_urls() {
    let mut config = config(&new_database().await);
    config.webhooks.allow_private = false;
    let app = app_with(&config).await;
    for url in [
        "http://hooks.example.com/",
        "https://127.0.0.1/",
        "https://10.1.2.3:8443/in",
        "https://[::1]/",
        "https://[::ffff:192.168.0.1]/",
        "https://localhost/",
        "https://api.localhost/",
    ] {
        let response = app
            .call(
                &admin_key(&app),
                Method::POST,
                "/api/v1/webhooks",
                Some(json!({"url": url, "events": ["link.created"]})),
            )
            .await;
        let (_, field) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(field.as_deref(), Some("url"), "{url}");
    }
    create(&app, &admin_key(&app)).await;
    // With private networks allowed (the other tests' apps), they are taken; but not the
    // origin's own bind address (127.0.0.1), on any port.
    let app = spawn_app().await;
    for url in [
        "http://localhost:9/in",
        "http://10.0.0.5/",
        "https://[::1]/",
    ] {
        let response = app
            .call(
                &admin_key(&app),
                Method::POST,
                "/api/v1/webhooks",
                Some(json!({"url": url, "events": ["link.created"]})),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{url}: {}",
            response.text()
        );
    }
    let own = app
        .call(
            &admin_key(&app),
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/in", "events": ["link.created"]})),
        )
        .await;
    let (_, field) = own.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field.as_deref(), Some("url"));
}

#[tokio::test]
async fn the_secret_is_shown_once_and_rotated() {
    let app = spawn_app().await;
    let key = admin_key(&app);
    let created = create(&app, &key).await;
    let endpoint = id(&created);
    let secret = created["secret"].as_str().expect("the secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(created["url"], URL);
    assert_eq!(created["events"], json!(["link.created", "link.deleted"]));
    assert_eq!(created["enabled"], true);
    let stored: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints WHERE id = $1")
        .bind(endpoint)
        .fetch_one(&app.db)
        .await
        .expect("secret");
    assert_eq!(stored, secret);

    // Shown nowhere else: not by reads, changes, nor in the audit log.
    let path = format!("/api/v1/webhooks/{endpoint}");
    for (method, path, body) in [
        (Method::GET, "/api/v1/webhooks".to_owned(), None),
        (Method::GET, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"description": "new"})),
        ),
    ] {
        let response = app.call(&key, method.clone(), &path, body).await;
        assert_eq!(response.status, StatusCode::OK, "{method} {path}");
        assert!(!response.text().contains("secret"), "{method} {path}");
        assert!(!response.text().contains(&secret), "{method} {path}");
    }

    let rotated = app
        .call(&key, Method::POST, &format!("{path}/rotate-secret"), None)
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let new_secret = rotated.json()["secret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let stored: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints WHERE id = $1")
        .bind(endpoint)
        .fetch_one(&app.db)
        .await
        .expect("secret");
    assert_eq!(stored, new_secret);

    let deleted = app.call(&key, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.call(&key, Method::GET, &path, None).await;
    assert_eq!(gone.error(StatusCode::NOT_FOUND).0, "not_found");

    let entries: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, coalesce(before::text, '') || coalesce(after::text, '')
         FROM audit_log WHERE target_kind = 'webhook' AND target_id = $1 ORDER BY id",
    )
    .bind(endpoint)
    .fetch_all(&app.db)
    .await
    .expect("audit");
    let actions: Vec<&str> = entries.iter().map(|(action, _)| action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "webhook.created",
            "webhook.updated",
            "webhook.secret_rotated",
            "webhook.deleted"
        ]
    );
    for (action, fields) in &entries {
        assert!(!fields.contains("whsec_"), "{action}: {fields}");
    }
}

#[tokio::test]
async fn at_most_20_endpoints_even_in_a_burst() {
    let app = crate::support::spawn_app_for_a_burst().await;
    let key = admin_key(&app);
    let burst = (0..30).map(|_| app.call(&key, Method::POST, "/api/v1/webhooks", Some(body())));
    let answers = futures_util::future::join_all(burst).await;
    let created = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::CREATED)
        .count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|answer| answer.status != StatusCode::CREATED)
        .map(|answer| answer.error(StatusCode::CONFLICT).0)
        .collect();
    assert_eq!(created, 20);
    assert_eq!(refused, vec!["too_many_webhooks"; 10]);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(stored, 20);
    let listed = app.call(&key, Method::GET, "/api/v1/webhooks", None).await;
    assert_eq!(listed.json().as_array().map(Vec::len), Some(20));

    // Another workspace has its own 20.
    let b = app.workspace("B").await;
    create(&app, &app.key(b, &["workspace:admin", "links:read"]).await).await;
}

#[tokio::test]
async fn enabling_again_forgets_why_it_was_switched_off() {
    let app = spawn_app().await;
    let key = admin_key(&app);
    let endpoint = id(&create(&app, &key).await);
    sqlx::query(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'the receiver answered 410',
             disabled_at = now(), failing_since = now() - interval '1 day'
         WHERE id = $1",
    )
    .bind(endpoint)
    .execute(&app.db)
    .await
    .expect("switched off");
    let path = format!("/api/v1/webhooks/{endpoint}");
    let shown = app.call(&key, Method::GET, &path, None).await.json();
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["disabled_reason"], "the receiver answered 410");
    assert!(shown["failing_since"].is_string() && shown["disabled_at"].is_string());

    // Nothing is sent to it while it is off, not even on request.
    let test = app
        .call(&key, Method::POST, &format!("{path}/test"), None)
        .await;
    assert_eq!(test.error(StatusCode::CONFLICT).0, "webhook_disabled");

    let on = app
        .call(&key, Method::PATCH, &path, Some(json!({"enabled": true})))
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text());
    let on = on.json();
    assert_eq!(on["enabled"], true);
    for field in ["disabled_reason", "disabled_at", "failing_since"] {
        assert!(on[field].is_null(), "{field}: {on}");
    }

    // A person switching it off leaves no reason, only when.
    let off = patch(
        &app,
        &key,
        &path,
        json!({"enabled": false, "events": ["link.clicked"], "url": "https://other.example/in"}),
    )
    .await
    .json();
    assert_eq!(off["enabled"], false);
    assert!(off["disabled_reason"].is_null() && off["disabled_at"].is_string());
    assert_eq!(off["events"], json!(["link.clicked"]));
    assert_eq!(off["url"], "https://other.example/in");
    assert_eq!(off["description"], "CRM", "fields not sent stay");

    // Switching off what kurz already switched off keeps kurz's reason.
    sqlx::query("UPDATE webhook_endpoints SET disabled_reason = 'failing for 24 h' WHERE id = $1")
        .bind(endpoint)
        .execute(&app.db)
        .await
        .expect("reason");
    let still = app
        .call(&key, Method::PATCH, &path, Some(json!({"enabled": false})))
        .await
        .json();
    assert_eq!(still["disabled_reason"], "failing for 24 h");
}

#[tokio::test]
async fn the_delivery_log_pages_newest_first() {
    let app = spawn_app().await;
    let key = admin_key(&app);
    let endpoint = id(&create(&app, &key).await);
    let other = id(&create(&app, &key).await);
    let mut ids = Vec::new();
    for state in [
        "delivered",
        "failed",
        "pending",
        "delivered",
        "delivered",
        "failed",
        "pending",
    ] {
        ids.push(delivery(&app, endpoint, state).await);
    }
    delivery(&app, other, "delivered").await;
    ids.reverse();

    let base = format!("/api/v1/webhooks/{endpoint}/deliveries");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("{base}?limit=3&cursor={cursor}"),
            None => format!("{base}?limit=3"),
        };
        let page = app.call(&key, Method::GET, &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let page = page.json();
        let deliveries = page["deliveries"].as_array().expect("deliveries");
        assert!(deliveries.len() <= 3);
        seen.extend(deliveries.iter().map(id));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen, ids,
        "every delivery of this endpoint once, newest first"
    );
    assert_eq!(pages, 3);

    let failed = app
        .call(&key, Method::GET, &format!("{base}?state=failed"), None)
        .await
        .json();
    let failed: Vec<&Value> = failed["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .collect();
    assert_eq!(failed.len(), 2);
    for delivery in failed {
        assert_eq!(delivery["state"], "failed");
        assert!(delivery["next_attempt_at"].is_null());
    }

    // One delivery with its attempts, oldest first.
    let one = ids[1];
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, status, error, duration_ms)
         VALUES ($1, 1, NULL, 'connection refused', 3), ($1, 2, 500, 'HTTP 500', 41)",
    )
    .bind(one)
    .execute(&app.db)
    .await
    .expect("attempts");
    let detail = app
        .call(&key, Method::GET, &format!("{base}/{one}"), None)
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text());
    let detail = detail.json();
    assert_eq!(detail["delivery"]["id"], one);
    assert_eq!(detail["payload"]["type"], "link.created");
    let attempts = detail["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["attempt"], 1);
    assert!(attempts[0]["status"].is_null());
    assert_eq!(attempts[0]["error"], "connection refused");
    assert_eq!(attempts[1]["status"], 500);
    assert_eq!(attempts[1]["duration_ms"], 41);
}

#[tokio::test]
async fn a_test_event_and_a_redelivery_go_through_the_log() {
    let app = spawn_app().await;
    let key = admin_key(&app);
    let endpoint = id(&create(&app, &key).await);
    let path = format!("/api/v1/webhooks/{endpoint}");

    let test = app
        .call(&key, Method::POST, &format!("{path}/test"), None)
        .await;
    assert_eq!(test.status, StatusCode::ACCEPTED, "{}", test.text());
    let test = test.json();
    assert_eq!(test["event_type"], "webhook.test");
    assert_eq!(test["state"], "pending");
    let message_id = test["message_id"].as_str().expect("message id").to_owned();
    let listed = app
        .call(&key, Method::GET, &format!("{path}/deliveries"), None)
        .await
        .json();
    assert_eq!(listed["deliveries"][0]["id"], test["id"]);
    let detail = app
        .call(
            &key,
            Method::GET,
            &format!("{path}/deliveries/{}", id(&test)),
            None,
        )
        .await
        .json();
    assert_eq!(detail["payload"]["type"], "webhook.test");
    assert_eq!(detail["payload"]["data"]["webhook_id"], endpoint);

    // Delivered, then sent again: the same message (its id), due again.
    sqlx::query(
        "UPDATE webhook_deliveries SET state = 'delivered', attempts = 1, delivered_at = now(),
             next_attempt_at = now() + interval '1 day'
         WHERE id = $1",
    )
    .bind(id(&test))
    .execute(&app.db)
    .await
    .expect("delivered");
    let again = app
        .call(
            &key,
            Method::POST,
            &format!("{path}/deliveries/{}/redeliver", id(&test)),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text());
    let again = again.json();
    assert_eq!(again["id"], test["id"]);
    assert_eq!(again["message_id"], message_id.as_str());
    assert_eq!(again["state"], "pending");
    let due: bool =
        sqlx::query_scalar("SELECT next_attempt_at <= now() FROM webhook_deliveries WHERE id = $1")
            .bind(id(&test))
            .fetch_one(&app.db)
            .await
            .expect("due");
    assert!(due);

    // An unknown delivery of our own endpoint is a 404 too.
    let unknown = app
        .call(
            &key,
            Method::POST,
            &format!("{path}/deliveries/999999/redeliver"),
            None,
        )
        .await;
    assert_eq!(unknown.error(StatusCode::NOT_FOUND).0, "not_found");
}
