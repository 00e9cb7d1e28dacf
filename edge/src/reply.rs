//! What the edge answers a visitor, as plain data: the status, the headers and the HTML page
//! of every answer. `lib.rs` turns a [`Reply`] into the runtime's response in one place, so
//! the answers themselves are tested on the host, and they are the origin's:
//! `shortlink::pages` for the pages, `shortlink::redirect::decide` for the decision.

use std::borrow::Cow;

use shortlink::pages::{self, PasswordProblem, Preview};
use shortlink::redirect::Decision;

/// `Cache-Control` of everything but a redirect: never stored, so a change (a link created
/// after its 404, a password entered) shows at once.
const NO_STORE: &str = "no-store";
/// `Cache-Control` of the fallback redirect: like a temporary one, never stored.
const PRIVATE_NO_STORE: &str = "private, no-store";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    pub status: u16,
    pub headers: Vec<(&'static str, Cow<'a, str>)>,
    /// An HTML page, or no body.
    pub html: Option<Cow<'static, str>>,
}

impl<'a> Reply<'a> {
    /// An HTML page that no cache keeps.
    pub fn page(status: u16, html: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            headers: vec![("cache-control", Cow::Borrowed(NO_STORE))],
            html: Some(html.into()),
        }
    }

    pub fn not_found() -> Self {
        Self::page(404, pages::NOT_FOUND)
    }

    /// 503 while the origin cannot answer, with when to try again.
    pub fn unavailable(retry_after_secs: u64) -> Self {
        Self::page(503, pages::UNAVAILABLE).with("retry-after", retry_after_secs.to_string())
    }

    /// 429: the visitor's address is over a limit; nothing was looked up.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::page(429, pages::RATE_LIMITED).with("retry-after", retry_after_secs.to_string())
    }

    /// `/{code}+`: where the link goes, for a minute in the visitor's browser only, and kept
    /// out of search engines.
    pub fn preview(short_url: &str, preview: &Preview<'_>) -> Self {
        Self {
            status: 200,
            headers: vec![
                ("cache-control", Cow::Borrowed("private, max-age=60")),
                ("x-robots-tag", Cow::Borrowed("noindex")),
            ],
            html: Some(Cow::Owned(pages::preview(short_url, preview))),
        }
    }

    /// A request the route does not take: 405 with the methods it does.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            status: 405,
            headers: vec![("allow", Cow::Borrowed(allow))],
            html: None,
        }
    }

    /// The password form, with what went wrong before.
    pub fn password_form(status: u16, problem: PasswordProblem) -> Self {
        Self::page(status, pages::password_form(problem))
    }

    /// An empty answer with `Location`.
    fn redirect(status: u16, location: Cow<'a, str>, cache_control: Cow<'a, str>) -> Self {
        Self {
            status,
            headers: vec![("location", location), ("cache-control", cache_control)],
            html: None,
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<Cow<'a, str>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of header `name`, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_ref())
    }

    /// The answer to a visit, as the origin gives it: a redirect, 410 (expired or used up),
    /// 404 (disabled, like an unknown code), 401 with the password form, or a `302` to the
    /// fallback that no cache keeps.
    pub fn of(decision: Decision<'a>) -> Self {
        match decision {
            Decision::Redirect {
                status,
                location,
                cache_control,
                ..
            } => {
                let cache_control = match cache_control.as_static() {
                    Some(text) => Cow::Borrowed(text),
                    None => Cow::Owned(cache_control.to_string()),
                };
                Self::redirect(status.code(), location.to_str(), cache_control)
            }
            Decision::Expired => Self::page(410, pages::EXPIRED),
            Decision::Disabled => Self::not_found(),
            Decision::Password => Self::password_form(401, PasswordProblem::None),
            Decision::Fallback { location } => Self::redirect(
                302,
                Cow::Borrowed(location),
                Cow::Borrowed(PRIVATE_NO_STORE),
            ),
        }
    }

    /// `303 See Other` back to the link: after a right password with the unlock cookie, or
    /// without one when the link no longer asks for it (its GET says why).
    pub fn unlocked(location: String, set_cookie: Option<String>) -> Self {
        let mut reply = Self {
            status: 303,
            headers: vec![
                ("location", Cow::Owned(location)),
                ("cache-control", Cow::Borrowed(NO_STORE)),
            ],
            html: None,
        };
        if let Some(cookie) = set_cookie {
            reply.headers.push(("set-cookie", Cow::Owned(cookie)));
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use shortlink::redirect::{CacheControl, Location};
    use shortlink::rules::{Utm, UtmValue};
    use shortlink::{Destination, RedirectStatus};

    use super::*;

    #[test]
    fn every_decision_is_answered_like_the_origin() {
        let destination = Destination::parse("https://example.com/").expect("valid");
        let utm = Utm {
            source: Some(UtmValue::parse("x").expect("valid")),
            ..Utm::NONE
        };
        let redirect = Reply::of(Decision::Redirect {
            status: RedirectStatus::MovedPermanently,
            location: Location {
                destination: &destination,
                utm: &utm,
            },
            cache_control: CacheControl::Public { max_age: 600 },
            variant: Some(1),
        });
        assert_eq!(redirect.status, 301);
        assert_eq!(
            redirect.header("location"),
            Some("https://example.com/?utm_source=x")
        );
        assert_eq!(
            redirect.header("cache-control"),
            Some("public, max-age=600")
        );
        assert_eq!(redirect.html, None);

        let expired = Reply::of(Decision::Expired);
        assert_eq!(
            (expired.status, expired.html.as_deref()),
            (410, Some(pages::EXPIRED))
        );
        let disabled = Reply::of(Decision::Disabled);
        assert_eq!(
            (disabled.status, disabled.html.as_deref()),
            (404, Some(pages::NOT_FOUND))
        );
        let password = Reply::of(Decision::Password);
        assert_eq!(password.status, 401);
        assert_eq!(
            password.html.as_deref(),
            Some(pages::password_form(PasswordProblem::None).as_str())
        );
        let fallback = Reply::of(Decision::Fallback {
            location: "https://later.example/",
        });
        assert_eq!(fallback.status, 302);
        assert_eq!(fallback.header("location"), Some("https://later.example/"));
        assert_eq!(fallback.header("cache-control"), Some("private, no-store"));
        // Pages are never stored: a link made after its 404, or unlocked, shows at once.
        for page in [expired, disabled, password, Reply::unavailable(3)] {
            assert_eq!(page.header("cache-control"), Some("no-store"), "{page:?}");
        }
        assert_eq!(Reply::unavailable(3).header("retry-after"), Some("3"));
        let limited = Reply::rate_limited(10);
        assert_eq!(limited.status, 429);
        assert_eq!(limited.header("retry-after"), Some("10"));
        assert_eq!(limited.header("cache-control"), Some("no-store"));
        assert_eq!(limited.html.as_deref(), Some(pages::RATE_LIMITED));
    }

    #[test]
    fn a_preview_is_kept_briefly_by_the_browser_only_and_not_indexed() {
        let preview = Reply::preview(
            "https://kurz.example/abc",
            &Preview::Destination {
                url: Cow::Borrowed("https://example.com/"),
                varies: false,
            },
        );
        assert_eq!(preview.status, 200);
        assert_eq!(preview.header("cache-control"), Some("private, max-age=60"));
        assert_eq!(preview.header("x-robots-tag"), Some("noindex"));
        assert!(
            preview
                .html
                .is_some_and(|html| html.contains("https://example.com/"))
        );
    }
}
