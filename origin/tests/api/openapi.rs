//! The OpenAPI contract: `/api/v1/openapi.json` describes every route the router has under
//! `/api/v1` (read from the router's source, so a new route without its `#[utoipa::path]`
//! fails here), as OpenAPI 3.1; `/api/docs` reads it without anything from the network.
//! Whether the answers keep to it is schemathesis's part (`cargo xtask schemathesis`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use axum::http::{Method, StatusCode, header};
use serde_json::Value;

use crate::support::spawn_app;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test]
async fn the_document_is_openapi_3_1_public_and_complete() {
    let app = spawn_app().await;
    let response = app.visit(Method::GET, "/api/v1/openapi.json").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.header(&header::CONTENT_TYPE), "application/json");
    let doc = response.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer", "{schemes}");
    assert_eq!(schemes["session"]["in"], "cookie", "{schemes}");
    assert_eq!(schemes["session"]["name"], "kurz_session", "{schemes}");

    let documented = documented(&doc);
    let routed = routed();
    assert!(
        routed.len() > 30,
        "the router's routes were not found: {routed:?}"
    );
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without #[utoipa::path]: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    // Every operation: its refusals in the error body, every schema it names defined, and
    // credentials unless it says it takes none.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let name = format!("{method} {path}");
            let refused = &operation["responses"]["4XX"]["content"]["application/json"]["schema"];
            assert_eq!(refused["$ref"], "#/components/schemas/ErrorBody", "{name}");
            assert!(operation["tags"][0].is_string(), "{name} has no tag");
            let public = operation["security"] == serde_json::json!([{}]);
            let expect_public = [
                "post /api/v1/session",
                "post /api/v1/invitations/lookup",
                "post /api/v1/invitations/sign-up",
                "get /api/v1/openapi.json",
            ]
            .contains(&name.as_str());
            assert_eq!(
                public, expect_public,
                "{name}: security {}",
                operation["security"]
            );
            for reference in references(operation) {
                let schema = reference.trim_start_matches("#/components/schemas/");
                assert!(
                    schemas.contains_key(schema),
                    "{name}: {reference} is not defined"
                );
            }
        }
    }
    assert_eq!(
        doc["security"],
        serde_json::json!([{"api_key": []}, {"session": []}])
    );
}

/// The schemas come from the types: a rule of a type is in its schema.
/// The headers the links' handlers read and send are in the document: a client generated from
/// it can delete on a version and sees the version, the new link's place and a replay, and
/// how long to wait after a refusal.
#[tokio::test]
async fn the_headers_of_a_links_life_are_documented() {
    let app = spawn_app().await;
    let doc = app.visit(Method::GET, "/api/v1/openapi.json").await.json();
    let link = &doc["paths"]["/api/v1/links/{code}"];
    let params: Vec<&str> = link["delete"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|param| param["in"] == "header")
        .filter_map(|param| param["name"].as_str())
        .collect();
    assert_eq!(params, ["If-Match"], "{}", link["delete"]);
    let headers = |response: &Value| -> Vec<String> {
        response["headers"]
            .as_object()
            .map(|headers| headers.keys().cloned().collect())
            .unwrap_or_default()
    };
    let created = &doc["paths"]["/api/v1/links"]["post"]["responses"];
    assert_eq!(
        headers(&created["201"]),
        ["ETag", "Idempotent-Replayed", "Location"]
    );
    assert_eq!(headers(&link["get"]["responses"]["200"]), ["ETag"]);
    assert_eq!(headers(&link["patch"]["responses"]["200"]), ["ETag"]);
    for refusal in ["4XX", "5XX"] {
        assert_eq!(
            headers(&created[refusal]),
            ["Retry-After"],
            "{}",
            created[refusal]
        );
    }
}

#[tokio::test]
async fn schemas_carry_the_types_rules() {
    let app = spawn_app().await;
    let doc = app.visit(Method::GET, "/api/v1/openapi.json").await.json();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ShortCode"]["maxLength"], 64,
        "{}",
        schemas["ShortCode"]
    );
    assert_eq!(
        schemas["RedirectStatus"]["enum"],
        serde_json::json!([301, 302, 307, 308])
    );
    assert_eq!(schemas["Tag"]["maxLength"], shortlink::rules::MAX_TAG_LEN);
    // No pattern: none written in a dialect every client reads says what a tag takes (the
    // ASCII `\w` of ECMA-262 refused every Korean or umlauted tag; Python cannot compile
    // Unicode property classes). The description says it.
    assert_eq!(schemas["Tag"].get("pattern"), None, "{}", schemas["Tag"]);
    assert!(
        schemas["Tag"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("any script")),
        "{}",
        schemas["Tag"]
    );
    assert_eq!(
        schemas["ClickLimit"]["maximum"],
        shortlink::rules::MAX_CLICK_LIMIT
    );
    let required = schemas["CreateLink"]["required"]
        .as_array()
        .expect("required");
    assert_eq!(required, &[Value::from("destination")]);
    let parameters = &doc["paths"]["/api/v1/links"]["get"]["parameters"];
    let names: Vec<_> = parameters
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["cursor", "limit", "q", "tag", "disabled", "sort"]);
}

#[tokio::test]
async fn the_reference_page_needs_no_network_and_no_key() {
    let app = spawn_app().await;
    let response = app.visit(Method::GET, "/api/docs").await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        response
            .header(&header::CONTENT_TYPE)
            .starts_with("text/html")
    );
    let csp = response.header(&header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("connect-src 'self'")
            && csp.contains("script-src 'self'"),
        "{csp}"
    );
    // Its one script is its own file, not inline (which the policy would not run).
    assert!(!csp.contains("script-src 'unsafe-inline'"), "{csp}");
    assert!(page_has_no_inline_script(&response.text()));
    let script = app.visit(Method::GET, "/api/docs/docs.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script
            .header(&header::CONTENT_TYPE)
            .starts_with("text/javascript")
    );
    assert!(script.text().contains("/api/v1/openapi.json"));
    let page = response.text();
    assert!(page.contains("/api/docs/docs.js"));
    // Nothing loaded from elsewhere: no script, style or font from another origin.
    for outside in [
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
        "src=\"//",
    ] {
        assert!(!page.contains(outside), "the page loads {outside}…");
    }
}

/// `METHOD /api/v1/path` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<String> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|method| METHODS.contains(&method.as_str()))
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect()
}

/// Every `$ref` in a value.
fn references(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value) {
                ("$ref", Value::String(reference)) => vec![reference.clone()],
                _ => references(value),
            })
            .collect(),
        Value::Array(values) => values.iter().flat_map(references).collect(),
        _ => Vec::new(),
    }
}

/// `METHOD /api/v1/path` of every route the router has under `/api/v1`, read from its source:
/// the API's router in `app` (up to `with_gateway`), and the `routes()` functions it merges,
/// followed through their own merges.
fn routed() -> BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let start = lib
        .find("let api = Router::new()")
        .expect("the API's router in app");
    let end = start
        + lib[start..]
            .find("with_gateway(")
            .expect("with_gateway after it");
    let mut routes = BTreeSet::new();
    collect(&lib[start..end], &src, &src, &mut routes);
    routes
}

/// The routes of `code` (in the module whose folder is `dir`), and of the functions it merges.
fn collect(code: &str, dir: &Path, src: &Path, routes: &mut BTreeSet<String>) {
    for call in calls(code, ".route(") {
        let path = call
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("a route without a literal path: {call}"));
        let methods: Vec<_> = METHODS
            .iter()
            .filter(|method| {
                call.match_indices(&format!("{method}(")).any(|(at, _)| {
                    !call[..at]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
            .collect();
        assert!(!methods.is_empty(), "a route without a method: {call}");
        for method in methods {
            routes.insert(format!("{} /api/v1{path}", method.to_uppercase()));
        }
    }
    // `module::sub::routes()` (merged, or the start of a chain): the module's file, from `dir`.
    for (at, _) in code.match_indices("routes()") {
        let before = &code[..at];
        let path_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let call = &code[path_start..at + "routes".len()];
        let Some((module, function)) = call.rsplit_once("::") else {
            continue; // `fn routes()` itself.
        };
        let mut base = dir.to_path_buf();
        for part in module.split("::") {
            match part {
                "crate" => base = src.to_path_buf(),
                "super" => base = base.parent().expect("a parent module").to_path_buf(),
                part => base.push(part),
            }
        }
        let (file, module_dir) = module_file(&base);
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        collect(&function_body(&text, function), &module_dir, src, routes);
    }
}

/// A module's file (`x.rs` or `x/mod.rs`) and the folder its submodules are in.
fn module_file(base: &Path) -> (PathBuf, PathBuf) {
    let flat = base.with_extension("rs");
    if flat.exists() {
        (flat, base.to_path_buf())
    } else {
        (base.join("mod.rs"), base.to_path_buf())
    }
}

/// The arguments of each call of `opening` (`.route(`) in `code`.
fn calls<'a>(code: &'a str, opening: &str) -> Vec<&'a str> {
    code.match_indices(opening)
        .map(|(at, _)| {
            let start = at + opening.len();
            let mut depth = 1;
            let end = code[start..]
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map(|(at, _)| start + at)
                .expect("balanced parentheses");
            &code[start..end]
        })
        .collect()
}

/// The body of `fn name(` in `text`.
fn function_body(text: &str, name: &str) -> String {
    let at = text
        .find(&format!("fn {name}("))
        .unwrap_or_else(|| panic!("no fn {name}"));
    let open = at + text[at..].find('{').expect("a body");
    let mut depth = 0;
    for (offset, c) in text[open..].char_indices() {
        depth += match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        };
        if depth == 0 {
            return text[open..=open + offset].to_owned();
        }
    }
    panic!("fn {name} has no end");
}

/// Every `<script` of the page names its `src`.
fn page_has_no_inline_script(page: &str) -> bool {
    page.match_indices("<script").all(|(at, _)| {
        page[at..]
            .split('>')
            .next()
            .is_some_and(|tag| tag.contains("src="))
    })
}
