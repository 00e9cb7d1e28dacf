//! Lists read from a request with a bound: reading stops keeping items at the bound, so a
//! list costs memory by what it may hold, not by what a body of the size limit can carry (a
//! 4 MiB body holds a million one-letter tags). The items past the bound are still read, as
//! nothing, to tell how many were sent.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};

/// A list of at most `max` items; a longer one is refused with `too_many(its length)`.
pub(crate) fn at_most<'de, D, T, M>(
    deserializer: D,
    max: usize,
    too_many: M,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
    M: Fn(usize) -> String,
{
    deserializer.deserialize_seq(AtMost {
        max,
        keep: |kept: &mut Vec<T>, item: T| {
            if kept.len() == max {
                return false;
            }
            kept.push(item);
            true
        },
        too_many,
        item: PhantomData,
    })
}

/// A list of at most `max` distinct items, each kept once (in the order first sent); one with
/// more is refused with `too_many(its length, repeats included)`.
pub(crate) fn at_most_distinct<'de, D, T, M>(
    deserializer: D,
    max: usize,
    too_many: M,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialEq,
    M: Fn(usize) -> String,
{
    deserializer.deserialize_seq(AtMost {
        max,
        keep: |kept: &mut Vec<T>, item: T| {
            if kept.contains(&item) {
                return true;
            }
            if kept.len() == max {
                return false;
            }
            kept.push(item);
            true
        },
        too_many,
        item: PhantomData,
    })
}

struct AtMost<K, M, T> {
    max: usize,
    /// Keeps an item (or drops a repeat): `false` when it is one too many.
    keep: K,
    too_many: M,
    item: PhantomData<T>,
}

impl<'de, K, M, T> Visitor<'de> for AtMost<K, M, T>
where
    K: Fn(&mut Vec<T>, T) -> bool,
    M: Fn(usize) -> String,
    T: Deserialize<'de>,
{
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {} items", self.max)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut kept = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        let mut sent = 0;
        while let Some(item) = seq.next_element()? {
            sent += 1;
            if !(self.keep)(&mut kept, item) {
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    sent += 1;
                }
                return Err(de::Error::custom((self.too_many)(sent)));
            }
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str, distinct: bool) -> Result<Vec<String>, String> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let too_many = |len| format!("at most 3, got {len}");
        let read = if distinct {
            at_most_distinct(&mut deserializer, 3, too_many)
        } else {
            at_most(&mut deserializer, 3, too_many)
        };
        read.map_err(|err| err.to_string())
    }

    #[test]
    fn keeps_up_to_the_bound_and_counts_what_was_sent() {
        // The JSON, whether repeats are kept once, and the items or (part of) the error.
        type Case = (&'static str, bool, Result<Vec<&'static str>, &'static str>);
        let cases: [Case; 8] = [
            (r#"[]"#, false, Ok(vec![])),
            (r#"["a","b","c"]"#, false, Ok(vec!["a", "b", "c"])),
            (r#"["a","a","a"]"#, false, Ok(vec!["a", "a", "a"])),
            (r#"["a","b","c","d","e"]"#, false, Err("at most 3, got 5")),
            (
                r#"["a","a","b","a","c","b"]"#,
                true,
                Ok(vec!["a", "b", "c"]),
            ),
            (r#"["a","b","c","d",1,{}]"#, true, Err("at most 3, got 6")),
            (r#"["a","b","c","d""#, true, Err("EOF while parsing")),
            (
                r#""a""#,
                false,
                Err("invalid type: string \"a\", expected a list"),
            ),
        ];
        for (json, distinct, expected) in cases {
            let got = read(json, distinct);
            match expected {
                Ok(items) => assert_eq!(
                    got,
                    Ok(items.iter().map(|s| s.to_string()).collect()),
                    "{json}"
                ),
                Err(message) => {
                    let got = got.expect_err(json);
                    assert!(got.contains(message), "{json}: {got}");
                }
            }
        }
    }

    /// A million repeats of one tag keep one: what is kept stays within the bound.
    #[test]
    fn repeats_cost_nothing_to_keep() {
        let json = format!("[{}\"a\"]", "\"a\",".repeat(1_000_000));
        assert_eq!(read(&json, true), Ok(vec!["a".to_owned()]));
    }
}
