//! Which of the edge's routes a request is for: decided from the method and path alone,
//! before any I/O, so that malformed requests never touch KV or the origin.

use shortlink::ShortCode;
use shortlink::edge::{REPLAY_PATH, SYNC_PATH};

/// The abuse-report form's path, served by the origin (the edge forwards it).
pub const REPORT_PATH: &str = "/report";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET|HEAD /{code}` with a well-formed code.
    Redirect { code: ShortCode, head: bool },
    /// `GET|HEAD /{code}+` (or `%2B`): where the link goes, shown instead of redirecting.
    Preview { code: ShortCode, head: bool },
    /// `POST /{code}`: the answer to a link's password form (405 for a link without one).
    Unlock { code: ShortCode },
    /// `GET|POST /report`: the abuse-report form, forwarded to the origin.
    Report,
    /// `POST /_edge/sync`.
    Sync,
    /// `POST /_edge/replay`.
    Replay,
    /// Right path, wrong method.
    MethodNotAllowed { allow: &'static str },
    /// Anything else, including paths that cannot be a code.
    NotFound,
}

pub fn classify(method: &str, path: &str) -> Route {
    let own = match path {
        SYNC_PATH => Some(Route::Sync),
        REPLAY_PATH => Some(Route::Replay),
        _ => None,
    };
    if let Some(route) = own {
        return if method == "POST" {
            route
        } else {
            Route::MethodNotAllowed { allow: "POST" }
        };
    }
    if path == REPORT_PATH {
        return match method {
            "GET" | "POST" => Route::Report,
            _ => Route::MethodNotAllowed { allow: "GET, POST" },
        };
    }
    let Some(segment) = path.strip_prefix('/') else {
        return Route::NotFound;
    };
    let preview = ["+", "%2B", "%2b"]
        .iter()
        .find_map(|plus| segment.strip_suffix(plus));
    if let Some(segment) = preview {
        let Ok(code) = ShortCode::parse(segment) else {
            return Route::NotFound;
        };
        return match method {
            "GET" => Route::Preview { code, head: false },
            "HEAD" => Route::Preview { code, head: true },
            _ => Route::MethodNotAllowed { allow: "GET, HEAD" },
        };
    }
    let Ok(code) = ShortCode::parse(segment) else {
        return Route::NotFound;
    };
    match method {
        "GET" => Route::Redirect { code, head: false },
        "HEAD" => Route::Redirect { code, head: true },
        "POST" => Route::Unlock { code },
        _ => Route::MethodNotAllowed { allow: "GET, HEAD" },
    }
}

/// The short URL a preview shows, from the preview's serialised URL: without the query,
/// fragment and the `+`.
pub fn short_url(preview_url: &str) -> &str {
    let url = preview_url.split(['?', '#']).next().unwrap_or_default();
    ["+", "%2B", "%2b"]
        .iter()
        .find_map(|plus| url.strip_suffix(plus))
        .unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_url_of_a_preview() {
        for (url, short) in [
            ("https://kurz.example/abc+", "https://kurz.example/abc"),
            (
                "https://kurz.example/abc%2B?x=1#f",
                "https://kurz.example/abc",
            ),
            ("https://kurz.example/abc+#f", "https://kurz.example/abc"),
        ] {
            assert_eq!(short_url(url), short, "{url}");
        }
    }

    #[test]
    fn classification_table() {
        let code = |c: &str| ShortCode::parse(c).expect("valid");
        let long = format!("/{}", "a".repeat(10_000));
        let cases = [
            (
                "GET",
                "/abc1234",
                Route::Redirect {
                    code: code("abc1234"),
                    head: false,
                },
            ),
            (
                "HEAD",
                "/launch",
                Route::Redirect {
                    code: code("launch"),
                    head: true,
                },
            ),
            (
                "POST",
                "/launch",
                Route::Unlock {
                    code: code("launch"),
                },
            ),
            ("POST", "/a.b", Route::NotFound),
            ("POST", "/launch/", Route::NotFound),
            ("POST", "/api", Route::NotFound),
            (
                "PUT",
                "/launch",
                Route::MethodNotAllowed { allow: "GET, HEAD" },
            ),
            (
                "DELETE",
                "/launch",
                Route::MethodNotAllowed { allow: "GET, HEAD" },
            ),
            (
                "PROPFIND",
                "/launch",
                Route::MethodNotAllowed { allow: "GET, HEAD" },
            ),
            ("POST", "/_edge/sync", Route::Sync),
            (
                "GET",
                "/_edge/sync",
                Route::MethodNotAllowed { allow: "POST" },
            ),
            ("POST", "/_edge/replay", Route::Replay),
            (
                "GET",
                "/_edge/replay",
                Route::MethodNotAllowed { allow: "POST" },
            ),
            ("POST", "/_edge/replay/", Route::NotFound),
            ("GET", "/", Route::NotFound),
            ("GET", "", Route::NotFound),
            ("GET", "/a/b", Route::NotFound),
            ("GET", "/a.b", Route::NotFound),
            ("GET", "/%FF", Route::NotFound),
            ("GET", "/api", Route::NotFound),
            ("GET", "/_edge", Route::NotFound),
            ("GET", "/_edge/resolve/abc", Route::NotFound),
            ("GET", &long, Route::NotFound),
            (
                "GET",
                "/launch+",
                Route::Preview {
                    code: code("launch"),
                    head: false,
                },
            ),
            (
                "HEAD",
                "/launch%2B",
                Route::Preview {
                    code: code("launch"),
                    head: true,
                },
            ),
            (
                "GET",
                "/launch%2b",
                Route::Preview {
                    code: code("launch"),
                    head: false,
                },
            ),
            (
                "POST",
                "/launch+",
                Route::MethodNotAllowed { allow: "GET, HEAD" },
            ),
            ("GET", "/+", Route::NotFound),
            ("GET", "/launch++", Route::NotFound),
            ("GET", "/a.b+", Route::NotFound),
            ("GET", "/api+", Route::NotFound),
            ("GET", "/report", Route::Report),
            ("POST", "/report", Route::Report),
            (
                "PUT",
                "/report",
                Route::MethodNotAllowed { allow: "GET, POST" },
            ),
            ("GET", "/report/", Route::NotFound),
        ];
        for (method, path, expected) in cases {
            assert_eq!(classify(method, path), expected, "{method} {path:.40}");
        }
    }
}
