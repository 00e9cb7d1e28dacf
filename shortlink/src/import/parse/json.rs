//! JSON documents of records (Shlink's and Kutt's APIs): one page as the API answers it, an
//! array of records (pages put together), or several of either one after the other (pages
//! saved one after another by a script).
//!
//! A page is `{"data": [...]}` (Kutt) or `{"shortUrls": {"data": [...]}}` (Shlink); every other
//! key (pagination, totals) is skipped without being kept. Records are read straight into
//! their source's small struct, never into a `serde_json::Value` tree, so a 100 MiB file does
//! not take several times that in memory.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, Deserializer};

use super::{FileError, Format, MAX_ROWS};

/// What a serde error says when the file holds more records than the caller takes.
const TOO_MANY: &str = "more records than an import takes";

/// Every record of every document in `text`, in order; more than `max` is
/// [`FileError::TooManyRows`], found as the one too many is read.
pub(super) fn records<T: DeserializeOwned>(
    text: &str,
    format: Format,
    max: usize,
) -> Result<Vec<T>, FileError> {
    let mut all = Vec::new();
    let mut documents = serde_json::Deserializer::from_str(text);
    // One document after the other until only whitespace is left (`end` reads none of a
    // document: it stops at its first character).
    while documents.end().is_err() {
        Records {
            into: &mut all,
            max,
        }
        .deserialize(&mut documents)
        .map_err(|e| file_error(&e, format, max))?;
    }
    Ok(all)
}

fn file_error(e: &serde_json::Error, format: Format, max: usize) -> FileError {
    if e.to_string().starts_with(TOO_MANY) {
        return FileError::TooManyRows { max };
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

/// Reads the records of one document (see the module's documentation for the shapes) into
/// `into`, which holds at most `max`.
struct Records<'a, T> {
    into: &'a mut Vec<T>,
    max: usize,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Records<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Records<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an array of records, or a page {"data": [...]}"#)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element()? {
            if self.into.len() >= self.max {
                return Err(de::Error::custom(TOO_MANY));
            }
            self.into.push(record);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if matches!(key.as_str(), "data" | "shortUrls") && !found {
                map.next_value_seed(Records {
                    into: &mut *self.into,
                    max: self.max,
                })?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        match found {
            true => Ok(()),
            false => Err(de::Error::custom(r#"no "data" array of records"#)),
        }
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
    let mut probes = Vec::new();
    Records::<Probe> {
        into: &mut probes,
        max: MAX_ROWS,
    }
    .deserialize(&mut serde_json::Deserializer::from_str(text))
    .ok()?;
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
        records::<Item>(text, Format::KuttJson, MAX_ROWS)
            .map(|items| items.iter().map(|i| i.n).collect())
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
