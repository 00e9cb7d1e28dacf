//! The HTML pages a visitor can get instead of a redirect, the same from the edge and the
//! origin: not found, gone, unavailable, and the password form.

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
            "autocomplete=\"current-password\" maxlength=\"200\"{described} ",
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
}
