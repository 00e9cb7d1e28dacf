//! The in-process redirect cache: code → link target, or "no such code".
//!
//! Unknown codes are cached too (for a shorter time), so a flood of random codes costs one
//! query per code per few seconds rather than one per request. Concurrent misses for the same
//! code share one query. This instance drops an entry whenever it changes the link; other
//! instances' changes show here after at most the TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use moka::Expiry;
use moka::future::Cache;
use shortlink::redirect::LinkRecord;

use crate::error::Error;

/// A cached link, with its `Location` header already built.
#[derive(Debug)]
pub(crate) struct CachedLink {
    pub(crate) record: LinkRecord,
    pub(crate) location: HeaderValue,
}

type Entry = Option<Arc<CachedLink>>;

#[derive(Debug, Clone)]
pub(crate) struct LinkCache {
    /// `None` when configured with capacity 0: every visit reads PostgreSQL.
    cache: Option<Cache<String, Entry>>,
}

impl LinkCache {
    pub(crate) fn new(capacity: u64, ttl: Duration, negative_ttl: Duration) -> Self {
        let cache = (capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .expire_after(Ttl { ttl, negative_ttl })
                .build()
        });
        Self { cache }
    }

    /// The cached entry for `code`, or what `load` finds (then cached). Errors are not cached.
    pub(crate) async fn get_or_load<F>(&self, code: &str, load: F) -> Result<Entry, Error>
    where
        F: Future<Output = Result<Option<LinkRecord>, Error>>,
    {
        let load = async {
            let record = load.await?;
            Ok(record.and_then(|record| {
                // A stored destination is a valid URL, hence a valid header value.
                let location = HeaderValue::from_str(record.destination.as_str()).ok()?;
                Some(Arc::new(CachedLink { record, location }))
            }))
        };
        let Some(cache) = &self.cache else {
            return load.await;
        };
        if let Some(entry) = cache.get(code).await {
            return Ok(entry);
        }
        cache
            .try_get_with(code.to_owned(), load)
            .await
            .map_err(|err: Arc<Error>| {
                Arc::try_unwrap(err).unwrap_or_else(|err| shared_error(&err))
            })
    }

    pub(crate) async fn invalidate(&self, code: &str) {
        if let Some(cache) = &self.cache {
            cache.invalidate(code).await;
        }
    }
}

/// Several waiters got the same failed load; each answers with its kind of failure.
fn shared_error(err: &Error) -> Error {
    match err {
        Error::Unavailable(_) => Error::Unavailable(sqlx::Error::PoolTimedOut),
        other => Error::Internal(anyhow::anyhow!("loading a link failed: {other}")),
    }
}

struct Ttl {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Expiry<String, Entry> for Ttl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(if value.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        })
    }
}
