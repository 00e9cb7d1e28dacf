//! Webhooks (issue #15): endpoints a workspace subscribes to link events, and the delivery of
//! those events to them, signed as the Standard Webhooks specification says.
//!
//! The design, in the order a message travels:
//!
//! 1. **Outbox** (`events.rs`): a link change writes one `webhook_deliveries` row per enabled
//!    endpoint of the workspace subscribed to the event, in the transaction of the change. A
//!    change that rolls back sends nothing; one that commits is sent even if the origin dies
//!    right after. Clicks take a detour (`clicks.rs`): stored with the click in
//!    `webhook_clicks_pending`, they become `link.clicked` messages of up to 1,000 clicks, all
//!    a workspace has waiting in one batch every 5 s.
//! 2. **Claim** (`deliver.rs`): a background task on each origin takes due rows with
//!    `FOR UPDATE SKIP LOCKED` and a lease (`locked_until`), so origins share the work, and
//!    only rows with no older pending message about the same link to the same endpoint, so a
//!    link's messages arrive in order.
//! 3. **Sign and send**: `webhook-id` (the row's `message_id`, the same on every attempt),
//!    `webhook-timestamp`, `webhook-signature` by the endpoint's secret; POSTed without
//!    redirects, proxies, or private addresses.
//! 4. **Schedule**: a 2xx marks it delivered; anything else records the attempt and schedules
//!    the next by the back-off table (27.6 h in all), then the message has failed. An endpoint
//!    answering 410, or failing for a day, is switched off with its reason.
//!
//! The API (`api.rs`) manages endpoints and shows the delivery log; it calls
//! [`events::test_event`], [`deliver::redeliver`] and [`wake`].

pub(crate) mod api;
pub(crate) mod clicks;
pub(crate) mod deliver;
pub(crate) mod events;

use tokio::sync::Notify;

use crate::config::WebhookConfig;

/// What the webhook tasks of one origin share: held by the state.
#[derive(Debug)]
pub(crate) struct Webhooks {
    pub(crate) config: WebhookConfig,
    /// Woken after a commit that wrote messages, so delivery starts at once rather than at
    /// the next poll.
    pub(crate) wake: Notify,
    /// Which workspaces want `link.clicked`, read again every few seconds.
    pub(crate) clicked: clicks::Subscribers,
}

impl Webhooks {
    pub(crate) fn new(config: &WebhookConfig) -> Self {
        Self {
            config: config.clone(),
            wake: Notify::new(),
            clicked: clicks::Subscribers::default(),
        }
    }
}

/// Starts delivering at once what was committed just now (a link change, a test event, a
/// redelivery); without it, within the deliverer's poll (a second).
pub(crate) fn wake(state: &crate::State) {
    state.inner.webhooks.wake.notify_one();
}
