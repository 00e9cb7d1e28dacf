//! JSON documents of records (Shlink's and Kutt's APIs): one page as the API answers it, an
//! array of records (pages put together), or several of either one after the other (pages
//! saved one after another by a script).
//!
//! A page is `{"data": [...]}` (Kutt) or `{"shortUrls": {"data": [...]}}` (Shlink); every other
//! key (pagination, totals) is skipped without being kept. Records are read straight into
//! their source's small struct, never into a `serde_json::Value` tree, so a 100 MiB file does
//! not take several times that in memory.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{FileError, Format, MAX_ROWS};

/// What a serde error says when the file holds more than [`MAX_ROWS`] records.
const TOO_MANY: &str = "more records than an import takes";

/// Every record of every document in `text`, in order.
pub(super) fn records<T: DeserializeOwned>(
    text: &str,
    format: Format,
) -> Result<Vec<T>, FileError> {
    let mut all = Vec::new();
    for document in serde_json::Deserializer::from_str(text).into_iter::<Records<T>>() {
        let Records(mut records) = document.map_err(|e| file_error(&e, format))?;
        if all.len() + records.len() > MAX_ROWS {
            return Err(FileError::TooManyRows);
        }
        all.append(&mut records);
    }
    Ok(all)
}

fn file_error(e: &serde_json::Error, format: Format) -> FileError {
    if e.to_string().starts_with(TOO_MANY) {
        return FileError::TooManyRows;
    }
    if e.is_syntax() || e.is_eof() {
        return FileError::Syntax {
            line: e.line() as u64,
            message: format!("not valid JSON: {e}"),
        };
    }
    FileError::NotThisFormat {
        format: format.name(),
        expected: format!("line {}: {e}", e.line()),
    }
}

/// The records of one document (see the module's documentation for the shapes).
struct Records<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Records<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RecordsVisitor(PhantomData))
    }
}

struct RecordsVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for RecordsVisitor<T> {
    type Value = Records<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an array of records, or a page {"data": [...]}"#)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::new();
        while let Some(record) = seq.next_element()? {
            if records.len() >= MAX_ROWS {
                return Err(de::Error::custom(TOO_MANY));
            }
            records.push(record);
        }
        Ok(Records(records))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if matches!(key.as_str(), "data" | "shortUrls") && found.is_none() {
                found = Some(map.next_value::<Records<T>>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        found.ok_or_else(|| de::Error::custom(r#"no "data" array of records"#))
    }
}

/// Which source's records the first document holds, by a field only that source has.
pub(super) fn detect(text: &str) -> Option<Format> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "shortCode")]
        short_code: Option<IgnoredAny>,
        address: Option<IgnoredAny>,
    }
    let mut documents = serde_json::Deserializer::from_str(text).into_iter::<Records<Probe>>();
    let Records(probes) = documents.next()?.ok()?;
    let first = probes.first()?;
    if first.short_code.is_some() {
        Some(Format::ShlinkJson)
    } else if first.address.is_some() {
        Some(Format::KuttJson)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Item {
        n: u8,
    }

    fn numbers(text: &str) -> Result<Vec<u8>, FileError> {
        records::<Item>(text, Format::KuttJson).map(|items| items.iter().map(|i| i.n).collect())
    }

    #[test]
    fn every_shape_of_document() {
        assert_eq!(numbers(r#"[{"n":1},{"n":2}]"#), Ok(vec![1, 2]));
        assert_eq!(
            numbers(r#"{"total":2,"data":[{"n":1},{"n":2}],"skip":0}"#),
            Ok(vec![1, 2])
        );
        assert_eq!(
            numbers(r#"{"shortUrls":{"data":[{"n":1}],"pagination":{"pagesCount":2}}}"#),
            Ok(vec![1])
        );
        assert_eq!(
            numbers("{\"data\":[{\"n\":1}]}\n{\"data\":[{\"n\":2}]}\n[{\"n\":3}]"),
            Ok(vec![1, 2, 3])
        );
        assert_eq!(numbers("[]"), Ok(vec![]));
    }

    #[test]
    fn documents_refused() {
        let cases = [
            (r#"{"total":0}"#, "no \"data\""),
            (r#"[{"n":"one"}]"#, "invalid type"),
            (r#"[{"n":1},"#, "not valid JSON"),
            ("[1]", "invalid type"),
            ("\"x\"", "an array of records"),
        ];
        for (input, mentions) in cases {
            let err = numbers(input).expect_err(input);
            assert!(err.to_string().contains(mentions), "{input}: {err}");
        }
    }
}
