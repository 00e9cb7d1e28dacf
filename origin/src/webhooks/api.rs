//! The webhook API (H5).
