//! The links API: creation, validation, every error case, listing, update and delete.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{PUBLIC_URL, TestApp, scrambler, spawn_app};

#[tokio::test]
async fn creates_a_link_with_a_generated_code() {
    let app = spawn_app().await;
    let response = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://Example.com/a b"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
    let link = response.json();
    let code = link["code"].as_str().expect("code");
    assert_eq!(code.len(), 7, "{link}");
    assert_eq!(
        response.header(&header::LOCATION),
        format!("/api/v1/links/{code}")
    );
    assert_eq!(link["short_url"], format!("{PUBLIC_URL}/{code}"));
    assert_eq!(link["destination"], "https://example.com/a%20b");
    assert_eq!(link["status"], 302);
    assert_eq!(link["expires_at"], Value::Null);
    let id = link["id"].as_i64().expect("id");
    let decoded = scrambler().decode(&code.parse().expect("valid code"));
    assert_eq!(
        decoded,
        Some(id as u64),
        "a generated code decodes back to its id"
    );

    let fetched = app
        .api(Method::GET, &format!("/api/v1/links/{code}"), None)
        .await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.json(), link);
}

#[tokio::test]
async fn consecutive_links_get_unrelated_codes() {
    let app = spawn_app().await;
    let a = app
        .create(json!({"destination": "https://example.com/1"}))
        .await;
    let b = app
        .create(json!({"destination": "https://example.com/2"}))
        .await;
    let (a, b) = (
        a["code"].as_str().expect("code"),
        b["code"].as_str().expect("code"),
    );
    assert_ne!(a[..4], b[..4], "{a} and {b} look sequential");
}

#[tokio::test]
async fn creates_a_link_with_a_custom_slug_status_and_expiry() {
    let app = spawn_app().await;
    let link = app
        .create(json!({
            "destination": "https://example.com/launch",
            "code": "Launch-2026",
            "status": 308,
            "expires_at": "2099-01-01T00:00:00Z",
        }))
        .await;
    assert_eq!(link["code"], "Launch-2026");
    assert_eq!(link["status"], 308);
    assert_eq!(link["expires_at"], "2099-01-01T00:00:00Z");
    // Codes are case-sensitive: another case is another code.
    let other = app
        .create(json!({"destination": "https://example.com/x", "code": "launch-2026"}))
        .await;
    assert_eq!(other["code"], "launch-2026");
}

#[tokio::test]
async fn a_taken_slug_is_a_conflict() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/a", "code": "promo"}))
        .await;
    let response = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/b", "code": "promo"})),
        )
        .await;
    assert_eq!(
        response.error(StatusCode::CONFLICT),
        ("code_taken".into(), Some("code".into()))
    );
    // The first link is untouched.
    let first = app
        .api(Method::GET, "/api/v1/links/promo", None)
        .await
        .json();
    assert_eq!(first["destination"], "https://example.com/a");
}

/// The code's claim in `link_codes` decides a race: of eight creates of one slug at once,
/// one makes the link and seven are told the code is taken.
#[tokio::test]
async fn creates_racing_for_one_slug_make_one_link() {
    let app = spawn_app().await;
    let answers = futures_util::future::join_all((0..8).map(|i| {
        app.api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": format!("https://example.com/{i}"), "code": "race"})),
        )
    }))
    .await;
    let statuses: Vec<StatusCode> = answers.iter().map(|answer| answer.status).collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let taken = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, taken), (1, 7), "{statuses:?}");
    let rows: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM link_codes WHERE code = 'race'),
                (SELECT count(*) FROM links WHERE code = 'race')",
    )
    .fetch_one(&app.db)
    .await
    .expect("rows");
    assert_eq!(rows, (1, 1));
}

#[tokio::test]
async fn a_generated_code_skips_a_custom_slug_that_took_it() {
    let app = spawn_app().await;
    let first = app
        .create(json!({"destination": "https://example.com/first"}))
        .await;
    let id = first["id"].as_i64().expect("id") as u64;
    // The custom link takes id+1 from the sequence, and the code that id+2 will generate.
    let stolen = scrambler().encode(id + 2).expect("code").to_string();
    let custom = app
        .create(json!({"destination": "https://example.com/custom", "code": stolen}))
        .await;
    assert_eq!(custom["id"].as_i64(), Some(id as i64 + 1));

    let generated = app
        .create(json!({"destination": "https://example.com/generated"}))
        .await;
    assert_ne!(generated["code"], custom["code"]);
    assert_eq!(generated["code"].as_str().map(str::len), Some(7));
    // Both links resolve to their own destinations.
    for (link, destination) in [
        (&custom, "https://example.com/custom"),
        (&generated, "https://example.com/generated"),
    ] {
        let visit = app
            .visit(
                Method::GET,
                &format!("/{}", link["code"].as_str().expect("code")),
            )
            .await;
        assert_eq!(visit.status, StatusCode::FOUND);
        assert_eq!(visit.header(&header::LOCATION), destination);
    }
    // And a custom slug equal to an existing generated code is refused.
    let response = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/x", "code": first["code"]})),
        )
        .await;
    assert_eq!(response.error(StatusCode::CONFLICT).0, "code_taken");
}

#[tokio::test]
async fn invalid_bodies_are_refused_with_the_field_at_fault() {
    let app = spawn_app().await;
    let cases = [
        (json!({"destination": "not a url"}), "destination"),
        (
            json!({"destination": "ftp://example.com/file"}),
            "destination",
        ),
        (json!({"destination": "javascript:alert(1)"}), "destination"),
        (
            json!({"destination": "https://paypal.com@evil.example/"}),
            "destination",
        ),
        (
            json!({"destination": format!("https://example.com/{}", "a".repeat(5000))}),
            "destination",
        ),
        (
            json!({"destination": "https://kurz.test/abc"}),
            "destination",
        ),
        (
            json!({"destination": "https://KURZ.test:8443/abc"}),
            "destination",
        ),
        (json!({"destination": 42}), "destination"),
        (json!({}), "destination"),
        (
            json!({"destination": "https://example.com", "code": "admin"}),
            "code",
        ),
        (
            json!({"destination": "https://example.com", "code": "api"}),
            "code",
        ),
        (
            json!({"destination": "https://example.com", "code": "has space"}),
            "code",
        ),
        (
            json!({"destination": "https://example.com", "code": "a/b"}),
            "code",
        ),
        (
            json!({"destination": "https://example.com", "code": ""}),
            "code",
        ),
        (
            json!({"destination": "https://example.com", "code": "x".repeat(65)}),
            "code",
        ),
        (
            json!({"destination": "https://example.com", "status": 303}),
            "status",
        ),
        (
            json!({"destination": "https://example.com", "status": "302"}),
            "status",
        ),
        (
            json!({"destination": "https://example.com", "expires_at": "next week"}),
            "expires_at",
        ),
        (
            json!({"destination": "https://example.com", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"destination": "https://example.com", "slug": "typo"}),
            "slug",
        ),
    ];
    for (body, field) in cases {
        let response = app
            .api(Method::POST, "/api/v1/links", Some(body.clone()))
            .await;
        assert_eq!(
            response.error(StatusCode::UNPROCESSABLE_ENTITY),
            ("invalid_input".into(), Some(field.into())),
            "body {body}"
        );
    }
    let listed = app.api(Method::GET, "/api/v1/links", None).await.json();
    assert_eq!(listed["links"], json!([]), "nothing invalid was stored");
}

#[tokio::test]
async fn malformed_json_wrong_type_and_oversized_bodies() {
    let app = spawn_app().await;
    let raw = |content_type: &str, body: Body| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/links")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.api_key))
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .expect("request")
    };
    let response = app
        .send(raw("application/json", Body::from("{\"destination\": ")))
        .await;
    assert_eq!(response.error(StatusCode::BAD_REQUEST).0, "malformed_json");
    let response = app
        .send(raw("application/json", Body::from(vec![0xff, 0xfe, 0x00])))
        .await;
    assert_eq!(response.error(StatusCode::BAD_REQUEST).0, "malformed_json");
    let response = app
        .send(raw(
            "application/x-www-form-urlencoded",
            Body::from("destination=https://example.com"),
        ))
        .await;
    assert_eq!(
        response.error(StatusCode::UNSUPPORTED_MEDIA_TYPE).0,
        "unsupported_media_type"
    );
    let huge = format!(
        "{{\"destination\": \"https://example.com/{}\"}}",
        "a".repeat(300_000)
    );
    let response = app.send(raw("application/json", Body::from(huge))).await;
    assert_eq!(
        response.error(StatusCode::PAYLOAD_TOO_LARGE).0,
        "payload_too_large"
    );
    let response = app
        .send(raw(
            "application/json; charset=utf-8",
            Body::from(r#"{"destination":"https://example.com"}"#),
        ))
        .await;
    assert_eq!(
        response.status,
        StatusCode::CREATED,
        "charset parameter is fine"
    );
}

#[tokio::test]
async fn every_api_route_requires_a_valid_key() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com", "code": "mine"}))
        .await;
    let routes = [
        (Method::GET, "/api/v1/links"),
        (Method::POST, "/api/v1/links"),
        (Method::GET, "/api/v1/links/mine"),
        (Method::PATCH, "/api/v1/links/mine"),
        (Method::DELETE, "/api/v1/links/mine"),
        (Method::GET, "/api/v1/nothing-here"),
    ];
    let credentials = [
        None,
        Some("Bearer kurz_0000000000000000000000000000000000000000000000000".to_owned()),
        Some(format!("Basic {}", app.api_key)),
        Some("Bearer".to_owned()),
        Some(format!("Bearer {}x", app.api_key)),
    ];
    for (method, path) in routes {
        for credential in &credentials {
            let mut request = Request::builder().method(method.clone()).uri(path);
            if let Some(credential) = credential {
                request = request.header(header::AUTHORIZATION, credential);
            }
            let response = app
                .send(request.body(Body::empty()).expect("request"))
                .await;
            assert_eq!(
                response.error(StatusCode::UNAUTHORIZED).0,
                "unauthorized",
                "{method} {path} with {credential:?}"
            );
            assert_eq!(response.header(&header::WWW_AUTHENTICATE), "Bearer");
        }
    }
    // The link survived all of that.
    let response = app.api(Method::GET, "/api/v1/links/mine", None).await;
    assert_eq!(response.status, StatusCode::OK);
    // A key made by the CLI's function works, and the scheme is case-insensitive.
    let key = origin::auth::create_default_key(&app.db, "second")
        .await
        .expect("key");
    let request = Request::builder()
        .uri("/api/v1/links")
        .header(header::AUTHORIZATION, format!("bearer {key}"))
        .body(Body::empty())
        .expect("request");
    assert_eq!(app.send(request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_and_malformed_codes_are_not_found() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/links/nope",
        "/api/v1/links/a.b",
        "/api/v1/links/%FF",
        "/api/v1/unknown",
    ] {
        for method in [Method::GET, Method::DELETE] {
            let response = app.api(method.clone(), path, None).await;
            assert_eq!(
                response.error(StatusCode::NOT_FOUND).0,
                "not_found",
                "{method} {path}"
            );
        }
        let response = app
            .api(
                Method::PATCH,
                path,
                Some(json!({"destination": "https://example.com"})),
            )
            .await;
        assert_eq!(
            response.error(StatusCode::NOT_FOUND).0,
            "not_found",
            "PATCH {path}"
        );
    }
}

#[tokio::test]
async fn lists_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..7 {
        let link = app
            .create(json!({"destination": format!("https://example.com/{i}")}))
            .await;
        created.push(link["code"].as_str().expect("code").to_owned());
    }
    app.api(
        Method::DELETE,
        &format!("/api/v1/links/{}", created[3]),
        None,
    )
    .await;
    let seen = app.all_link_pages("", 2).await;
    let expected: Vec<String> = created
        .iter()
        .rev()
        .filter(|c| **c != created[3])
        .cloned()
        .collect();
    assert_eq!(seen, expected);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=abc", "cursor"),
        ("limit=many", "limit"),
        ("sort=random", "sort"),
        ("colour=red", "colour"),
        (
            "sort=code_asc&cursor=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "cursor",
        ),
    ] {
        let response = app
            .api(Method::GET, &format!("/api/v1/links?{query}"), None)
            .await;
        assert_eq!(
            response
                .error(StatusCode::UNPROCESSABLE_ENTITY)
                .1
                .as_deref(),
            Some(field),
            "{query}"
        );
    }
}

#[tokio::test]
async fn searches_codes_destinations_and_titles() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://shop.example/summer-sale", "code": "sale_2026"}))
        .await;
    app.create(json!({"destination": "https://blog.example/post", "code": "salty"}))
        .await;
    app.create(json!({"destination": "https://docs.example/SALE", "code": "docs"}))
        .await;
    app.create(json!({"destination": "https://other.example/", "code": "saleX2026"}))
        .await;
    app.create(
        json!({"destination": "https://files.example/2026.pdf", "code": "brochure",
                      "title": "Spring Catalogue for retailers"}),
    )
    .await;
    let search = |q: &'static str| {
        let app = &app;
        async move {
            let page = app
                .api(Method::GET, &format!("/api/v1/links?q={q}"), None)
                .await
                .json();
            let mut codes: Vec<String> = page["links"]
                .as_array()
                .expect("links")
                .iter()
                .map(|l| l["code"].as_str().expect("code").to_owned())
                .collect();
            codes.sort();
            codes
        }
    };
    assert_eq!(search("sale").await, ["docs", "saleX2026", "sale_2026"]);
    assert_eq!(
        search("sale_").await,
        ["sale_2026"],
        "_ is literal, not a wildcard"
    );
    assert_eq!(search("blog.example").await, ["salty"]);
    assert_eq!(search("nothing-matches").await, Vec::<String>::new());
    // A word of the title alone, in any case (the link's code and destination lack it).
    assert_eq!(search("CATALOGUE").await, ["brochure"]);
    assert_eq!(search("for%20retail").await, ["brochure"]);

    // A search is bounded (200 characters, counted as characters, not bytes).
    let longest = "%C3%A9".repeat(200); // é
    let response = app
        .api(Method::GET, &format!("/api/v1/links?q={longest}"), None)
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let response = app
        .api(Method::GET, &format!("/api/v1/links?q={longest}x"), None)
        .await;
    assert_eq!(
        response
            .error(StatusCode::UNPROCESSABLE_ENTITY)
            .1
            .as_deref(),
        Some("q")
    );
}

/// A search reads the 5,000 links after the cursor in the list's order first, and the links
/// past them through the trigram indexes (`links::store::list`): whatever the sort and the
/// page size, it lists the links that match in the list's order, across that boundary.
#[tokio::test]
async fn a_search_lists_matches_in_order_across_the_links_it_reads_first() {
    let app = spawn_app().await;
    let make = |code: &'static str, extra: Value| {
        let app = &app;
        async move {
            let mut body = json!({"destination": "https://example.com/other", "code": code});
            for (field, value) in extra.as_object().expect("fields") {
                body[field] = value.clone();
            }
            app.create(body).await;
        }
    };
    make("a1", json!({"destination": "https://example.com/NEEDLE"})).await;
    make("m5", json!({"title": "a needle"})).await;
    make("zz", json!({"note": "needles"})).await;
    // Newer than those, older than the next, and between them by code.
    sqlx::query(
        "INSERT INTO links (code, destination)
         SELECT 'f' || lpad(i::text, 5, '0'), 'https://example.com/hay' FROM generate_series(1, 5100) i",
    )
    .execute(&app.db)
    .await
    .expect("fillers");
    make("b2", json!({"destination": "https://needle.example/"})).await;
    make("y9", json!({"note": "Needle"})).await;
    sqlx::query(
        "UPDATE link_click_totals SET total = 9, recent = 9
         WHERE link_id = (SELECT id FROM links WHERE code = 'a1')",
    )
    .execute(&app.db)
    .await
    .expect("clicks");
    let newest = ["y9", "b2", "zz", "m5", "a1"];
    let cases: [(&str, &[&str]); 6] = [
        ("newest", &newest),
        ("oldest", &["a1", "m5", "zz", "b2", "y9"]),
        ("code_asc", &["a1", "b2", "m5", "y9", "zz"]),
        ("code_desc", &["zz", "y9", "m5", "b2", "a1"]),
        ("clicks", &["a1", "y9", "b2", "zz", "m5"]),
        ("clicks_7d", &["a1", "y9", "b2", "zz", "m5"]),
    ];
    for (sort, expected) in cases {
        for limit in [1, 2, 3, 200] {
            let seen = app
                .all_link_pages(&format!("q=needle&sort={sort}"), limit)
                .await;
            assert_eq!(seen, expected, "sort={sort} limit={limit}");
        }
    }
    // With the other filters, and with none matching.
    assert_eq!(list_codes(&app, "?q=needle&disabled=false").await, newest);
    app.api(
        Method::PATCH,
        "/api/v1/links/zz",
        Some(json!({"tags": ["t"]})),
    )
    .await;
    assert_eq!(list_codes(&app, "?q=needle&tag=t").await, ["zz"]);
    assert!(
        list_codes(&app, "?q=no-such-thing&sort=code_desc")
            .await
            .is_empty()
    );
}

async fn list_codes(app: &TestApp, query: &str) -> Vec<String> {
    let page = app
        .api(Method::GET, &format!("/api/v1/links{query}"), None)
        .await
        .json();
    page["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|link| link["code"].as_str().expect("code").to_owned())
        .collect()
}

#[tokio::test]
async fn updates_only_what_is_sent() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/old", "code": "edit-me", "expires_at": "2099-01-01T00:00:00Z"})).await;
    let path = "/api/v1/links/edit-me";
    let response = app
        .api(
            Method::PATCH,
            path,
            Some(json!({"destination": "https://example.com/new"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let link = response.json();
    assert_eq!(link["destination"], "https://example.com/new");
    assert_eq!(link["status"], 302);
    assert_eq!(link["expires_at"], "2099-01-01T00:00:00Z");

    let link = app
        .api(
            Method::PATCH,
            path,
            Some(json!({"status": 301, "expires_at": null})),
        )
        .await
        .json();
    assert_eq!(link["destination"], "https://example.com/new");
    assert_eq!(link["status"], 301);
    assert_eq!(link["expires_at"], Value::Null);
    assert!(link["updated_at"].as_str() > link["created_at"].as_str());

    let response = app.api(Method::PATCH, path, Some(json!({}))).await;
    assert_eq!(
        response.error(StatusCode::UNPROCESSABLE_ENTITY).0,
        "invalid_input"
    );
    let response = app
        .api(
            Method::PATCH,
            path,
            Some(json!({"destination": "https://kurz.test/x"})),
        )
        .await;
    assert_eq!(
        response
            .error(StatusCode::UNPROCESSABLE_ENTITY)
            .1
            .as_deref(),
        Some("destination")
    );
    let response = app
        .api(Method::PATCH, path, Some(json!({"code": "rename"})))
        .await;
    assert_eq!(
        response
            .error(StatusCode::UNPROCESSABLE_ENTITY)
            .1
            .as_deref(),
        Some("code")
    );
}

#[tokio::test]
async fn delete_frees_the_code() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/one", "code": "reuse"}))
        .await;
    let response = app.api(Method::DELETE, "/api/v1/links/reuse", None).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let response = app.api(Method::GET, "/api/v1/links/reuse", None).await;
    assert_eq!(response.error(StatusCode::NOT_FOUND).0, "not_found");
    let response = app.api(Method::DELETE, "/api/v1/links/reuse", None).await;
    assert_eq!(response.error(StatusCode::NOT_FOUND).0, "not_found");
    let again = app
        .create(json!({"destination": "https://example.com/two", "code": "reuse"}))
        .await;
    assert_eq!(again["destination"], "https://example.com/two");
    // The deleted row is kept (its clicks will need it), but only one is live.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM links WHERE code = 'reuse'")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(rows, 2);
    // The code routes to the new link only.
    let routes: Vec<i64> =
        sqlx::query_scalar("SELECT link_id FROM link_codes WHERE code = 'reuse'")
            .fetch_all(&app.db)
            .await
            .expect("routes");
    assert_eq!(routes, [again["id"].as_i64().expect("id")]);
}
