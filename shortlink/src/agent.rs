//! What a user agent says about its visitor: the device, the operating system, and whether a
//! program rather than a person made the request.
//!
//! One classification for everything: the analytics break clicks down by it, targeting rules
//! match on it, and bots do not use up a link's clicks. It looks for well-known words in the
//! header rather than parsing it, so it is small enough for the edge's .wasm.

use serde::{Deserialize, Serialize};

/// The kind of device a visit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    Other,
}

impl Device {
    pub const ALL: [Self; 5] = [
        Self::Desktop,
        Self::Mobile,
        Self::Tablet,
        Self::Bot,
        Self::Other,
    ];

    /// The name in the API and in the analytics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Desktop => "desktop",
            Self::Mobile => "mobile",
            Self::Tablet => "tablet",
            Self::Bot => "bot",
            Self::Other => "other",
        }
    }
}

/// An operating system, by family (versions would split a chart into slivers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Windows,
    #[serde(rename = "macos")]
    MacOs,
    #[serde(rename = "ios")]
    Ios,
    Android,
    #[serde(rename = "chromeos")]
    ChromeOs,
    Linux,
    Other,
}

impl Os {
    pub const ALL: [Self; 7] = [
        Self::Windows,
        Self::MacOs,
        Self::Ios,
        Self::Android,
        Self::ChromeOs,
        Self::Linux,
        Self::Other,
    ];

    /// The name the analytics show.
    pub fn label(self) -> &'static str {
        match self {
            Self::Windows => "Windows",
            Self::MacOs => "macOS",
            Self::Ios => "iOS",
            Self::Android => "Android",
            Self::ChromeOs => "ChromeOS",
            Self::Linux => "Linux",
            Self::Other => "Other",
        }
    }

    /// The name in the API (`"macos"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Windows => "windows",
            Self::MacOs => "macos",
            Self::Ios => "ios",
            Self::Android => "android",
            Self::ChromeOs => "chromeos",
            Self::Linux => "linux",
            Self::Other => "other",
        }
    }
}

/// What one user agent was classified as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agent {
    pub device: Device,
    pub os: Os,
    /// A crawler, a link preview, a headless browser or an HTTP library (or no user agent at
    /// all): its visits are not a person's, and do not use up a link's clicks.
    pub bot: bool,
}

/// Agents that fetch links without a person behind them: crawlers, link-preview fetchers of
/// chat apps and social networks, headless browsers and HTTP libraries. Matched
/// case-insensitively anywhere in the user agent.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "whatsapp",
    "preview",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "embedly",
    "iframely",
    "vkshare",
    // Not "pinterest" or "snapchat": their apps' own browsers say so, and people open links
    // in them (their fetchers say "bot" as well: `Pinterest/0.2 (+…/bot.html)`, `Snap URL
    // Preview Service; bot`).
    "mastodon",
    "cardyb",
    "google-inspectiontool",
    "googleother",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "okhttp",
    "node-fetch",
    "axios/",
    "java/",
    "libwww-perl",
    "httpclient",
    "postmanruntime",
];

/// Classifies a `User-Agent` header (absent or blank: a bot, since every browser sends one).
pub fn classify(user_agent: Option<&str>) -> Agent {
    let Some(agent) = user_agent.map(str::trim).filter(|agent| !agent.is_empty()) else {
        return Agent {
            device: Device::Bot,
            os: Os::Other,
            bot: true,
        };
    };
    let lower = agent.to_ascii_lowercase();
    let has = |word: &str| lower.contains(word);
    let os = if has("windows") {
        Os::Windows
    } else if has("iphone") || has("ipad") || has("ipod") {
        Os::Ios
    } else if has(" cros ") {
        // "X11; CrOS x86_64": the bare letters are also in "microsoft" and "macros".
        Os::ChromeOs
    } else if has("android") {
        Os::Android
    } else if has("macintosh") || has("mac os x") {
        Os::MacOs
    } else if has("linux") || has("x11") {
        Os::Linux
    } else {
        Os::Other
    };
    let bot = BOT_MARKERS.iter().any(|&marker| {
        if marker == "bot" {
            // Not the phone maker CUBOT ("CUBOT_X30"): every other "bot" is a robot.
            lower
                .match_indices("bot")
                .any(|(at, _)| !lower[..at].ends_with("cu"))
        } else {
            has(marker)
        }
    });
    let device = if bot {
        Device::Bot
    } else {
        match os {
            Os::Ios if has("ipad") => Device::Tablet,
            Os::Ios => Device::Mobile,
            Os::Android if has("mobile") => Device::Mobile,
            Os::Android => Device::Tablet,
            _ if has("tablet") => Device::Tablet,
            _ if has("mobile") => Device::Mobile,
            Os::Windows | Os::MacOs | Os::Linux | Os::ChromeOs => Device::Desktop,
            Os::Other => Device::Other,
        }
    };
    Agent { device, os, bot }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real user agents. The origin's analytics tests run a longer table through the same
    /// function (`origin/src/analytics/enrich.rs`).
    #[test]
    fn user_agents() {
        use Device::*;
        let cases: &[(&str, Device, Os, bool)] = &[
            // People in the apps' own browsers; the apps' fetchers.
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/12.62.0.37 (like Safari/8617.1.17.10.5, panda)",
                Mobile,
                Os::Ios,
                false,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/118.0.5993.111 Mobile Safari/537.36 [Pinterest/Android]",
                Mobile,
                Os::Android,
                false,
            ),
            (
                "Mozilla/5.0 (compatible; Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots)",
                Bot,
                Os::Other,
                true,
            ),
            (
                "Pinterest/0.2 (+https://www.pinterest.com/bot.html)",
                Bot,
                Os::Other,
                true,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                Desktop,
                Os::Windows,
                false,
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                Desktop,
                Os::MacOs,
                false,
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                Desktop,
                Os::ChromeOs,
                false,
            ),
            (
                "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                Desktop,
                Os::Linux,
                false,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                Mobile,
                Os::Ios,
                false,
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                Tablet,
                Os::Ios,
                false,
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
                Mobile,
                Os::Android,
                false,
            ),
            (
                "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
                Mobile,
                Os::Android,
                false,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                Tablet,
                Os::Android,
                false,
            ),
            (
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                Bot,
                Os::Other,
                true,
            ),
            ("WhatsApp/2.23.20.0 A", Bot, Os::Other, true),
            ("curl/8.5.0", Bot, Os::Other, true),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
                Bot,
                Os::MacOs,
                true,
            ),
            (
                "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)",
                Other,
                Os::Other,
                false,
            ),
            ("", Bot, Os::Other, true),
            (
                "Mozilla/5.0 (Linux; Android 12; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
                Mobile,
                Os::Android,
                false,
            ),
            (
                "Microsoft Office/16.0 (Macintosh; Mac OS X 10.15.7; Microsoft Outlook 16.89.1224.0; Pro)",
                Desktop,
                Os::MacOs,
                false,
            ),
        ];
        for &(agent, device, os, bot) in cases {
            assert_eq!(classify(Some(agent)), Agent { device, os, bot }, "{agent}");
        }
        assert!(classify(None).bot);
    }
}
