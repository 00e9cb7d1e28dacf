//! The HTML pages a visitor can get instead of a redirect, the same from the edge and the
//! origin: not found, gone, unavailable, too many requests, the password form, and a link's
//! preview (`/{code}+`) with what it shows ([`preview_of`]).

use std::borrow::Cow;

use time::OffsetDateTime;

use crate::agent;
use crate::redirect::{Decision, LinkRecord, Visit, decide};

macro_rules! page {
    ($title:literal, $text:literal) => {
        concat!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width\"><title>",
            $title,
            "</title><body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\"><main><h1>",
            $title,
            "</h1><p>",
            $text,
            "</p></main></body></html>"
        )
    };
}

/// 404: no link at this address, or a disabled one.
pub const NOT_FOUND: &str = page!(
    "Link not found",
    "There is no short link at this address. Check it for typos."
);
/// 410: expired, or its clicks are used up.
pub const EXPIRED: &str = page!(
    "Link expired",
    "This short link has expired and no longer leads anywhere."
);
/// 503: the link cannot be looked up now.
pub const UNAVAILABLE: &str = page!(
    "Try again shortly",
    "This link cannot be looked up right now. Please retry in a few seconds."
);

/// 429: a visitor's address sent more requests than its limit allows.
pub const RATE_LIMITED: &str = page!(
    "Too many requests",
    "Too many requests came from your network. Please wait a few seconds and try again."
);

/// What a link's preview shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preview<'a> {
    /// Where the link goes (its UTM parameters merged), and whether some visitors are sent
    /// elsewhere (targeting rules or an A/B split: this is then the default destination).
    Destination { url: Cow<'a, str>, varies: bool },
    /// The link asks for a password: where it goes is not shown.
    Protected,
}

/// What `/{code}+` answers for `link` at `now`: its preview, or, when a visit would not be
/// sent to the link's destinations (disabled, expired, used up: to the fallback if it has
/// one), that visit's decision, answered as the visit is. `clicks_in_flight` as in [`Visit`].
/// No visitor data goes in: the preview shows the default destination of a targeted link,
/// and a protected link stays protected even for a visitor holding its unlock cookie.
pub fn preview_of(
    link: &LinkRecord,
    now: OffsetDateTime,
    clicks_in_flight: u64,
) -> Result<Preview<'_>, Decision<'_>> {
    let visit = Visit {
        now,
        country: None,
        agent: agent::classify(None),
        accept_language: None,
        query: None,
        visitor: None,
        unlocked: false,
        clicks_in_flight,
    };
    match decide(link, &visit) {
        Decision::Password => Ok(Preview::Protected),
        Decision::Redirect { .. } => {
            let rules = link.rules();
            Ok(Preview::Destination {
                url: rules.utm.apply(link.destination.as_str()),
                varies: !rules.targets.is_empty() || !rules.split.is_empty(),
            })
        }
        other => Err(other),
    }
}

/// The preview page of `short_url`: the destination as text and as a link that sends no
/// referrer, or that the link is protected. Everything from the link is HTML-escaped.
pub fn preview(short_url: &str, preview: &Preview<'_>) -> String {
    let short = escape(short_url);
    let body = match preview {
        Preview::Destination { url, varies } => {
            let url = escape(url);
            let varies = if *varies {
                "<p>Some visitors are sent elsewhere (by their country, device, language or an A/B test): this is the link's main destination.</p>"
            } else {
                ""
            };
            format!(
                "<p>This short link leads to:</p><p style=\"overflow-wrap:anywhere\"><a href=\"{url}\" rel=\"noopener noreferrer\">{url}</a></p>{varies}"
            )
        }
        Preview::Protected => {
            "<p>This link is protected by a password: where it leads is shown only to those who know it.</p>"
                .to_owned()
        }
    };
    format!(
        concat!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width\">",
            "<meta name=\"robots\" content=\"noindex\"><title>Where this link goes</title>",
            "<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\">",
            "<main><h1>Where this link goes</h1><p><code style=\"overflow-wrap:anywhere\">{short}</code></p>",
            "{body}</main></body></html>"
        ),
        short = short,
        body = body
    )
}

/// Text made safe for HTML, in element content and in a quoted attribute. By slices rather
/// than characters: it is in the edge's .wasm.
pub fn escape(text: &str) -> Cow<'_, str> {
    let special = ['&', '<', '>', '"', '\''];
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(special) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        });
        rest = &rest[at + 1..];
    }
    if out.is_empty() {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Why the password form is shown again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    /// First visit: no message.
    None,
    Wrong,
    /// Too many wrong answers; try again after this many seconds.
    TooMany {
        retry_after_secs: u64,
    },
}

/// The form that asks for a link's password. It posts to the page's own address (the short
/// link), so the password travels only in a POST body. Labelled, keyboard-first, and the error
/// is announced to screen readers.
pub fn password_form(problem: PasswordProblem) -> String {
    let error = match problem {
        PasswordProblem::None => String::new(),
        PasswordProblem::Wrong => {
            "<p id=\"error\" role=\"alert\" style=\"color:#b00020\">That password is not right. Please try again.</p>"
                .to_owned()
        }
        PasswordProblem::TooMany { retry_after_secs } => format!(
            "<p id=\"error\" role=\"alert\" style=\"color:#b00020\">Too many wrong answers. Please wait {} and try again.</p>",
            wait_text(retry_after_secs)
        ),
    };
    let described = if error.is_empty() {
        ""
    } else {
        " aria-describedby=\"error\" aria-invalid=\"true\""
    };
    format!(
        concat!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width\">",
            "<meta name=\"robots\" content=\"noindex\"><title>Password required</title>",
            "<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\">",
            "<main><h1>Password required</h1><p>This link is protected. Enter its password to continue.</p>",
            "{error}<form method=\"post\">",
            "<label for=\"password\" style=\"display:block;margin-bottom:.25rem\">Password</label>",
            "<input id=\"password\" name=\"password\" type=\"password\" required autofocus ",
            // In UTF-16 units, as browsers count: a password of 200 characters may take 400.
            "autocomplete=\"current-password\" maxlength=\"400\"{described} ",
            "style=\"font:inherit;padding:.5rem;width:100%;box-sizing:border-box\">",
            "<button type=\"submit\" style=\"font:inherit;margin-top:.75rem;padding:.5rem 1rem\">Continue</button>",
            "</form></main></body></html>"
        ),
        error = error,
        described = described
    )
}

fn wait_text(secs: u64) -> String {
    if secs <= 60 {
        "a minute".to_owned()
    } else {
        format!("{} minutes", secs.div_ceil(60))
    }
}

/// The `password` field of a posted form (`application/x-www-form-urlencoded`), decoded.
pub fn posted_password(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(name, _)| name == "password")
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_form_is_labelled_and_says_what_went_wrong() {
        let first = password_form(PasswordProblem::None);
        assert!(first.contains("<label for=\"password\""));
        assert!(first.contains("method=\"post\""));
        assert!(!first.contains("role=\"alert\""));
        let wrong = password_form(PasswordProblem::Wrong);
        assert!(wrong.contains("role=\"alert\"") && wrong.contains("aria-describedby=\"error\""));
        let many = password_form(PasswordProblem::TooMany {
            retry_after_secs: 290,
        });
        assert!(many.contains("wait 5 minutes"), "{many}");
        assert_eq!(
            posted_password(b"password=p%40ss+word&x=1").as_deref(),
            Some("p@ss word")
        );
        assert_eq!(posted_password(b"x=1"), None);
    }

    fn record(destination: &str, rules: &str) -> LinkRecord {
        let rules: crate::redirect::Rules = serde_json::from_str(rules).expect("valid rules");
        LinkRecord::new(
            7,
            1,
            crate::Destination::parse(destination).expect("valid"),
            crate::RedirectStatus::Found,
            None,
        )
        .with_rules(rules)
    }

    #[test]
    fn a_preview_shows_the_default_destination_or_answers_as_the_visit() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        fn shows(link: &LinkRecord) -> Result<Preview<'_>, Decision<'_>> {
            preview_of(
                link,
                OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
                0,
            )
        }
        let plain = record("https://example.com/a", "{}");
        assert_eq!(
            shows(&plain),
            Ok(Preview::Destination {
                url: Cow::Borrowed("https://example.com/a"),
                varies: false
            })
        );
        // UTM is merged as the redirect merges it; targeting and a split say it varies.
        let utm = record("https://example.com/a", r#"{"utm":{"source":"news"}}"#);
        assert_eq!(
            shows(&utm),
            Ok(Preview::Destination {
                url: Cow::Owned("https://example.com/a?utm_source=news".to_owned()),
                varies: false
            })
        );
        let targeted = record(
            "https://example.com/a",
            r#"{"targets":[{"when":{"os":["ios"]},"destination":"https://apple.example/"}]}"#,
        );
        assert!(matches!(
            shows(&targeted),
            Ok(Preview::Destination { ref url, varies: true }) if url == "https://example.com/a"
        ));
        let split = record(
            "https://example.com/a",
            r#"{"split":[{"destination":"https://b.example/","weight":50},{"destination":"https://c.example/","weight":50}]}"#,
        );
        assert!(matches!(
            shows(&split),
            Ok(Preview::Destination { varies: true, .. })
        ));
        // A password hides the destination; disabled, expired and used up answer as a visit.
        let hash = crate::password::PasswordHash::new(
            &crate::password::LinkPassword::parse("secret words").expect("valid"),
            [1; 16],
        );
        let locked = plain.with_rules(crate::redirect::Rules {
            password: Some(hash),
            ..crate::redirect::Rules::default()
        });
        assert_eq!(shows(&locked), Ok(Preview::Protected));
        let disabled = record("https://example.com/a", r#"{"disabled":true}"#);
        assert_eq!(shows(&disabled), Err(Decision::Disabled));
        let expired = LinkRecord {
            expires_at: Some(now),
            ..record(
                "https://example.com/a",
                r#"{"fallback":"https://later.example/"}"#,
            )
        };
        assert_eq!(
            shows(&expired),
            Err(Decision::Fallback {
                location: "https://later.example/"
            })
        );
        let limited = record("https://example.com/a", r#"{"max_clicks":3,"clicks":2}"#);
        assert!(shows(&limited).is_ok());
        assert_eq!(preview_of(&limited, now, 1), Err(Decision::Expired));
    }

    #[test]
    fn the_preview_page_escapes_what_the_link_holds() {
        let page = preview(
            "https://kurz.example/a<b>",
            &Preview::Destination {
                url: Cow::Borrowed("https://example.com/?x=\"y\"&z=<1>'"),
                varies: false,
            },
        );
        assert!(page.contains(
            "<a href=\"https://example.com/?x=&quot;y&quot;&amp;z=&lt;1&gt;&#39;\" rel=\"noopener noreferrer\">"
        ), "{page}");
        assert!(page.contains("https://kurz.example/a&lt;b&gt;"));
        assert!(!page.contains("<1>") && !page.contains("Some visitors"));
        assert!(page.contains("<meta name=\"robots\" content=\"noindex\">"));
        let varies = preview(
            "https://kurz.example/a",
            &Preview::Destination {
                url: Cow::Borrowed("https://example.com/"),
                varies: true,
            },
        );
        assert!(varies.contains("Some visitors are sent elsewhere"));
        let protected = preview("https://kurz.example/a", &Preview::Protected);
        assert!(protected.contains("protected by a password") && !protected.contains("<a "));
    }
}
