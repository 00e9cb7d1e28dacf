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
pub(crate) mod deliver;
pub(crate) mod events;
