//! (being written)

pub(crate) fn routes() -> axum::Router<crate::State> {
    axum::Router::new()
}

/// Routes that need no credentials (an invitation's token is the credential).
pub(crate) fn public_routes() -> axum::Router<crate::State> {
    axum::Router::new()
}
