//! Click analytics: enrichment, storage with rollups, the stats API, the origin's own click
//! recorder, and retention.

pub(crate) mod enrich;
pub(crate) mod recorder;
pub(crate) mod retention;
pub(crate) mod stats;
pub(crate) mod store;
