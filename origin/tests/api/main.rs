//! Integration tests of the origin against a real PostgreSQL: one test binary, a fresh
//! database per test (see `support::spawn_app`).

mod analytics;
mod dashboard;
mod edge;
mod edge_sync;
mod input;
mod links;
mod ready;
mod redirect;
mod support;
