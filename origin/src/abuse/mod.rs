//! Abuse protection: the destination blocklist (`blocklist.rs`: checked on every link create
//! and edit, and swept over existing links when a rule is added) and visitors' reports
//! (`reports.rs`: the public `/report` form and the admins' list), and the takedowns a
//! report's resolution makes (`takedown.rs`: a link the operator disabled stays disabled).
//!
//! All are deployment-wide: only the operator workspace's admins manage them
//! ([`crate::caller::Caller::may_operate`]).

pub(crate) mod blocklist;
pub(crate) mod reports;
pub(crate) mod takedown;

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

    /// The keys a reporter's address is counted under: IPv6 by its /64 (one host can use any
    /// address of it), no address at all as one shared key; and its wider network's.
    pub(crate) fn reporter(&self, ip: Option<std::net::IpAddr>) -> reports::Reporter {
        let key = |text: &str| -> [u8; 32] {
            self.reporter_key
                .clone()
                .chain_update(text.as_bytes())
                .finalize()
                .into_bytes()
                .into()
        };
        let address = ip.map_or_else(|| "unknown".to_owned(), shortlink::password::network_text);
        reports::Reporter {
            key: key(&address),
            network: key(&ip.map_or_else(|| "unknown".to_owned(), wider_network)),
        }
    }
}

/// The network one subscriber or site usually holds, as text: an IPv6 address's /48, an
/// IPv4 address's /24 (`network …` keeps it apart from a reporter's own key).
fn wider_network(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let network = std::net::Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 48));
            format!("network {network}/48")
        }
        std::net::IpAddr::V4(v4) => {
            let network = std::net::Ipv4Addr::from(u32::from(v4) & !(u32::MAX >> 24));
            format!("network {network}/24")
        }
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
    blocklist::routes()
        .merge(reports::routes())
        .merge(takedown::routes())
}
