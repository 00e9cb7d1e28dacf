//! `/health` (the process answers) and `/ready` (it can serve: database reachable, migrated).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::db;

pub(crate) async fn health(State(state): State<crate::State>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "clicks_shed": state.clicks_shed(),
        "clicks_details_shed": state.clicks_details_shed(),
        "clicks_overflow_waiting": state.clicks_overflow_waiting().0,
        "clicks_parked": state.clicks_parked(),
        "clicks_in_doubt": state.clicks_in_doubt(),
        "read_replica": state.reads().replica_health(),
    }))
}

pub(crate) async fn ready(State(state): State<crate::State>) -> (StatusCode, Json<Value>) {
    match db::check_ready(&state.inner.db, &state.inner.migrated).await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        ),
    }
}
