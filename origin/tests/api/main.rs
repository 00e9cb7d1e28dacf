//! Integration tests of the origin against a real PostgreSQL: one test binary, a fresh
//! database per test (see `support::spawn_app`).

mod abuse;
mod analytics;
mod audit;
mod bulk;
mod cli;
mod conditional;
mod dashboard;
mod edge;
mod edge_sync;
mod first_start;
mod gateway;
mod input;
mod invalidation;
mod invitations;
mod isolation;
mod keys;
mod limits;
mod links;
mod members;
mod metrics;
mod migration;
mod openapi;
mod preview;
mod profile;
mod rate_limits;
mod ready;
mod recorder;
mod redirect;
mod rules_api;
mod rules_redirect;
mod sign_in;
mod support;
mod webhooks;
mod webhook_delivery;
mod workspaces;
