//! Link rules (#13) through the links API: every rule stored and shown as it was sent, every
//! bad value a 422 naming its field, the password never shown, the list's filters, the click
//! limit's used-up state, who may write rules, and the bounds under a burst.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use shortlink::password::PasswordHash;
use shortlink::signature;
use time::OffsetDateTime;

use crate::support::{As, EDGE_SECRET, TestApp, TestResponse, spawn_app, spawn_app_with_edge};

const PASSWORD: &str = "open sesame 42";
const NEW_PASSWORD: &str = "another-secret-7";

/// A body with every rule set.
fn every_rule() -> Value {
    json!({
        "destination": "https://example.com/main",
        "code": "ruled",
        "disabled": true,
        "max_clicks": 500,
        "fallback_url": "https://example.com/over",
        "password": PASSWORD,
        "targets": [
            {"when": {"country": ["de", "AT"]}, "destination": "https://example.de/"},
            {"when": {"device": ["mobile"]}, "destination": "https://m.example.com/"},
            {"when": {"os": ["ios"]}, "destination": "https://apps.apple.com/x"},
            {"when": {"language": ["pt-BR"]}, "destination": "https://example.com.br/"},
            {"when": {"query": {"param": "ref", "value": "mail"}}, "destination": "https://example.com/mail"},
        ],
        "split": [
            {"destination": "https://a.example/", "weight": 30},
            {"destination": "https://b.example/", "weight": 70},
        ],
        "utm": {"source": "news letter", "medium": "mail", "campaign": "spring"},
        "tags": [" Spring  Sale ", "Q4", "q4"],
        "note": "  For the spring campaign.  ",
    })
}

/// What the API shows of [`every_rule`]: normalised, the password only as a flag.
fn every_rule_shown() -> Value {
    json!({
        "disabled": true,
        "max_clicks": 500,
        "clicks_used": 0,
        "fallback_url": "https://example.com/over",
        "password_protected": true,
        "targets": [
            {"when": {"country": ["DE", "AT"]}, "destination": "https://example.de/"},
            {"when": {"device": ["mobile"]}, "destination": "https://m.example.com/"},
            {"when": {"os": ["ios"]}, "destination": "https://apps.apple.com/x"},
            {"when": {"language": ["pt-br"]}, "destination": "https://example.com.br/"},
            {"when": {"query": {"param": "ref", "value": "mail"}}, "destination": "https://example.com/mail"},
        ],
        "split": [
            {"id": 0, "destination": "https://a.example/", "weight": 30},
            {"id": 1, "destination": "https://b.example/", "weight": 70},
        ],
        "utm": {"source": "news letter", "medium": "mail", "campaign": "spring"},
        "tags": ["spring sale", "q4"],
        "note": "For the spring campaign.",
    })
}

/// Asserts that `link` shows each field of `expected` as given.
fn assert_shows(link: &Value, expected: &Value) {
    for (field, value) in expected.as_object().expect("an object") {
        assert_eq!(&link[field], value, "{field} in {link}");
    }
}

async fn stored_hash(app: &TestApp, code: &str) -> Option<String> {
    sqlx::query_scalar("SELECT password_hash FROM links WHERE code = $1 AND deleted_at IS NULL")
        .bind(code)
        .fetch_one(&app.db)
        .await
        .expect("link row")
}

#[tokio::test]
async fn every_rule_round_trips_through_create_patch_and_get() {
    let app = spawn_app().await;
    let created = app.create(every_rule()).await;
    assert_shows(&created, &every_rule_shown());
    assert!(created.get("password").is_none(), "{created}");
    let fetched = app.api(Method::GET, "/api/v1/links/ruled", None).await;
    assert_eq!(fetched.json(), created);
    // Stored as a salted PBKDF2 hash that checks the password, never the password.
    let hash = stored_hash(&app, "ruled").await.expect("a hash");
    let hash = PasswordHash::parse(&hash).expect("the stored format");
    assert!(hash.verify(PASSWORD) && !hash.verify(NEW_PASSWORD));

    let patch = json!({
        "disabled": false,
        "max_clicks": 7,
        "fallback_url": "https://example.com/other",
        "password": NEW_PASSWORD,
        "targets": [{"when": {"country": ["fr"]}, "destination": "https://example.fr/"}],
        "split": [
            {"destination": "https://c.example/", "weight": 50},
            {"destination": "https://d.example/", "weight": 25},
            {"destination": "https://e.example/", "weight": 25},
        ],
        "utm": {"term": "shoes", "content": "banner"},
        "tags": ["Launch"],
        "note": "changed",
    });
    let patched = app
        .api(Method::PATCH, "/api/v1/links/ruled", Some(patch))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    let patched = patched.json();
    assert_shows(
        &patched,
        &json!({
            "destination": "https://example.com/main",
            "disabled": false,
            "max_clicks": 7,
            "fallback_url": "https://example.com/other",
            "password_protected": true,
            "targets": [{"when": {"country": ["FR"]}, "destination": "https://example.fr/"}],
            // New destinations: ids after the two the link's first split had.
            "split": [
                {"id": 2, "destination": "https://c.example/", "weight": 50},
                {"id": 3, "destination": "https://d.example/", "weight": 25},
                {"id": 4, "destination": "https://e.example/", "weight": 25},
            ],
            "utm": {"term": "shoes", "content": "banner"},
            "tags": ["launch"],
            "note": "changed",
        }),
    );
    let fetched = app.api(Method::GET, "/api/v1/links/ruled", None).await;
    assert_eq!(fetched.json(), patched);
    let hash = stored_hash(&app, "ruled").await.expect("a hash");
    let hash = PasswordHash::parse(&hash).expect("the stored format");
    assert!(hash.verify(NEW_PASSWORD) && !hash.verify(PASSWORD));

    // A patch that does not name a rule leaves it as it was.
    let renamed = app
        .api(
            Method::PATCH,
            "/api/v1/links/ruled",
            Some(json!({"destination": "https://example.com/moved"})),
        )
        .await
        .json();
    assert_eq!(renamed["password_protected"], true);
    assert_eq!(renamed["tags"], json!(["launch"]));
    assert_eq!(renamed["max_clicks"], 7);

    // null clears; [] and {} replace with nothing.
    let cleared = app
        .api(
            Method::PATCH,
            "/api/v1/links/ruled",
            Some(json!({
                "max_clicks": null, "fallback_url": null, "password": null, "note": null,
                "targets": [], "split": [], "utm": {}, "tags": [],
            })),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text());
    assert_shows(
        &cleared.json(),
        &json!({
            "disabled": false, "max_clicks": null, "clicks_used": 0, "fallback_url": null,
            "password_protected": false, "targets": [], "split": [], "utm": {}, "tags": [],
            "note": null,
        }),
    );
    assert_eq!(stored_hash(&app, "ruled").await, None);

    // A link made without rules shows their empty values.
    let plain = app
        .create(json!({"destination": "https://example.com/plain"}))
        .await;
    assert_shows(
        &plain,
        &json!({
            "disabled": false, "max_clicks": null, "clicks_used": 0, "fallback_url": null,
            "password_protected": false, "targets": [], "split": [], "utm": {}, "tags": [],
            "note": null,
        }),
    );
}

/// `(body, field)`: each body breaks one rule, and the refusal names `field`.
fn bad_rules() -> Vec<(Value, &'static str)> {
    let target = |when: Value| json!([{"when": when, "destination": "https://a.example/"}]);
    let many_targets: Vec<Value> = (0..21)
        .map(|i| json!({"when": {"country": ["DE"]}, "destination": format!("https://a.example/{i}")}))
        .collect();
    let many_tags: Vec<String> = (0..21).map(|i| format!("tag {i}")).collect();
    vec![
        (
            json!({"targets": target(json!({"country": ["Germany"]}))}),
            "targets[0].when.country[0]",
        ),
        (
            json!({"targets": target(json!({"language": ["de_DE"]}))}),
            "targets[0].when.language[0]",
        ),
        (
            json!({"targets": target(json!({"device": ["toaster"]}))}),
            "targets[0].when.device[0]",
        ),
        (
            json!({"targets": target(json!({"country": []}))}),
            "targets[0].when",
        ),
        (
            json!({"targets": target(json!({"planet": ["mars"]}))}),
            "targets[0].when",
        ),
        (
            json!({"targets": [{"when": {"os": ["ios"]}, "destination": "ftp://x.example"}]}),
            "targets[0].destination",
        ),
        (json!({"targets": many_targets}), "targets"),
        (
            json!({"split": [
                {"destination": "https://a.example/", "weight": 60},
                {"destination": "https://b.example/", "weight": 50},
            ]}),
            "split",
        ),
        (
            json!({"split": [{"destination": "https://a.example/", "weight": 100}]}),
            "split",
        ),
        (json!({"tags": many_tags}), "tags"),
        (json!({"tags": ["ok", "a/b"]}), "tags[1]"),
        (json!({"tags": [" "]}), "tags[0]"),
        (json!({"max_clicks": 0}), "max_clicks"),
        (json!({"max_clicks": 1_000_000_000_001_u64}), "max_clicks"),
        (json!({"max_clicks": -1}), "max_clicks"),
        (json!({"password": "abc"}), "password"),
        (json!({"password": "x".repeat(201)}), "password"),
        (
            json!({"utm": {"source": "x", "campaing": "y"}}),
            "utm.campaing",
        ),
        (json!({"utm": {"source": " "}}), "utm.source"),
        (json!({"note": "n".repeat(2001)}), "note"),
        (json!({"fallback_url": "notaurl"}), "fallback_url"),
        (json!({"disabled": "yes"}), "disabled"),
        // Every destination a link can send to is checked for loops to our own host.
        (
            json!({"fallback_url": "https://kurz.test/other"}),
            "fallback_url",
        ),
        (
            json!({"targets": [
                {"when": {"os": ["ios"]}, "destination": "https://a.example/"},
                {"when": {"os": ["android"]}, "destination": "https://KURZ.test./x"},
            ]}),
            "targets[1].destination",
        ),
        (
            json!({"split": [
                {"destination": "https://a.example/", "weight": 50},
                {"destination": "https://kurz.test/abc", "weight": 50},
            ]}),
            "split[1].destination",
        ),
    ]
}

fn with_destination(rule: &Value) -> Value {
    let mut body = rule.clone();
    body["destination"] = json!("https://example.com/");
    body
}

#[tokio::test]
async fn every_bad_rule_is_refused_naming_its_field() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/", "code": "target"}))
        .await;
    for (rule, field) in bad_rules() {
        let created = app
            .api(Method::POST, "/api/v1/links", Some(with_destination(&rule)))
            .await;
        let (code, at) = created.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), at.as_deref()),
            ("invalid_input", Some(field)),
            "create {rule}: {}",
            created.text()
        );
        let patched = app
            .api(Method::PATCH, "/api/v1/links/target", Some(rule.clone()))
            .await;
        let (code, at) = patched.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), at.as_deref()),
            ("invalid_input", Some(field)),
            "patch {rule}: {}",
            patched.text()
        );
    }
    // Nothing was created or changed.
    let list = app.api(Method::GET, "/api/v1/links", None).await.json();
    assert_eq!(list["links"].as_array().map(Vec::len), Some(1), "{list}");
    let link = &list["links"][0];
    assert_shows(
        link,
        &json!({"targets": [], "split": [], "tags": [], "max_clicks": null,
                "password_protected": false, "fallback_url": null}),
    );
}

/// Every place a password could leak to: the answers of create, get, list and patch, and
/// the audit log (which shows only whether there is one).
#[tokio::test]
async fn the_password_and_its_hash_are_never_shown() {
    let app = spawn_app().await;
    let mut body = with_destination(&json!({"password": PASSWORD}));
    body["code"] = json!("secret");
    let created = app.api(Method::POST, "/api/v1/links", Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let hash = stored_hash(&app, "secret").await.expect("a hash");
    let answers = [
        created,
        app.api(Method::GET, "/api/v1/links/secret", None).await,
        app.api(Method::GET, "/api/v1/links", None).await,
        app.api(
            Method::PATCH,
            "/api/v1/links/secret",
            Some(json!({"password": NEW_PASSWORD})),
        )
        .await,
        app.api(
            Method::PATCH,
            "/api/v1/links/secret",
            Some(json!({"note": "still secret"})),
        )
        .await,
        app.api(
            Method::PATCH,
            "/api/v1/links/secret",
            Some(json!({"password": null})),
        )
        .await,
        app.api(Method::DELETE, "/api/v1/links/secret", None).await,
        app.api(Method::GET, "/api/v1/audit", None).await,
    ];
    let new_hash = "pbkdf2-sha256$";
    for answer in &answers {
        assert!(answer.status.is_success(), "{}", answer.text());
        let text = answer.text();
        for secret in [PASSWORD, NEW_PASSWORD, hash.as_str(), new_hash] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(!text.contains("password_hash"), "{text}");
    }
    // The audit log says when protection came and went.
    let audit = answers[answers.len() - 1].json();
    let entries = audit["entries"].as_array().expect("entries");
    let protected = |entry: &Value, side: &str| entry[side]["password_protected"].clone();
    let of = |action: &str| -> Vec<&Value> {
        entries
            .iter()
            .filter(|entry| entry["action"] == action)
            .collect()
    };
    let created = of("link.created");
    assert_eq!(protected(created[0], "after"), json!(true));
    let updates = of("link.updated");
    // Newest first: removed, unchanged, replaced.
    let sides: Vec<(Value, Value)> = updates
        .iter()
        .map(|entry| (protected(entry, "before"), protected(entry, "after")))
        .collect();
    assert_eq!(
        sides,
        vec![
            (json!(true), json!(false)),
            (json!(true), json!(true)),
            (json!(true), json!(true)),
        ]
    );
    assert_eq!(updates[1]["after"]["note"], "still secret");
    assert_eq!(
        protected(of("link.deleted")[0], "before"),
        json!(false),
        "{audit}"
    );
}

#[tokio::test]
async fn the_audit_log_shows_every_rule_change() {
    let app = spawn_app().await;
    app.create(every_rule()).await;
    app.api(
        Method::PATCH,
        "/api/v1/links/ruled",
        Some(json!({"tags": ["other"], "max_clicks": null, "targets": []})),
    )
    .await;
    let audit = app.api(Method::GET, "/api/v1/audit", None).await.json();
    let update = &audit["entries"][0];
    assert_eq!(update["action"], "link.updated");
    let before = every_rule_shown();
    let before = before.as_object().expect("object");
    for (field, value) in before {
        if field != "clicks_used" {
            assert_eq!(&update["before"][field], value, "{field}: {update}");
        }
    }
    assert_eq!(update["after"]["tags"], json!(["other"]));
    assert_eq!(update["after"]["max_clicks"], Value::Null);
    assert_eq!(update["after"]["targets"], json!([]));
    assert_eq!(update["after"]["split"], before["split"]);
}

async fn codes(app: &TestApp, query: &str) -> Vec<String> {
    let response = app
        .api(Method::GET, &format!("/api/v1/links{query}"), None)
        .await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{query}: {}",
        response.text()
    );
    response.json()["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|link| link["code"].as_str().expect("code").to_owned())
        .collect()
}

#[tokio::test]
async fn the_list_filters_by_tag_search_and_disabled() {
    let app = spawn_app().await;
    for (code, tags, note, disabled) in [
        (
            "a-spring",
            json!(["Spring Sale", "shoes"]),
            "Big 50% banner",
            false,
        ),
        ("b-spring", json!(["spring sale"]), "", true),
        (
            "c-autumn",
            json!(["autumn"]),
            "for the SPRING_sale list",
            false,
        ),
        ("d-none", json!([]), "", true),
    ] {
        let mut body = json!({"destination": format!("https://example.com/{code}"),
                              "code": code, "tags": tags, "disabled": disabled});
        if !note.is_empty() {
            body["note"] = json!(note);
        }
        app.create(body).await;
    }
    let cases = [
        ("?tag=spring%20sale", vec!["b-spring", "a-spring"]),
        // Normalised like a link's tags.
        ("?tag=%20SPRING%20%20Sale%20", vec!["b-spring", "a-spring"]),
        ("?tag=shoes", vec!["a-spring"]),
        ("?tag=spring", vec![]),
        ("?tag=", vec!["d-none", "c-autumn", "b-spring", "a-spring"]),
        ("?disabled=true", vec!["d-none", "b-spring"]),
        ("?disabled=false", vec!["c-autumn", "a-spring"]),
        ("?tag=spring%20sale&disabled=false", vec!["a-spring"]),
        // q searches code, destination and note, case-insensitively, % and _ literal.
        ("?q=spring", vec!["c-autumn", "b-spring", "a-spring"]),
        ("?q=50%25", vec!["a-spring"]),
        ("?q=spring_sale", vec!["c-autumn"]),
        ("?q=spring&tag=autumn", vec!["c-autumn"]),
        ("?q=spring&disabled=true", vec!["b-spring"]),
        (
            "?tag=spring%20sale&sort=code_asc",
            vec!["a-spring", "b-spring"],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(codes(&app, query).await, expected, "{query}");
    }
    // The filters hold across pages.
    let first = app
        .api(Method::GET, "/api/v1/links?q=spring&limit=2", None)
        .await
        .json();
    let cursor = first["next_cursor"].as_str().expect("a next page");
    assert_eq!(
        codes(&app, &format!("?q=spring&limit=2&cursor={cursor}")).await,
        vec!["a-spring"]
    );
    for (query, field) in [
        ("?tag=a/b", "tag"),
        (&format!("?tag={}", "x".repeat(41)), "tag"),
        ("?disabled=maybe", "disabled"),
        (&format!("?q={}", "q".repeat(201)), "q"),
    ] {
        let response = app
            .api(Method::GET, &format!("/api/v1/links{query}"), None)
            .await;
        let (code, at) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), at.as_deref()),
            ("invalid_input", Some(field)),
            "{query}"
        );
    }
}

async fn exhausted(app: &TestApp, code: &str) -> bool {
    sqlx::query_scalar(
        "SELECT exhausted_at IS NOT NULL FROM links WHERE code = $1 AND deleted_at IS NULL",
    )
    .bind(code)
    .fetch_one(&app.db)
    .await
    .expect("link row")
}

/// What the edge gets for a code: the full record, rules included.
async fn resolve(app: &TestApp, code: &str) -> TestResponse {
    let path = format!("/_edge/resolve/{code}");
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signature = signature::sign(EDGE_SECRET.as_bytes(), "GET", &path, timestamp, b"");
    let request = Request::builder()
        .method(Method::GET)
        .uri(&path)
        .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
        .header(signature::SIGNATURE_HEADER, signature)
        .body(Body::empty())
        .expect("request");
    app.send(request).await
}

#[tokio::test]
async fn changing_the_click_limit_decides_whether_the_link_is_used_up() {
    let app = spawn_app().await;
    let link = app
        .create(json!({"destination": "https://example.com/", "code": "limited", "max_clicks": 5}))
        .await;
    sqlx::query(
        "INSERT INTO link_click_counts (workspace_id, link_id, used)
         SELECT workspace_id, id, 3 FROM links WHERE id = $1",
    )
    .bind(link["id"].as_i64().expect("id"))
    .execute(&app.db)
    .await
    .expect("counted clicks");
    let patch = |max: Value| {
        let app = &app;
        async move {
            let response = app
                .api(
                    Method::PATCH,
                    "/api/v1/links/limited",
                    Some(json!({"max_clicks": max})),
                )
                .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.text());
            response.json()
        }
    };
    // (new limit, clicks shown, used up after it)
    let steps = [
        (json!(4), 3, false),
        (json!(3), 3, true),   // lowered to what was used
        (json!(2), 3, true),   // stays used up
        (json!(10), 3, false), // raised: back in service
        (json!(1), 3, true),
        (Value::Null, 0, false), // removed: no limit, nothing used
        (json!(3), 3, true),     // counted clicks stay counted
    ];
    for (max, shown, used_up) in steps {
        let link = patch(max.clone()).await;
        assert_eq!(link["max_clicks"], max);
        assert_eq!(link["clicks_used"], shown, "{max}");
        assert_eq!(exhausted(&app, "limited").await, used_up, "{max}");
    }
    // An edit of something else does not change it.
    app.api(
        Method::PATCH,
        "/api/v1/links/limited",
        Some(json!({"note": "x"})),
    )
    .await;
    assert!(exhausted(&app, "limited").await);
}

#[tokio::test]
async fn the_edges_record_carries_every_rule() {
    let app = spawn_app_with_edge().await;
    app.create(every_rule()).await;
    let record = resolve(&app, "ruled").await;
    assert_eq!(record.status, StatusCode::OK, "{}", record.text());
    let record = record.json();
    assert_eq!(record["v"], 2, "{record}");
    let rules = &record["rules"];
    let shown = every_rule_shown();
    assert_eq!(rules["disabled"], true);
    assert_eq!(rules["max_clicks"], 500);
    assert_eq!(rules["fallback"], shown["fallback_url"]);
    assert_eq!(rules["targets"], shown["targets"]);
    assert_eq!(rules["split"], shown["split"]);
    assert_eq!(rules["utm"], shown["utm"]);
    // The edge checks passwords itself: its record has the hash (never the password).
    let hash = PasswordHash::parse(rules["password"].as_str().expect("a hash")).expect("format");
    assert!(hash.verify(PASSWORD));
    assert!(!record.to_string().contains(PASSWORD));

    // Clicks and the used-up state come with it.
    let id: i64 = sqlx::query_scalar("SELECT id FROM links WHERE code = 'ruled'")
        .fetch_one(&app.db)
        .await
        .expect("id");
    sqlx::query(
        "INSERT INTO link_click_counts (workspace_id, link_id, used)
         SELECT workspace_id, id, 2 FROM links WHERE id = $1",
    )
    .bind(id)
    .execute(&app.db)
    .await
    .expect("counted clicks");
    app.api(
        Method::PATCH,
        "/api/v1/links/ruled",
        Some(json!({"max_clicks": 2})),
    )
    .await;
    let rules = resolve(&app, "ruled").await.json()["rules"].clone();
    assert_eq!(
        (rules["clicks"].clone(), rules["exhausted"].clone()),
        (json!(2), json!(true))
    );

    // Without rules the record stays in the format every edge reads.
    let cleared = app
        .api(
            Method::PATCH,
            "/api/v1/links/ruled",
            Some(json!({
                "disabled": false, "max_clicks": null, "fallback_url": null, "password": null,
                "targets": [], "split": [], "utm": {}, "tags": ["kept"], "note": "kept",
            })),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text());
    let record = resolve(&app, "ruled").await.json();
    assert_eq!(record["v"], 1, "{record}");
    assert!(record.get("rules").is_none(), "{record}");
}

#[tokio::test]
async fn every_rule_change_gives_the_link_a_new_version() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/", "code": "versioned"}))
        .await;
    let version = || async {
        sqlx::query_scalar::<_, i64>("SELECT version FROM links WHERE code = 'versioned'")
            .fetch_one(&app.db)
            .await
            .expect("version")
    };
    let mut last = version().await;
    for change in [
        json!({"disabled": true}),
        json!({"max_clicks": 3}),
        json!({"fallback_url": "https://example.com/f"}),
        json!({"password": PASSWORD}),
        json!({"targets": [{"when": {"os": ["ios"]}, "destination": "https://a.example/"}]}),
        json!({"split": [{"destination": "https://a.example/", "weight": 50},
                         {"destination": "https://b.example/", "weight": 50}]}),
        json!({"utm": {"source": "x"}}),
        json!({"tags": ["t"]}),
        json!({"note": "n"}),
    ] {
        let response = app
            .api(
                Method::PATCH,
                "/api/v1/links/versioned",
                Some(change.clone()),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let now = version().await;
        assert!(now > last, "{change}: {now} after {last}");
        last = now;
    }
}

#[tokio::test]
async fn only_writers_of_the_links_workspace_may_set_rules() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/", "code": "mine"}))
        .await;
    let other = app.workspace("Other").await;
    let rule = json!({"tags": ["x"], "password": PASSWORD, "max_clicks": 3});
    let create = || with_destination(&rule);

    for method in [Method::POST, Method::PATCH, Method::GET] {
        let path = if method == Method::POST {
            "/api/v1/links"
        } else {
            "/api/v1/links/mine"
        };
        let body = (method != Method::GET).then(|| {
            if method == Method::POST {
                create()
            } else {
                rule.clone()
            }
        });
        let response = app.call(&As::Nobody, method.clone(), path, body).await;
        assert_eq!(
            response.error(StatusCode::UNAUTHORIZED).0,
            "unauthorized",
            "{method}"
        );
    }
    // Another workspace's key or session does not see the link at all.
    for who in [
        app.key(other, &["links:read", "links:write"]).await,
        app.user("stranger", &[(other, "owner")]).await,
    ] {
        for method in [Method::PATCH, Method::GET] {
            let body = (method == Method::PATCH).then(|| rule.clone());
            let response = app.call(&who, method, "/api/v1/links/mine", body).await;
            assert_eq!(
                response.error(StatusCode::NOT_FOUND).0,
                "not_found",
                "{who:?}"
            );
        }
        let tagged = app
            .call(&who, Method::GET, "/api/v1/links?tag=x", None)
            .await;
        assert_eq!(tagged.json()["links"], json!([]), "{who:?}");
    }
    // Readers may not write rules.
    for who in [
        app.user("vic", &[(1, "viewer")]).await,
        app.key(1, &["links:read"]).await,
    ] {
        let created = app
            .call(&who, Method::POST, "/api/v1/links", Some(create()))
            .await;
        assert_eq!(
            created.error(StatusCode::FORBIDDEN).0,
            "forbidden",
            "{who:?}"
        );
        let patched = app
            .call(
                &who,
                Method::PATCH,
                "/api/v1/links/mine",
                Some(rule.clone()),
            )
            .await;
        assert_eq!(
            patched.error(StatusCode::FORBIDDEN).0,
            "forbidden",
            "{who:?}"
        );
        let read = app
            .call(&who, Method::GET, "/api/v1/links/mine", None)
            .await;
        assert_eq!(read.status, StatusCode::OK, "{who:?}");
        assert_eq!(read.json()["password_protected"], false);
    }
    // Editors and writing keys may.
    for (i, who) in [
        app.user("ed", &[(1, "editor")]).await,
        app.key(1, &["links:write"]).await,
    ]
    .into_iter()
    .enumerate()
    {
        let created = app
            .call(&who, Method::POST, "/api/v1/links", Some(create()))
            .await;
        assert_eq!(
            created.status,
            StatusCode::CREATED,
            "{who:?}: {}",
            created.text()
        );
        assert_eq!(created.json()["password_protected"], true);
        let patched = app
            .call(
                &who,
                Method::PATCH,
                "/api/v1/links/mine",
                Some(json!({"tags": [format!("by {i}")], "disabled": true})),
            )
            .await;
        assert_eq!(
            patched.status,
            StatusCode::OK,
            "{who:?}: {}",
            patched.text()
        );
        assert_eq!(patched.json()["tags"], json!([format!("by {i}")]));
    }
}

/// Rules at their bounds: 20 targets of 50 values each, 20 tags and a split of 10 are taken
/// (and shown back whole); one more of any is refused.
#[tokio::test]
async fn rules_at_their_bounds_are_taken_and_one_more_is_refused() {
    let app = spawn_app().await;
    let countries: Vec<String> = (0..50)
        .map(|i| {
            let letters = [b'A' + (i / 26) as u8, b'A' + (i % 26) as u8];
            String::from_utf8(letters.to_vec()).expect("ASCII")
        })
        .collect();
    let targets = |count: usize, values: usize| -> Value {
        (0..count)
            .map(|i| {
                json!({"when": {"country": countries[..values.min(50)]
                            .iter().cycle().take(values).collect::<Vec<_>>()},
                       "destination": format!("https://example.com/t{i}")})
            })
            .collect()
    };
    let tags = |count: usize| -> Value { (0..count).map(|i| format!("tag {i}")).collect() };
    let split = |count: usize| -> Value {
        (0..count)
            .map(
                |i| json!({"destination": format!("https://s{i}.example/"), "weight": 100 / count}),
            )
            .collect()
    };
    let biggest = json!({
        "destination": "https://example.com/", "code": "biggest",
        "targets": targets(20, 50), "tags": tags(20), "split": split(10),
    });
    let size = biggest.to_string().len();
    let created = app
        .api(Method::POST, "/api/v1/links", Some(biggest.clone()))
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{size} bytes: {}",
        created.text()
    );
    let link = created.json();
    assert_eq!(link["targets"], biggest["targets"]);
    assert_eq!(link["tags"], biggest["tags"]);
    // Each variant with its id: 0, 1, … on a new link.
    let mut with_ids = biggest["split"].clone();
    for (id, variant) in with_ids
        .as_array_mut()
        .expect("variants")
        .iter_mut()
        .enumerate()
    {
        variant["id"] = json!(id);
    }
    assert_eq!(link["split"], with_ids);
    let fetched = app.api(Method::GET, "/api/v1/links/biggest", None).await;
    assert_eq!(fetched.json(), link);
    let listed = codes(&app, "?tag=tag%2019").await;
    assert_eq!(listed, vec!["biggest"]);

    for (rule, field) in [
        (json!({"targets": targets(21, 1)}), "targets"),
        (
            json!({"targets": targets(1, 51)}),
            "targets[0].when.country",
        ),
        (json!({"tags": tags(21)}), "tags"),
        (json!({"split": split(11)}), "split"),
    ] {
        let created = app
            .api(Method::POST, "/api/v1/links", Some(with_destination(&rule)))
            .await;
        assert_eq!(
            created.error(StatusCode::UNPROCESSABLE_ENTITY).1.as_deref(),
            Some(field),
            "{}",
            created.text()
        );
        let patched = app
            .api(Method::PATCH, "/api/v1/links/biggest", Some(rule))
            .await;
        assert_eq!(
            patched.error(StatusCode::UNPROCESSABLE_ENTITY).1.as_deref(),
            Some(field),
            "{}",
            patched.text()
        );
    }
    // A burst of such links, each whole.
    let mut handles = Vec::new();
    let app = std::sync::Arc::new(app);
    for i in 0..20 {
        let app = app.clone();
        let mut body = biggest.clone();
        body["code"] = json!(format!("burst-{i}"));
        handles.push(tokio::spawn(async move {
            app.api(Method::POST, "/api/v1/links", Some(body))
                .await
                .status
        }));
    }
    for handle in handles {
        assert_eq!(handle.await.expect("task"), StatusCode::CREATED);
    }
    assert_eq!(codes(&app, "?tag=tag%200&limit=200").await.len(), 21);
}
