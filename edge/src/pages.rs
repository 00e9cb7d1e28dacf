//! The few HTML pages a visitor can get from the edge instead of a redirect.

macro_rules! page {
    ($title:literal, $text:literal) => {
        concat!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width\"><title>",
            $title,
            "</title><body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\"><h1>",
            $title,
            "</h1><p>",
            $text,
            "</p></body></html>"
        )
    };
}

pub const NOT_FOUND: &str = page!(
    "Link not found",
    "There is no short link at this address. Check it for typos."
);
pub const EXPIRED: &str = page!(
    "Link expired",
    "This short link has expired and no longer leads anywhere."
);
pub const UNAVAILABLE: &str = page!(
    "Try again shortly",
    "This link cannot be looked up right now. Please retry in a few seconds."
);
