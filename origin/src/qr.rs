//! QR codes of short links: `GET /api/v1/links/{code}/qr.svg` and `qr.png?size=`.
//!
//! The code holds the short URL with `?qr=1`, so scans are counted apart from clicks.
//!
//! A PNG of up to 2048 px takes tens of milliseconds of CPU to encode: that runs on the
//! blocking pool, never on the threads that answer requests, and at most one per CPU at a
//! time; a request finding every CPU taken gets a 503 at once rather than a place in a queue
//! that a burst could grow without bound.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use qrcode::QrCode;
use serde::Deserialize;

use shortlink::workspace::Permission;

use crate::caller::Caller;
use crate::error::Error;
use crate::extract::{ApiQuery, CodePath};
use crate::links::store;

const DEFAULT_PNG_SIZE: u32 = 512;
const MAX_PNG_SIZE: u32 = 2048;

pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
        .route("/links/{code}/qr.svg", get(svg))
        .route("/links/{code}/qr.png", get(png))
}

#[utoipa::path(
    get, path = "/api/v1/links/{code}/qr.svg", tag = "links",
    params(("code" = shortlink::ShortCode, Path, description = "The link's short code.")),
    responses((status = 200, description = "The link's QR code.", content_type = "image/svg+xml", body = String), crate::openapi::Refusals),
)]
async fn svg(
    state: State<crate::State>,
    caller: Caller,
    code: CodePath,
) -> Result<Response, Error> {
    let qr = encode(&state, &caller, &code).await?;
    let image = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build();
    Ok(download(&code, "svg", "image/svg+xml", image.into_bytes()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PngQuery {
    size: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/v1/links/{code}/qr.png", tag = "links",
    params(("code" = shortlink::ShortCode, Path, description = "The link's short code."), ("size" = Option<u32>, Query, description = "Width and height in pixels.")),
    responses((status = 200, description = "The link's QR code.", content_type = "image/png", body = Vec<u8>), crate::openapi::Refusals),
)]
async fn png(
    state: State<crate::State>,
    caller: Caller,
    code: CodePath,
    ApiQuery(query): ApiQuery<PngQuery>,
) -> Result<Response, Error> {
    let size = png_size(&query)?;
    let qr = encode(&state, &caller, &code).await?;
    let permit = state
        .inner
        .gate
        .qr_encoders
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::Busy)?;
    let bytes = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        render_png(&qr, size)
    })
    .await
    .map_err(|err| Error::Internal(err.into()))??;
    Ok(download(&code, "png", "image/png", bytes))
}

/// The PNG's size in pixels: as asked, within bounds.
fn png_size(query: &PngQuery) -> Result<u32, Error> {
    let size = query.size.unwrap_or(DEFAULT_PNG_SIZE);
    if !(64..=MAX_PNG_SIZE).contains(&size) {
        return Err(Error::invalid(
            "size",
            format!("size must be between 64 and {MAX_PNG_SIZE} pixels"),
        ));
    }
    Ok(size)
}

fn render_png(qr: &QrCode, size: u32) -> Result<Vec<u8>, Error> {
    let image = qr
        .render::<image::Luma<u8>>()
        .min_dimensions(size, size)
        .quiet_zone(true)
        .build();
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|err| Error::Internal(err.into()))?;
    Ok(bytes.into_inner())
}

/// The QR code of a live link's short URL, for a caller who may read the link.
async fn encode(
    State(state): &State<crate::State>,
    caller: &Caller,
    CodePath(code): &CodePath,
) -> Result<QrCode, Error> {
    let workspace = caller.may(Permission::ReadLinks)?;
    store::find_id(state.db(), workspace, code).await?;
    let url = format!("{}?qr=1", state.inner.public_url.short_url(code.as_str()));
    QrCode::new(url.as_bytes()).map_err(|err| Error::Internal(err.into()))
}

fn download(
    CodePath(code): &CodePath,
    extension: &str,
    mime: &'static str,
    body: Vec<u8>,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{code}-qr.{extension}\""),
            ),
            (header::CACHE_CONTROL, "private, max-age=300".to_owned()),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::extract::parse_query;

    fn size_of(query: &str) -> Result<u32, Option<String>> {
        parse_query::<PngQuery>(query)
            .and_then(|query| png_size(&query))
            .map_err(|err| match err {
                Error::InvalidInput { field, .. } => field,
                other => panic!("{query}: not a refusal naming a field: {other:?}"),
            })
    }

    #[test]
    fn sizes() {
        let cases: [(&str, Result<u32, Option<&str>>); 9] = [
            ("", Ok(DEFAULT_PNG_SIZE)),
            ("size=64", Ok(64)),
            ("size=2048", Ok(2048)),
            ("size=63", Err(Some("size"))),
            ("size=2049", Err(Some("size"))),
            ("size=-1", Err(Some("size"))),
            ("size=big", Err(Some("size"))),
            ("size=99999999999", Err(Some("size"))),
            ("colour=red", Err(Some("colour"))),
        ];
        for (query, expected) in cases {
            assert_eq!(
                size_of(query),
                expected.map_err(|field| field.map(str::to_owned)),
                "{query}"
            );
        }
    }

    fn any_query_text() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0u32..4096).prop_map(|n| n.to_string()),
            any::<String>(),
        ];
        let key = prop_oneof![Just("size".to_owned()), any::<String>()];
        proptest::collection::vec((key, value), 0..4).prop_map(|pairs| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        })
    }

    proptest! {
        /// Any query string gives a size within bounds or a refusal naming a field.
        #[test]
        fn no_query_panics(query in any_query_text()) {
            match size_of(&query) {
                Ok(size) => prop_assert!((64..=MAX_PNG_SIZE).contains(&size)),
                Err(field) => prop_assert!(field.is_some(), "{query}: no field"),
            }
        }
    }
}
