//! `kurz`: a command-line client of the kurz API, for scripts.

fn main() {}
