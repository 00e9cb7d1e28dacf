//! Domain and wire types shared by every kurz process.
//!
//! A value of a type from this crate is valid by construction: a [`ShortCode`] or a
//! [`Destination`] that exists has passed every rule, and deserialising one runs the same rules,
//! so no process can accept an invalid value from another. The crate does no I/O and has no
//! clock and no randomness: callers pass the time and the keys in, which keeps it usable on the
//! edge (wasm32), in the origin and in the admin UI alike.

pub mod abuse;
pub mod agent;
pub mod api;
mod bounded;
mod code;
mod destination;
pub mod edge;
mod error;
pub mod import;
#[cfg(feature = "openapi")]
mod openapi;
pub mod pages;
pub mod password;
pub mod query;
pub mod redirect;
pub mod rules;
mod scramble;
pub mod signature;
pub mod spreadsheet;
pub mod stats;
mod status;
pub mod timestamp;
pub mod visitor;
pub mod webhook;
pub mod workspace;

pub use code::{EXAMPLE_CODE, RESERVED_CODES, ShortCode};
pub use destination::{Destination, HostKey};
pub use error::Error;
pub use scramble::{CodeScrambler, GENERATED_CODE_LEN};
pub use status::RedirectStatus;
