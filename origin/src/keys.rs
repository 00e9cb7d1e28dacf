//! (being written)

pub(crate) fn routes() -> axum::Router<crate::State> {
    axum::Router::new()
}
