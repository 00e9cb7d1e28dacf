//! The floor of a Rust worker: the workers-rs glue (request in, response out) around a
//! constant 302. `cargo xtask bench` serves it beside kurz's worker, so the edge's own cost
//! per request can be told apart from the cost of being a Rust worker at all.

use worker::{Context, Env, Headers, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let headers = Headers::new();
    headers.set("location", "https://example.com/")?;
    headers.set("cache-control", "private, no-store")?;
    Ok(Response::empty()?.with_status(302).with_headers(headers))
}
