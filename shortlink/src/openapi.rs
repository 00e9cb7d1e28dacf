//! OpenAPI schemas of the validated values (`ShortCode`, `Destination`, a tag, ...), for the
//! origin's `/api/v1/openapi.json` (the `openapi` feature).
//!
//! Bodies derive `utoipa::ToSchema`; these values deserialise through `try_from`, which the
//! derive cannot see, so each states its rules here from the same constants its parser uses.
//! A client (or a fuzzer) reading the document then makes values the API takes.

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};

/// A string of `min..=max` characters, matching `pattern` when given.
pub(crate) fn text(
    description: &str,
    (min, max): (usize, usize),
    pattern: Option<&str>,
) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(pattern)
        .into()
}

/// [`text`] with an example value: a client (or the fuzzer's examples) tries it first.
pub(crate) fn text_example(
    description: &str,
    range: (usize, usize),
    pattern: Option<&str>,
    example: &str,
) -> RefOr<Schema> {
    match text(description, range, pattern) {
        RefOr::T(Schema::Object(object)) => {
            let mut object = object;
            object.examples = vec![example.into()];
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
}

/// An integer in `min..=max`.
pub(crate) fn integer(description: &str, min: u64, max: u64) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .description(Some(description))
        .minimum(Some(min))
        .maximum(Some(max))
        .into()
}

/// One of the given integers.
pub(crate) fn one_of_integers(description: &str, values: &[u16]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some(description))
        .enum_values(Some(values.iter().copied()))
        .into()
}

/// `impl ToSchema` for a validated value whose schema is `$schema` (an expression).
macro_rules! schema {
    ($type:ty, $schema:expr) => {
        impl utoipa::PartialSchema for $type {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema
            }
        }
        impl utoipa::ToSchema for $type {}
    };
}
pub(crate) use schema;
