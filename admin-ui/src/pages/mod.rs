//! One module per screen of the dashboard.

pub mod abuse;
pub mod audit;
pub mod import;
pub mod invite;
pub mod keys;
pub mod link_form;
pub mod link_rules;
pub mod link_stats;
pub mod links;
pub mod members;
pub mod overview;
pub mod profile;
pub mod sign_in;
pub mod stats_view;
pub mod webhooks;
pub mod workspaces;
