//! One module per screen of the dashboard.

pub mod link_form;
pub mod link_stats;
pub mod links;
pub mod overview;
pub mod sign_in;
pub mod stats_view;
