//! Webhooks' wire types: the endpoints a workspace subscribes to events, and the log of the
//! messages sent to them (`/api/v1/webhooks`).
//!
//! Like every body in this crate, a value that exists is valid: a [`WebhookUrl`] is an absolute
//! http(s) URL within bounds, an [`Events`] list is 1 to 5 distinct events a person may
//! subscribe to. Whether the URL may be reached from this deployment (its own hosts, private
//! networks) is the origin's check, since only it knows the deployment.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Destination, Error};

/// Longest endpoint URL, in bytes once normalised (the `webhook_endpoints.url` check).
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;

/// Longest endpoint description, in characters (the `webhook_endpoints.description` check).
pub const MAX_DESCRIPTION_LEN: usize = 500;

/// How many endpoints one workspace may have: each one multiplies every change's messages.
pub const MAX_WEBHOOKS_PER_WORKSPACE: usize = 20;

/// What a message announces: its `type` in the body and the delivery log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventType {
    #[serde(rename = "link.created")]
    LinkCreated,
    #[serde(rename = "link.updated")]
    LinkUpdated,
    #[serde(rename = "link.deleted")]
    LinkDeleted,
    /// Clicks, in batches: at most one message per endpoint every few seconds.
    #[serde(rename = "link.clicked")]
    LinkClicked,
    /// A link took its last allowed click (`max_clicks`).
    #[serde(rename = "link.limit_reached")]
    LinkLimitReached,
    /// "Send a test event" from the API or the dashboard. Every endpoint gets it on request;
    /// nobody can subscribe to it ([`Events`] refuses it).
    #[serde(rename = "webhook.test")]
    Test,
}

impl EventType {
    /// The events an endpoint can subscribe to, in the order lists show them.
    pub const ALL: [Self; 5] = [
        Self::LinkCreated,
        Self::LinkUpdated,
        Self::LinkDeleted,
        Self::LinkClicked,
        Self::LinkLimitReached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinkCreated => "link.created",
            Self::LinkUpdated => "link.updated",
            Self::LinkDeleted => "link.deleted",
            Self::LinkClicked => "link.clicked",
            Self::LinkLimitReached => "link.limit_reached",
            Self::Test => "webhook.test",
        }
    }

    /// The event of a stored name (the test event included), as [`Self::as_str`] wrote it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Self::Test])
            .find(|event| event.as_str() == name)
    }

    /// Whether an endpoint may subscribe to it (every event but the test event).
    pub fn is_subscribable(self) -> bool {
        self != Self::Test
    }
}

/// The events an endpoint is subscribed to: 1 to [`EventType::ALL`]'s length, each once, never
/// the test event; kept in [`EventType::ALL`]'s order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<EventType>", into = "Vec<EventType>")]
pub struct Events(Vec<EventType>);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Events {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(EventType::ALL.map(EventType::as_str))),
            )
            .min_items(Some(1))
            .max_items(Some(EventType::ALL.len()))
            .unique_items(true)
            .description(Some("The events the endpoint gets, each once."))
            .into()
    }
}
#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Events {}

impl Events {
    pub fn parse(events: Vec<EventType>) -> Result<Self, Error> {
        if events.is_empty() {
            return Err(Error::Empty { what: "events" });
        }
        if let Some(test) = events.iter().find(|event| !event.is_subscribable()) {
            return Err(Error::WebhookEvent {
                event: test.as_str(),
                reason: "cannot be subscribed to (it is sent on request only)",
            });
        }
        let mut sorted = events;
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Error::WebhookEvent {
                event: pair[0].as_str(),
                reason: "is listed twice",
            });
        }
        // Distinct subscribable events: at most `ALL.len()` of them, so no length check.
        Ok(Self(sorted))
    }

    /// Every subscribable event.
    pub fn all() -> Self {
        Self(EventType::ALL.to_vec())
    }

    pub fn as_slice(&self) -> &[EventType] {
        &self.0
    }

    pub fn contains(&self, event: EventType) -> bool {
        self.0.contains(&event)
    }
}

impl TryFrom<Vec<EventType>> for Events {
    type Error = Error;
    fn try_from(events: Vec<EventType>) -> Result<Self, Error> {
        Self::parse(events)
    }
}

impl From<Events> for Vec<EventType> {
    fn from(events: Events) -> Self {
        events.0
    }
}

/// Where an endpoint's messages go: an absolute http(s) URL with a host, no user name or
/// password (they would be stored and shown like any part of it; a receiver checks the
/// signature instead), no fragment (never sent to a server) and at most
/// [`MAX_WEBHOOK_URL_LEN`] bytes, normalised as a [`Destination`] is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl(Destination);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    WebhookUrl,
    crate::openapi::text_example(
        "An absolute http or https URL with a host, no user-info and no fragment.",
        (1, MAX_WEBHOOK_URL_LEN),
        Some("^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\\s]+[^#]*$"),
        "https://hooks.example.com/kurz",
    )
);

impl WebhookUrl {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let url_error = |reason: String| Error::WebhookUrl { reason };
        let destination = Destination::parse(input).map_err(|err| {
            url_error(match err {
                Error::DestinationUnparsable { reason } => reason,
                Error::DestinationScheme { scheme } => {
                    format!("it must use http or https, not {scheme:?}")
                }
                Error::DestinationNoHost => "it has no host".to_owned(),
                Error::DestinationUserInfo => "it contains a user name or password".to_owned(),
                Error::DestinationTooLong { len, .. } => format!("it is {len} bytes long"),
                other => other.to_string(),
            })
        })?;
        let normalised = destination.as_str();
        if normalised.len() > MAX_WEBHOOK_URL_LEN {
            return Err(url_error(format!("it is {} bytes long", normalised.len())));
        }
        if normalised.contains('#') {
            return Err(url_error("it has a fragment (#...)".to_owned()));
        }
        Ok(Self(destination))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL as a destination, for the checks links share: `Destination::points_to_any`
    /// (this deployment's own hosts) and its host.
    pub fn as_destination(&self) -> &Destination {
        &self.0
    }
}

impl TryFrom<String> for WebhookUrl {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(&value)
    }
}

impl From<WebhookUrl> for String {
    fn from(value: WebhookUrl) -> Self {
        value.0.into()
    }
}

/// What an endpoint is for, for the people who manage it: at most [`MAX_DESCRIPTION_LEN`]
/// characters, trimmed; line breaks and tabs allowed, other control characters not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Description(String);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    Description,
    crate::openapi::text("What the endpoint is for.", (0, MAX_DESCRIPTION_LEN), None)
);

impl Description {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let input = input.trim();
        let len = input.chars().count();
        if len > MAX_DESCRIPTION_LEN {
            return Err(Error::TooLong {
                what: "description",
                max: MAX_DESCRIPTION_LEN,
                len,
            });
        }
        if input
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(Error::ControlCharacter {
                what: "description",
            });
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<String> for Description {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(&value)
    }
}

impl From<Description> for String {
    fn from(value: Description) -> Self {
        value.0
    }
}

/// `POST /api/v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    pub url: WebhookUrl,
    #[serde(default, skip_serializing_if = "Description::is_empty")]
    pub description: Description,
    pub events: Events,
}

/// `PATCH /api/v1/webhooks/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<WebhookUrl>,
    /// `""` removes the description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    /// Replaces the subscribed events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Events>,
    /// `false` stops deliveries (messages are no longer written for it); `true` switches the
    /// endpoint on again, also after kurz switched it off, and forgets why and since when it
    /// was failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl UpdateWebhook {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An endpoint as the API shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: i64,
    pub url: WebhookUrl,
    #[serde(default)]
    pub description: Description,
    pub events: Events,
    pub enabled: bool,
    /// Why kurz switched it off (the receiver answered 410, or it failed for a day); absent
    /// when it is on or a person switched it off.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// The first failed attempt since the last success: failing for 24 h switches it off.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The answer to `POST /api/v1/webhooks` and `POST /api/v1/webhooks/{id}/rotate-secret`: the
/// only time the signing secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` and base64: the key of the Standard Webhooks signature
    /// (`webhook-signature`), for the receiver's verifying library.
    pub secret: String,
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet: waiting for its first or next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the receiver kept failing through every retry (over 24 h). A message of an
    /// endpoint that is switched off stays pending until it is switched on again.
    Failed,
}

impl DeliveryState {
    pub const ALL: [Self; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The state of a stored name, as [`Self::as_str`] wrote it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }
}

/// One message to one endpoint, as its delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    pub id: i64,
    /// The `webhook-id` header, the same on every attempt and redelivery: receivers drop
    /// repeats by it.
    pub message_id: String,
    pub event_type: EventType,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The receiver's status code at the last attempt; absent when none came (timeout,
    /// connection refused) or no attempt was made yet.
    #[serde(default)]
    pub last_status: Option<u16>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// When the next attempt is due; absent unless `pending`.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The receiver's status code; absent when none came (timeout, connection refused).
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
    pub duration_ms: u32,
}

/// `GET /api/v1/webhooks/{id}/deliveries/{delivery}`: the delivery, what it sends, and each
/// attempt, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryDetail {
    pub delivery: WebhookDelivery,
    /// The body sent: `{"type", "timestamp", "data"}`.
    pub payload: serde_json::Value,
    pub attempts: Vec<DeliveryAttempt>,
}

/// One page of `GET /api/v1/webhooks/{id}/deliveries`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryPage {
    pub deliveries: Vec<WebhookDelivery>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// From a previous page's `next_cursor` (with the same `state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Deliveries per page: 1 to 100, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Only deliveries in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub state: Option<DeliveryState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_round_trip() {
        for event in EventType::ALL.into_iter().chain([EventType::Test]) {
            let json = serde_json::to_string(&event).expect("serialises");
            assert_eq!(json, format!("\"{}\"", event.as_str()));
            assert_eq!(EventType::parse(event.as_str()), Some(event));
            assert_eq!(
                serde_json::from_str::<EventType>(&json).expect("parses"),
                event
            );
        }
        assert_eq!(EventType::parse("link.exploded"), None);
        assert!(!EventType::Test.is_subscribable());
        assert!(EventType::ALL.into_iter().all(EventType::is_subscribable));
    }

    #[test]
    fn events_take_distinct_subscribable_events() {
        let events: Events =
            serde_json::from_str(r#"["link.deleted","link.created"]"#).expect("valid");
        // Kept in the order of `EventType::ALL`, whatever order they came in.
        assert_eq!(
            events.as_slice(),
            [EventType::LinkCreated, EventType::LinkDeleted]
        );
        let all = serde_json::to_string(&Events::all()).expect("serialises");
        assert_eq!(
            serde_json::from_str::<Events>(&all).expect("valid"),
            Events::all()
        );

        let cases = [
            ("[]", "events must not be empty"),
            (r#"["link.created","link.created"]"#, "listed twice"),
            (r#"["webhook.test"]"#, "cannot be subscribed"),
            (r#"["link.exploded"]"#, "unknown variant `link.exploded`"),
            (r#""link.created""#, "a sequence"),
        ];
        for (input, mentions) in cases {
            let err = serde_json::from_str::<Events>(input).expect_err(input);
            assert!(err.to_string().contains(mentions), "{input}: {err}");
        }
    }

    #[test]
    fn webhook_urls() {
        let taken = [
            (
                "https://hooks.example.com/kurz",
                "https://hooks.example.com/kurz",
            ),
            (
                "HTTPS://Hooks.Example.COM:443/a?b=c",
                "https://hooks.example.com/a?b=c",
            ),
            ("http://10.0.0.5:8080/in", "http://10.0.0.5:8080/in"),
            ("  http://localhost:3000  ", "http://localhost:3000/"),
        ];
        for (input, normalised) in taken {
            let url = WebhookUrl::parse(input).expect(input);
            assert_eq!(url.as_str(), normalised);
            assert_eq!(url.as_destination().as_str(), normalised);
        }

        let long = format!("https://a.example/{}", "x".repeat(MAX_WEBHOOK_URL_LEN));
        let refused = [
            ("hooks.example.com/kurz", "relative URL"),
            ("ftp://hooks.example.com/", "not \"ftp\""),
            (
                "https://user:pw@hooks.example.com/",
                "user name or password",
            ),
            ("https://hooks.example.com/#frag", "fragment"),
            (long.as_str(), "bytes long"),
            ("", "relative URL"),
        ];
        for (input, mentions) in refused {
            let err = WebhookUrl::parse(input).expect_err(input);
            assert!(matches!(err, Error::WebhookUrl { .. }), "{input}: {err:?}");
            assert!(err.to_string().contains(mentions), "{input}: {err}");
            assert!(err.to_string().starts_with("url "), "{input}: {err}");
        }
    }

    #[test]
    fn descriptions() {
        let taken = [
            ("  Slack relay ", "Slack relay"),
            ("two\nlines", "two\nlines"),
            ("", ""),
        ];
        for (input, kept) in taken {
            assert_eq!(Description::parse(input).expect(input).as_str(), kept);
        }
        let at_most = "é".repeat(MAX_DESCRIPTION_LEN);
        assert!(Description::parse(&at_most).is_ok());
        let over = format!("{at_most}x");
        let refused = [
            (over.as_str(), "at most 500 characters"),
            ("bell\u{7}", "control characters"),
        ];
        for (input, mentions) in refused {
            let err = Description::parse(input).expect_err(input);
            assert!(err.to_string().contains(mentions), "{input}: {err}");
        }
    }

    #[test]
    fn create_and_update_bodies() {
        let create: CreateWebhook = serde_json::from_str(
            r#"{"url":"https://hooks.example.com/k","events":["link.clicked"]}"#,
        )
        .expect("valid");
        assert!(create.description.is_empty());
        assert_eq!(create.events.as_slice(), [EventType::LinkClicked]);

        let cases = [
            (r#"{"events":["link.created"]}"#, "missing field `url`"),
            (r#"{"url":"https://h.example/"}"#, "missing field `events`"),
            (
                r#"{"url":"https://h.example/","events":["link.created"],"secret":"x"}"#,
                "unknown field `secret`",
            ),
            (
                r#"{"url":"https://h.example/","events":[]}"#,
                "events must not be empty",
            ),
        ];
        for (input, mentions) in cases {
            let err = serde_json::from_str::<CreateWebhook>(input).expect_err(input);
            assert!(err.to_string().contains(mentions), "{input}: {err}");
        }

        let empty: UpdateWebhook = serde_json::from_str("{}").expect("valid");
        assert!(empty.is_empty());
        let enable: UpdateWebhook = serde_json::from_str(r#"{"enabled":true}"#).expect("valid");
        assert_eq!(enable.enabled, Some(true));
        let err = serde_json::from_str::<UpdateWebhook>(r#"{"enabeld":true}"#).expect_err("typo");
        assert!(err.to_string().contains("enabeld"), "{err}");
    }

    #[test]
    fn created_webhook_shows_the_secret_beside_the_webhook() {
        let webhook = Webhook {
            id: 7,
            url: WebhookUrl::parse("https://h.example/in").expect("valid"),
            description: Description::default(),
            events: Events::all(),
            enabled: true,
            disabled_reason: None,
            disabled_at: None,
            failing_since: None,
            last_success_at: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&webhook).expect("serialises");
        assert!(json.get("secret").is_none());
        let created = CreatedWebhook {
            webhook,
            secret: "whsec_c2VjcmV0".to_owned(),
        };
        let json = serde_json::to_value(&created).expect("serialises");
        assert_eq!(json["secret"], "whsec_c2VjcmV0");
        assert_eq!(json["id"], 7);
        let back: CreatedWebhook = serde_json::from_value(json).expect("parses");
        assert_eq!(back, created);
    }

    #[test]
    fn delivery_states_round_trip() {
        for state in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(state.as_str()), Some(state));
            let json = serde_json::to_string(&state).expect("serialises");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert_eq!(DeliveryState::parse("lost"), None);
    }
}
