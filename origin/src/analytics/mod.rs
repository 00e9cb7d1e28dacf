//! Click analytics: enrichment, storage, counting into rollups, the stats API, the origin's
//! own click recorder, and retention.

pub(crate) mod closed_days;
pub(crate) mod enrich;
pub(crate) mod export;
pub(crate) mod isolate;
pub(crate) mod overflow;
pub(crate) mod range;
pub(crate) mod recorder;
pub(crate) mod retention;
pub(crate) mod rollup;
pub(crate) mod stats;
pub(crate) mod store;
pub(crate) mod tags;
pub(crate) mod top_links;
