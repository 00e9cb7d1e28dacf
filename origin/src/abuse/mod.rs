//! Abuse protection: the destination blocklist (`blocklist.rs`: checked on every link create
//! and edit, and swept over existing links when a rule is added) and visitors' reports
//! (`reports.rs`: the public `/report` form and the admins' list).
//!
//! Both are deployment-wide: only the operator workspace's admins manage them
//! ([`crate::caller::Caller::may_operate`]).

pub(crate) mod blocklist;
pub(crate) mod reports;

use std::sync::Arc;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::CodeKey;

/// What the abuse routes share, in the origin's state.
#[derive(Clone)]
pub(crate) struct Abuse {
    /// Keys reporters' addresses (HMAC-SHA256 under a subkey of the code key): the count per
    /// address holds across instances without the address being stored.
    reporter_key: Hmac<Sha256>,
    /// Reports being stored at once in this instance: a flood waits for none of the
    /// database's connections (it is refused at once beyond this).
    pub(crate) report_permits: Arc<tokio::sync::Semaphore>,
    /// Reporters' budgets in this instance's memory, checked before a permit is taken.
    pub(crate) recent: Arc<reports::RecentReporters>,
}

impl std::fmt::Debug for Abuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Abuse").finish_non_exhaustive()
    }
}

impl Abuse {
    pub(crate) fn new(code_key: &CodeKey) -> Self {
        let subkey = mac(code_key.bytes())
            .chain_update(b"kurz abuse reporter keys")
            .finalize()
            .into_bytes();
        Self {
            reporter_key: mac(&subkey),
            report_permits: Arc::new(tokio::sync::Semaphore::new(reports::AT_ONCE)),
            recent: Arc::new(reports::RecentReporters::new(reports::REPORTERS_KEPT)),
        }
    }

    /// The key a reporter's address is counted under: IPv6 by its /64 (one host can use any
    /// address of it), no address at all as one shared key.
    pub(crate) fn reporter(&self, ip: Option<std::net::IpAddr>) -> [u8; 32] {
        let text = ip.map_or_else(|| "unknown".to_owned(), shortlink::password::network_text);
        self.reporter_key
            .clone()
            .chain_update(text.as_bytes())
            .finalize()
            .into_bytes()
            .into()
    }
}

/// HMAC-SHA256 under `key` (at most a block; built from the block so it cannot fail).
fn mac(key: &[u8]) -> Hmac<Sha256> {
    let mut block = [0u8; 64];
    let len = key.len().min(block.len());
    block[..len].copy_from_slice(&key[..len]);
    <Hmac<Sha256> as KeyInit>::new(&block.into())
}

/// The routes of `/api/v1/abuse`, for the operator's admins.
pub(crate) fn routes() -> axum::Router<crate::State> {
    blocklist::routes().merge(reports::routes())
}
