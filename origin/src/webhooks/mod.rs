//! Webhooks (issue #15): endpoints a workspace subscribes to link events, and the delivery of
//! those events to them, signed as the Standard Webhooks specification says.
//!
//! The design, in the order a message travels:
//!
//! 1. **Outbox** (`events.rs`): a link change writes one `webhook_deliveries` row per enabled,
//!    subscribed endpoint, in the transaction of the change. A change that rolls back sends
//!    nothing; one that commits is sent even if the origin dies right after.
//! 2. **Claim** (`deliver.rs`): a background task takes due rows with `FOR UPDATE SKIP
//!    LOCKED` and a lease (`locked_until`), so several origins share the work, never sending
//!    a message concurrently with another origin.
//! 3. **Sign and send**: each message is signed with its endpoint's secret and POSTed.
//! 4. **Schedule**: a 2xx marks it delivered; anything else records the attempt and schedules
//!    the next by the back-off table, until it fails for good.
//!
//! The API (`api.rs`) manages endpoints and shows the delivery log.

pub(crate) mod api;
pub(crate) mod clicks;
pub(crate) mod deliver;
pub(crate) mod events;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::WebhookConfig;

/// What the webhook tasks of one origin share: held by the state.
#[derive(Debug)]
pub(crate) struct Webhooks {
    pub(crate) config: WebhookConfig,
    /// Woken after a commit that wrote messages, so delivery starts at once rather than at
    /// the next poll.
    pub(crate) wake: Arc<Notify>,
    /// Which workspaces want `link.clicked`, read again every few seconds.
    pub(crate) clicked: clicks::Subscribers,
}

impl Webhooks {
    pub(crate) fn new(config: &WebhookConfig) -> Self {
        Self {
            config: config.clone(),
            wake: Arc::default(),
            clicked: clicks::Subscribers::default(),
        }
    }
}

/// Starts delivering at once what was committed just now (a link change, a test event, a
/// redelivery); without it, within the deliverer's poll (a second).
pub(crate) fn wake(state: &crate::State) {
    state.inner.webhooks.wake.notify_one();
}
