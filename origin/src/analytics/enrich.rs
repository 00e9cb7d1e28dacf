//! What a click says about its visitor, derived at ingest: device, OS and whether a bot or a
//! link preview made it (`shortlink::agent::classify`, the one classification that targeting
//! and the click limit use too), the browser's name (woothee), and the referrer's host.

use std::sync::LazyLock;

use shortlink::agent::{Device, classify};

/// The referrer bucket of visits without a (usable) referrer.
pub(crate) const DIRECT: &str = "direct";
/// The bucket of anything a parser could not name.
pub(crate) const OTHER: &str = "Other";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Enriched {
    pub(crate) device: Device,
    pub(crate) browser: String,
    /// The OS family's name as the analytics show it (`macOS`).
    pub(crate) os: &'static str,
    pub(crate) referrer_host: String,
    pub(crate) bot: bool,
}

static PARSER: LazyLock<woothee::parser::Parser> = LazyLock::new(woothee::parser::Parser::new);

/// Enriches one click. `head`: a `HEAD` request, which only link checkers make: a bot's.
pub(crate) fn enrich(user_agent: Option<&str>, referrer: Option<&str>, head: bool) -> Enriched {
    let referrer_host = referrer_host(referrer);
    let agent = classify(user_agent);
    let bot = agent.bot || head;
    let browser = user_agent
        .map(str::trim)
        .filter(|agent| !agent.is_empty())
        .and_then(|agent| PARSER.parse(agent))
        .map_or(OTHER, |parsed| browser_name(parsed.name));
    Enriched {
        device: if bot { Device::Bot } else { agent.device },
        browser: browser.to_owned(),
        os: agent.os.label(),
        referrer_host,
        bot,
    }
}

fn browser_name(name: &str) -> &str {
    match name {
        "UNKNOWN" | "" => OTHER,
        "Webview" => "WebView",
        other => other,
    }
}

/// The referrer's host without `www.`, lower case; `direct` when there is none.
pub(crate) fn referrer_host(referrer: Option<&str>) -> String {
    referrer
        .and_then(|referrer| url::Url::parse(referrer.trim()).ok())
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
        .map(|host| host.strip_prefix("www.").map(str::to_owned).unwrap_or(host))
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| DIRECT.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        agent: &'static str,
        device: Device,
        browser: &'static str,
        os: &'static str,
        bot: bool,
    }

    const fn case(
        agent: &'static str,
        device: Device,
        browser: &'static str,
        os: &'static str,
        bot: bool,
    ) -> Case {
        Case {
            agent,
            device,
            browser,
            os,
            bot,
        }
    }

    use Device::{Bot, Desktop, Mobile, Other as OtherDevice, Tablet};

    /// Real user agents, as sent by browsers, apps and bots.
    const CASES: &[Case] = &[
        // Desktop browsers
        case(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            Desktop,
            "Chrome",
            "Windows",
            false,
        ),
        case(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            Desktop,
            "Firefox",
            "Windows",
            false,
        ),
        case(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            Desktop,
            "Edge",
            "Windows",
            false,
        ),
        case(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            Desktop,
            "Safari",
            "macOS",
            false,
        ),
        case(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            Desktop,
            "Chrome",
            "macOS",
            false,
        ),
        case(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:132.0) Gecko/20100101 Firefox/132.0",
            Desktop,
            "Firefox",
            "macOS",
            false,
        ),
        case(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
            Desktop,
            "Chrome",
            "Linux",
            false,
        ),
        case(
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            Desktop,
            "Firefox",
            "Linux",
            false,
        ),
        case(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 OPR/115.0.0.0",
            Desktop,
            "Opera",
            "Windows",
            false,
        ),
        case(
            "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
            Desktop,
            "Internet Explorer",
            "Windows",
            false,
        ),
        case(
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            Desktop,
            "Chrome",
            "ChromeOS",
            false,
        ),
        // Phones
        case(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            Mobile,
            "Safari",
            "iOS",
            false,
        ),
        case(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
            Mobile,
            "Chrome",
            "iOS",
            false,
        ),
        case(
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            Mobile,
            "Chrome",
            "Android",
            false,
        ),
        case(
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
            Mobile,
            "SamsungBrowser",
            "Android",
            false,
        ),
        case(
            "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
            Mobile,
            "Firefox",
            "Android",
            false,
        ),
        case(
            "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.107 Mobile Safari/537.36 Instagram 355.0.0.34.91 Android",
            Mobile,
            "WebView",
            "Android",
            false,
        ),
        // Tablets
        case(
            "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            Tablet,
            "Safari",
            "iOS",
            false,
        ),
        case(
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            Tablet,
            "Chrome",
            "Android",
            false,
        ),
        // Crawlers and link previews
        case(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            Bot,
            "Googlebot",
            "Other",
            true,
        ),
        case(
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            Bot,
            "Bingbot",
            "Other",
            true,
        ),
        case(
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            Bot,
            "Other",
            "Other",
            true,
        ),
        case("Twitterbot/1.0", Bot, "Other", "Other", true),
        case(
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            Bot,
            "Other",
            "Other",
            true,
        ),
        case("WhatsApp/2.23.20.0 A", Bot, "Other", "Other", true),
        case(
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            Bot,
            "Other",
            "Other",
            true,
        ),
        case("TelegramBot (like TwitterBot)", Bot, "Other", "Other", true),
        case(
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
            Bot,
            "Other",
            "Other",
            true,
        ),
        case(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
            Bot,
            "Chrome",
            "macOS",
            true,
        ),
        case(
            "Mozilla/5.0 (compatible; Applebot/0.1; +http://www.apple.com/go/applebot)",
            Bot,
            "Other",
            "Other",
            true,
        ),
        case(
            "Mastodon/4.3.1 (http.rb/5.2.0; +https://mastodon.social/) Bot",
            Bot,
            "Other",
            "Other",
            true,
        ),
        case("curl/8.5.0", Bot, "Other", "Other", true),
        case("python-requests/2.32.3", Bot, "Other", "Other", true),
        case("Go-http-client/2.0", Bot, "Other", "Other", true),
        // Neither
        case(
            "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)",
            OtherDevice,
            "Other",
            "Other",
            false,
        ),
    ];

    #[test]
    fn user_agents() {
        let mut failures = Vec::new();
        for case in CASES {
            let got = enrich(Some(case.agent), None, false);
            let want = (case.device, case.browser, case.os, case.bot);
            let have = (got.device, got.browser.as_str(), got.os, got.bot);
            // Crawlers' "browser" is whatever woothee calls the crawler; only bot-ness matters.
            let matches = if case.bot {
                (have.0, have.3) == (want.0, want.3)
            } else {
                have == want
            };
            if !matches {
                failures.push(format!("{}\n  want {want:?}\n  have {have:?}", case.agent));
            }
        }
        assert!(CASES.len() >= 30);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn head_requests_and_missing_agents_are_bots() {
        let chrome = CASES[0].agent;
        assert!(enrich(Some(chrome), None, true).bot);
        assert!(enrich(None, None, false).bot);
        assert!(enrich(Some("  "), None, false).bot);
    }

    #[test]
    fn referrers() {
        let cases = [
            (None, "direct"),
            (Some(""), "direct"),
            (Some("not a url"), "direct"),
            (Some("https://www.Google.com/search?q=kurz"), "google.com"),
            (
                Some("https://news.ycombinator.com/item?id=1"),
                "news.ycombinator.com",
            ),
            (
                Some("android-app://com.google.android.gm/"),
                "com.google.android.gm",
            ),
            (Some("http://t.co/abc"), "t.co"),
        ];
        for (referrer, host) in cases {
            assert_eq!(referrer_host(referrer), host, "{referrer:?}");
        }
    }
}
