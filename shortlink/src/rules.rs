//! What a link can do beyond sending everyone to one destination: targeting rules, an A/B
//! split, UTM parameters, a click limit, a password, tags and a note. Each value here is
//! valid once it exists; deserialising one runs its rules.
//!
//! How the rules decide a visit is [`crate::redirect::decide`].

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};
use unicode_normalization::char::is_combining_mark;

use crate::agent::{Device, Os};
use crate::bounded;
use crate::{Destination, Error};

/// Most targeting rules a link may have.
pub const MAX_TARGETS: usize = 20;
/// Most values one condition may list.
pub const MAX_VALUES: usize = 50;
/// Most destinations of an A/B split.
pub const MAX_VARIANTS: usize = 10;
/// Most tags of a link.
pub const MAX_TAGS: usize = 20;
/// Longest tag, in characters.
pub const MAX_TAG_LEN: usize = 40;
/// Longest note, in characters.
pub const MAX_NOTE_LEN: usize = 2000;
/// The longest title a link may have, in characters (a page's `<title>` rarely passes 200).
pub const MAX_TITLE_LEN: usize = 500;
/// Longest UTM value, in characters.
pub const MAX_UTM_LEN: usize = 200;
/// The highest click limit.
pub const MAX_CLICK_LIMIT: u64 = 1_000_000_000_000;

/// An ISO 3166-1 alpha-2 country code, upper case (`DE`). Cloudflare's `cf.country` and the
/// origin's country header give the same form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Country(String);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    Country,
    crate::openapi::text(
        "An ISO 3166-1 alpha-2 country code (`DE`).",
        (2, 2),
        Some("^[A-Za-z]{2}$"),
    )
);

impl Country {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let code = input.trim();
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Self(code.to_ascii_uppercase()))
        } else {
            Err(Error::Country {
                found: input.chars().take(20).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a visitor's country (as the platform reports it) is this one.
    pub fn matches(&self, visitor: &str) -> bool {
        visitor.eq_ignore_ascii_case(&self.0)
    }
}

/// A language tag, lower case: a primary language (`de`) or one with subtags (`pt-br`).
/// `de` matches every German visitor (`de`, `de-at`); `pt-br` only Brazilian Portuguese.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(String);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    Language,
    crate::openapi::text(
        "A language tag (`de`, `pt-br`).",
        (2, 35),
        Some("^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"),
    )
);

impl Language {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let tag = input.trim().to_ascii_lowercase();
        let mut parts = tag.split('-');
        let primary_ok = parts.next().is_some_and(|p| {
            (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase())
        });
        let rest_ok = parts
            .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if primary_ok && rest_ok && tag.len() <= 35 {
            Ok(Self(tag))
        } else {
            Err(Error::Language {
                found: input.chars().take(40).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a visitor's language tag (any case) is this one or a narrower one.
    pub fn matches(&self, visitor: &str) -> bool {
        let visitor = visitor.as_bytes();
        let mine = self.0.as_bytes();
        visitor.len() >= mine.len()
            && visitor[..mine.len()].eq_ignore_ascii_case(mine)
            && (visitor.len() == mine.len() || visitor[mine.len()] == b'-')
    }
}

/// `query param = value`: the visit's query string has `param` with exactly `value`
/// (both compared after percent-decoding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QueryMatch {
    pub param: String,
    #[serde(default)]
    pub value: String,
}

/// What a targeting rule asks of a visit. A list matches when any of its values does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(
    rename_all = "snake_case",
    deny_unknown_fields,
    try_from = "RawCondition"
)]
pub enum Condition {
    Country(Vec<Country>),
    Device(Vec<Device>),
    Os(Vec<Os>),
    Language(Vec<Language>),
    Query(QueryMatch),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawCondition {
    Country(#[serde(deserialize_with = "countries")] Vec<Country>),
    Device(#[serde(deserialize_with = "devices")] Vec<Device>),
    Os(#[serde(deserialize_with = "systems")] Vec<Os>),
    Language(#[serde(deserialize_with = "languages")] Vec<Language>),
    Query(QueryMatch),
}

/// A condition's values, keeping at most [`MAX_VALUES`] at any moment.
fn values<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
    what: &'static str,
) -> Result<Vec<T>, D::Error> {
    bounded::at_most(deserializer, MAX_VALUES, |len| {
        too_many(what, MAX_VALUES, len)
    })
}

fn countries<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Country>, D::Error> {
    values(deserializer, COUNTRIES)
}

fn devices<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Device>, D::Error> {
    values(deserializer, DEVICES)
}

fn systems<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Os>, D::Error> {
    values(deserializer, SYSTEMS)
}

fn languages<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Language>, D::Error> {
    values(deserializer, LANGUAGES)
}

const COUNTRIES: &str = "a country condition";
const DEVICES: &str = "a device condition";
const SYSTEMS: &str = "an os condition";
const LANGUAGES: &str = "a language condition";

/// [`Error::TooMany`]'s message, for a list refused while it is read.
fn too_many(what: &'static str, max: usize, len: usize) -> String {
    Error::TooMany { what, max, len }.to_string()
}

impl TryFrom<RawCondition> for Condition {
    type Error = Error;

    fn try_from(raw: RawCondition) -> Result<Self, Error> {
        fn list<T>(what: &'static str, values: Vec<T>) -> Result<Vec<T>, Error> {
            if values.is_empty() {
                return Err(Error::Empty { what });
            }
            if values.len() > MAX_VALUES {
                return Err(Error::TooMany {
                    what,
                    max: MAX_VALUES,
                    len: values.len(),
                });
            }
            Ok(values)
        }
        Ok(match raw {
            RawCondition::Country(v) => Self::Country(list(COUNTRIES, v)?),
            RawCondition::Device(v) => Self::Device(list(DEVICES, v)?),
            RawCondition::Os(v) => Self::Os(list(SYSTEMS, v)?),
            RawCondition::Language(v) => Self::Language(list(LANGUAGES, v)?),
            RawCondition::Query(q) => {
                // PostgreSQL's text and jsonb refuse NUL, and no URL's query holds a raw
                // control character.
                if q.param.chars().chain(q.value.chars()).any(char::is_control) {
                    return Err(Error::ControlCharacter {
                        what: "a query condition",
                    });
                }
                let param_len = q.param.chars().count();
                if q.param.trim().is_empty() {
                    return Err(Error::Empty {
                        what: "a query condition's param",
                    });
                }
                if param_len > 100 {
                    return Err(Error::TooLong {
                        what: "a query condition's param",
                        max: 100,
                        len: param_len,
                    });
                }
                let value_len = q.value.chars().count();
                if value_len > 500 {
                    return Err(Error::TooLong {
                        what: "a query condition's value",
                        max: 500,
                        len: value_len,
                    });
                }
                Self::Query(q)
            }
        })
    }
}

/// One targeting rule: visits that match `when` go to `destination`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub when: Condition,
    pub destination: Destination,
}

/// A link's targeting rules, in order: the first that matches decides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(into = "Vec<Target>")]
pub struct Targets(Vec<Target>);

/// Read keeping at most [`MAX_TARGETS`] at any moment.
impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let targets = bounded::at_most(deserializer, MAX_TARGETS, |len| {
            too_many("targets", MAX_TARGETS, len)
        })?;
        Ok(Self(targets))
    }
}

impl Targets {
    pub const NONE: Self = Self(Vec::new());

    pub fn new(targets: Vec<Target>) -> Result<Self, Error> {
        if targets.len() > MAX_TARGETS {
            return Err(Error::TooMany {
                what: "targets",
                max: MAX_TARGETS,
                len: targets.len(),
            });
        }
        Ok(Self(targets))
    }

    pub fn as_slice(&self) -> &[Target] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Targets> for Vec<Target> {
    fn from(value: Targets) -> Self {
        value.0
    }
}

/// Most variants one link's split may ever have had: a variant's id is a byte, never reused.
pub const MAX_VARIANT_IDS: u16 = 256;

/// One destination of an A/B split, and the percentage of visitors it gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// The variant's lasting id within its link (0–255): its clicks are counted under it, so
    /// reordering, reweighing or removing variants never moves clicks between them. The API
    /// always shows it. In a change of a link's split, an id keeps the variant of the link
    /// that has it (its clicks stay its own even if its destination changes); a variant
    /// without one keeps the id of the link's variant with its destination, else takes a new
    /// one; an id the link's split does not have is not taken, nor is any on a new link. Two
    /// variants may not name one id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u8>,
    pub destination: Destination,
    pub weight: u8,
}

/// An A/B split: no variants, or 2 to [`MAX_VARIANTS`] whose weights add up to 100.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(into = "Vec<Variant>")]
pub struct Split(Vec<Variant>);

/// Read as [`Split::new`] reads it, keeping at most [`MAX_VARIANTS`] at any moment.
impl<'de> Deserialize<'de> for Split {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let variants = bounded::at_most(deserializer, MAX_VARIANTS, |len| {
            Error::Split {
                max: MAX_VARIANTS,
                reason: format!("got {len} destinations"),
            }
            .to_string()
        })?;
        Self::new(variants).map_err(de::Error::custom)
    }
}

impl Split {
    pub const NONE: Self = Self(Vec::new());

    pub fn new(variants: Vec<Variant>) -> Result<Self, Error> {
        let refuse = |reason: String| Error::Split {
            max: MAX_VARIANTS,
            reason,
        };
        if variants.is_empty() {
            return Ok(Self(variants));
        }
        if variants.len() < 2 || variants.len() > MAX_VARIANTS {
            return Err(refuse(format!("got {} destinations", variants.len())));
        }
        if let Some(bad) = variants.iter().find(|v| !(1..=100).contains(&v.weight)) {
            return Err(refuse(format!("a weight is {}", bad.weight)));
        }
        let sum: u32 = variants.iter().map(|v| u32::from(v.weight)).sum();
        if sum != 100 {
            return Err(refuse(format!("the weights add up to {sum}")));
        }
        let mut ids: Vec<u8> = variants.iter().filter_map(|v| v.id).collect();
        ids.sort_unstable();
        if let Some(twice) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Error::VariantIds(format!(
                "two variants of the split have the id {}: an id names one variant",
                twice[0]
            )));
        }
        Ok(Self(variants))
    }

    /// The id the clicks of the variant at `index` are counted under (see [`Variant::id`]).
    /// A split stored before variants had ids (0056) has none: each variant's is then its
    /// position, which is what its clicks stored. The origin gives every variant it stores
    /// one ([`Split::settle`]).
    fn id_at(&self, index: usize) -> Option<u8> {
        let variant = self.0.get(index)?;
        variant.id.or_else(|| u8::try_from(index).ok())
    }

    /// The variants in order, each with the id its clicks are counted under.
    pub fn with_ids(&self) -> impl Iterator<Item = (u8, &Variant)> {
        (0..self.0.len()).filter_map(|index| Some((self.id_at(index)?, &self.0[index])))
    }

    /// This split with each variant's id written out, as the API shows it: a split stored
    /// before ids gets its positions, so a client can send them back.
    pub fn named(self) -> Self {
        let ids: Vec<Option<u8>> = (0..self.0.len()).map(|index| self.id_at(index)).collect();
        let mut variants = self.0;
        for (variant, id) in variants.iter_mut().zip(ids) {
            variant.id = id;
        }
        Self(variants)
    }

    /// This split, asked for in a request, as the link stores it: every variant with its id.
    /// `current` is the link's split now and `used` how many ids its splits have had (ids
    /// `0..used`; a new link has none). A variant keeps the id it names if `current` has a
    /// variant of that id, else the id of a variant of `current` with its destination, else
    /// takes the next id never used: the clicks of a removed variant stay its own, under an id
    /// no later variant takes. Returns the split and the ids used after it.
    pub fn settle(self, current: &Split, used: u16) -> Result<(Split, u16), Error> {
        let current_ids: Vec<u8> = current.with_ids().map(|(id, _)| id).collect();
        // A split stored before ids has ids it never counted.
        let mut used = current_ids
            .iter()
            .map(|&id| u16::from(id) + 1)
            .fold(used, u16::max);
        let mut taken: Vec<u8> = Vec::with_capacity(self.0.len());
        let mut variants = self.0;
        for variant in &mut variants {
            variant.id = variant
                .id
                .filter(|id| current_ids.contains(id) && !taken.contains(id));
            if let Some(id) = variant.id {
                taken.push(id);
            }
        }
        for variant in variants.iter_mut().filter(|variant| variant.id.is_none()) {
            let kept = current.with_ids().find_map(|(id, old)| {
                (old.destination == variant.destination && !taken.contains(&id)).then_some(id)
            });
            let id = match kept {
                Some(id) => id,
                None => {
                    let id = u8::try_from(used).map_err(|_| {
                        Error::VariantIds(format!(
                            "this link's split has had {MAX_VARIANT_IDS} variants, and an id is \
                             never given twice (its clicks are its own): send the id of a variant \
                             whose destination you change, or make a new link for a new test"
                        ))
                    })?;
                    used += 1;
                    id
                }
            };
            taken.push(id);
            variant.id = Some(id);
        }
        Ok((Self(variants), used))
    }

    pub fn as_slice(&self) -> &[Variant] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The variant for a visitor whose bucket (0–99) is `bucket`, with its id: each variant
    /// takes as many buckets as its weight, in order.
    pub fn pick(&self, bucket: u8) -> Option<(u8, &Variant)> {
        let mut upto = 0u32;
        for (index, variant) in self.0.iter().enumerate() {
            upto += u32::from(variant.weight);
            if u32::from(bucket) < upto {
                return Some((self.id_at(index)?, variant));
            }
        }
        None
    }
}

impl From<Split> for Vec<Variant> {
    fn from(value: Split) -> Self {
        value.0
    }
}

/// A UTM parameter's value: trimmed, not empty, at most [`MAX_UTM_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UtmValue(String);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    UtmValue,
    crate::openapi::text("A UTM parameter's value (trimmed).", (1, MAX_UTM_LEN), None)
);

impl UtmValue {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let value = input.trim();
        let len = value.chars().count();
        if len == 0 {
            return Err(Error::Empty {
                what: "a UTM value",
            });
        }
        if len > MAX_UTM_LEN {
            return Err(Error::TooLong {
                what: "a UTM value",
                max: MAX_UTM_LEN,
                len,
            });
        }
        if value.chars().any(char::is_control) {
            return Err(Error::ControlCharacter {
                what: "a UTM value",
            });
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The UTM parameters a link adds to its destination's query at redirect time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Utm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<UtmValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<UtmValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<UtmValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<UtmValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<UtmValue>,
}

impl Utm {
    pub const NONE: Self = Self {
        source: None,
        medium: None,
        campaign: None,
        term: None,
        content: None,
    };

    pub fn is_empty(&self) -> bool {
        self.pairs().next().is_none()
    }

    /// The parameters that are set, as `(utm_source, value)`, in the usual order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("utm_source", &self.source),
            ("utm_medium", &self.medium),
            ("utm_campaign", &self.campaign),
            ("utm_term", &self.term),
            ("utm_content", &self.content),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|value| (name, value.as_str())))
    }

    /// `destination` with these parameters in its query: a parameter of the same name already
    /// there is replaced, every other parameter is kept as it was written, and the fragment
    /// stays last.
    pub fn apply<'a>(&self, destination: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(destination);
        }
        let (before_fragment, fragment) = match destination.split_once('#') {
            Some((before, fragment)) => (before, Some(fragment)),
            None => (destination, None),
        };
        let (base, query) = match before_fragment.split_once('?') {
            Some((base, query)) => (base, query),
            None => (before_fragment, ""),
        };
        let ours = |pair: &str| {
            let name = pair.split('=').next().unwrap_or_default();
            let name = form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(name, _)| name)
                .unwrap_or_default();
            self.pairs().any(|(utm, _)| utm == name)
        };
        let mut out = String::with_capacity(destination.len() + 64);
        out.push_str(base);
        out.push('?');
        let mut first = true;
        for pair in query
            .split('&')
            .filter(|pair| !pair.is_empty() && !ours(pair))
        {
            if !first {
                out.push('&');
            }
            out.push_str(pair);
            first = false;
        }
        let mut added = form_urlencoded::Serializer::new(String::new());
        added.extend_pairs(self.pairs());
        if !first {
            out.push('&');
        }
        out.push_str(&added.finish());
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
        Cow::Owned(out)
    }
}

/// A tag, normalised: trimmed, lower case, runs of spaces made one; 1 to [`MAX_TAG_LEN`]
/// characters of letters, digits, spaces, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    Tag,
    // No `pattern`: `^[\w .-]+$` refused every tag with a letter outside ASCII, as ECMA-262
    // reads `\w`, and the Unicode classes `Tag::parse` takes (Alphabetic, numbers, marks) are
    // written alike in no regex dialect clients share (Python's `re` and Go's have none of
    // them, and a validator that cannot compile a pattern refuses the whole description).
    crate::openapi::text(
        "A tag: letters of any script (with their marks), digits, spaces, `-`, `_` and `.` \
         (stored in lower case).",
        (1, MAX_TAG_LEN),
        None,
    )
);

impl Tag {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let tag = input
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let len = tag.chars().count();
        if len == 0 {
            return Err(Error::Empty { what: "a tag" });
        }
        if len > MAX_TAG_LEN {
            return Err(Error::TooLong {
                what: "a tag",
                max: MAX_TAG_LEN,
                len,
            });
        }
        if !tag
            .chars()
            // Marks too: Hindi's virama, Thai's tone marks, the dot that `İ` keeps in lower case.
            .all(|c| {
                c.is_alphanumeric() || is_combining_mark(c) || matches!(c, ' ' | '-' | '_' | '.')
            })
        {
            return Err(Error::Tag {
                found: input.chars().take(MAX_TAG_LEN).collect(),
            });
        }
        Ok(Self(tag))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A link's tags: at most [`MAX_TAGS`], each once (repeats after normalising are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(into = "Vec<Tag>")]
pub struct Tags(Vec<Tag>);

/// Read as [`Tags::new`] reads them, keeping at most [`MAX_TAGS`] at any moment.
impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tags = bounded::at_most_distinct(deserializer, MAX_TAGS, |len| {
            too_many("tags", MAX_TAGS, len)
        })?;
        Ok(Self(tags))
    }
}

impl Tags {
    /// Refused at the first tag past [`MAX_TAGS`] (counted once each): the check of repeats
    /// is a scan of those kept, so it stays short however many tags a request holds.
    pub fn new(tags: Vec<Tag>) -> Result<Self, Error> {
        Self::gather(tags.into_iter().map(Ok))
    }

    /// [`Tags::new`] of tags read one by one (from a file's cell), keeping at most
    /// [`MAX_TAGS`] at any moment; the first error among them ends it.
    pub fn gather<E: From<Error>>(
        tags: impl IntoIterator<Item = Result<Tag, E>>,
    ) -> Result<Self, E> {
        let mut tags = tags.into_iter();
        let mut unique: Vec<Tag> = Vec::new();
        let mut given = 0;
        while let Some(tag) = tags.next() {
            given += 1;
            let tag = tag?;
            if !unique.contains(&tag) {
                if unique.len() == MAX_TAGS {
                    return Err(Error::TooMany {
                        what: "tags",
                        max: MAX_TAGS,
                        len: given + tags.count(),
                    }
                    .into());
                }
                unique.push(tag);
            }
        }
        Ok(Self(unique))
    }

    pub fn as_slice(&self) -> &[Tag] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Tags> for Vec<Tag> {
    fn from(value: Tags) -> Self {
        value.0
    }
}

/// A note on a link, for its team: at most [`MAX_NOTE_LEN`] characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Note(String);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    Note,
    crate::openapi::text("A note for the link's team.", (0, MAX_NOTE_LEN), None)
);

impl Note {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let len = input.chars().count();
        if len > MAX_NOTE_LEN {
            return Err(Error::TooLong {
                what: "note",
                max: MAX_NOTE_LEN,
                len,
            });
        }
        // Lines and tabs are a note's; NUL is refused by PostgreSQL's text.
        if input.contains('\0') {
            return Err(Error::ControlCharacter { what: "note" });
        }
        Ok(Self(input.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A link's title, for people who read the list (often the destination page's title, kept by
/// an import): at most [`MAX_TITLE_LEN`] characters, on one line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Title(String);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    Title,
    crate::openapi::text("The link's title, on one line.", (0, MAX_TITLE_LEN), None)
);

impl Title {
    /// Trims the ends and turns line breaks and tabs into spaces (titles scraped from pages
    /// carry them); other control characters are refused.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let len = input.chars().count();
        if len > MAX_TITLE_LEN {
            return Err(Error::TooLong {
                what: "title",
                max: MAX_TITLE_LEN,
                len,
            });
        }
        let one_line: String = input
            .trim()
            .chars()
            .map(|c| {
                if matches!(c, '\n' | '\r' | '\t') {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        if one_line.chars().any(char::is_control) {
            return Err(Error::ControlCharacter { what: "title" });
        }
        Ok(Self(one_line))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many counted clicks a link takes before it answers like an expired one: 1 to
/// [`MAX_CLICK_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct ClickLimit(u64);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    ClickLimit,
    crate::openapi::integer(
        "How many counted clicks the link takes before it answers like an expired one.",
        1,
        MAX_CLICK_LIMIT,
    )
);

impl ClickLimit {
    pub fn new(limit: u64) -> Result<Self, Error> {
        if (1..=MAX_CLICK_LIMIT).contains(&limit) {
            Ok(Self(limit))
        } else {
            Err(Error::ClickLimit {
                found: limit,
                max: MAX_CLICK_LIMIT,
            })
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for ClickLimit {
    type Error = Error;
    fn try_from(value: u64) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl From<ClickLimit> for u64 {
    fn from(value: ClickLimit) -> Self {
        value.0
    }
}

/// `TryFrom<String>` through the type's `parse`, and `From<T> for String`: what
/// `#[serde(try_from = "String", into = "String")]` needs, for each text value above.
macro_rules! text_value {
    ($($name:ident),*) => {$(
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self, Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    )*};
}

text_value!(Country, Language, UtmValue, Tag, Note, Title);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_merges_into_the_query() {
        let utm = Utm {
            source: Some(UtmValue::parse("news letter").expect("valid")),
            campaign: Some(UtmValue::parse("spring&sale").expect("valid")),
            ..Utm::default()
        };
        let cases = [
            (
                "https://a.example/",
                "https://a.example/?utm_source=news+letter&utm_campaign=spring%26sale",
            ),
            (
                "https://a.example/p?x=1&y=%20z",
                "https://a.example/p?x=1&y=%20z&utm_source=news+letter&utm_campaign=spring%26sale",
            ),
            // A parameter of the same name is replaced; the fragment stays last.
            (
                "https://a.example/p?utm_source=old&keep=1#top",
                "https://a.example/p?keep=1&utm_source=news+letter&utm_campaign=spring%26sale#top",
            ),
            (
                "https://a.example/p?utm%5Fsource=old",
                "https://a.example/p?utm_source=news+letter&utm_campaign=spring%26sale",
            ),
            (
                "https://a.example/p?#f?x=1",
                "https://a.example/p?utm_source=news+letter&utm_campaign=spring%26sale#f?x=1",
            ),
            // Others' utm parameters stay.
            (
                "https://a.example/?utm_medium=mail",
                "https://a.example/?utm_medium=mail&utm_source=news+letter&utm_campaign=spring%26sale",
            ),
        ];
        for (destination, expected) in cases {
            assert_eq!(utm.apply(destination), expected, "{destination}");
            assert!(Destination::parse(&utm.apply(destination)).is_ok());
        }
        assert!(matches!(
            Utm::default().apply("https://a.example/"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn values_and_their_refusals() {
        assert_eq!(Country::parse(" de ").expect("valid").as_str(), "DE");
        assert!(Country::parse("DEU").is_err());
        assert!(Country::parse("D1").is_err());
        assert_eq!(Language::parse("pt-BR").expect("valid").as_str(), "pt-br");
        assert!(Language::parse("p").is_err());
        assert!(Language::parse("de_DE").is_err());
        assert!(Language::parse("*").is_err());
        let de = Language::parse("de").expect("valid");
        assert!(de.matches("de") && de.matches("DE-at") && !de.matches("dea") && !de.matches("en"));
        assert_eq!(
            Tag::parse("  Spring   Sale ").expect("valid").as_str(),
            "spring sale"
        );
        assert_eq!(Tag::parse("Größe").expect("valid").as_str(), "größe");
        // Words with marks (kept as typed: normalising them would part stored tags from
        // their filters).
        for (typed, stored) in [
            ("İstanbul", "i\u{307}stanbul"),
            ("हिन्दी", "हिन्दी"),
            ("เที่ยว", "เที่ยว"),
            ("தமிழ்", "தமிழ்"),
            ("Cafe\u{301}", "cafe\u{301}"),
        ] {
            assert_eq!(Tag::parse(typed).expect(typed).as_str(), stored, "{typed}");
        }
        assert!(Tag::parse("a/b").is_err());
        assert!(Tag::parse("   ").is_err());
        // Every script's letters, digits and alphabetic symbols; no punctuation or emoji.
        for tag in ["태그", "v1.2_beta-3", "٣", "ⓐ"] {
            assert_eq!(Tag::parse(tag).expect(tag).as_str(), tag);
        }
        for tag in ["emoji 🎉", "a,b", "a#b"] {
            assert!(Tag::parse(tag).is_err(), "{tag}");
        }
        assert!(Tag::parse(&"x".repeat(41)).is_err());
        let tags = Tags::new(vec![
            Tag::parse("A").expect("valid"),
            Tag::parse("a").expect("valid"),
        ])
        .expect("valid");
        assert_eq!(tags.as_slice().len(), 1);
        let many: Vec<Tag> = (0..21)
            .map(|i| Tag::parse(&i.to_string()).expect("valid"))
            .collect();
        assert!(Tags::new(many).is_err());
        // Half a million distinct tags (a crafted import cell): refused at the 21st, where a
        // check of repeats over all of them took minutes.
        let flood: Vec<Tag> = (0..500_000)
            .map(|i| Tag::parse(&format!("t{i}")).expect("valid"))
            .collect();
        assert_eq!(
            Tags::new(flood),
            Err(Error::TooMany {
                what: "tags",
                max: MAX_TAGS,
                len: 500_000
            })
        );
        assert!(ClickLimit::new(0).is_err());
        assert!(ClickLimit::new(MAX_CLICK_LIMIT + 1).is_err());
        assert!(Note::parse(&"n".repeat(MAX_NOTE_LEN + 1)).is_err());
        assert!(UtmValue::parse(" ").is_err());
    }

    #[test]
    fn titles() {
        let long_ok = "t".repeat(MAX_TITLE_LEN);
        let too_long = "t".repeat(MAX_TITLE_LEN + 1);
        let cases: &[(&str, Result<&str, Error>)] = &[
            ("Spring sale", Ok("Spring sale")),
            ("  Spring sale \n", Ok("Spring sale")),
            // Titles scraped from pages carry line breaks and tabs: one line, spaces instead.
            (
                "Spring\nsale\r\n2026\tedition",
                Ok("Spring sale  2026 edition"),
            ),
            ("Größe – 東京", Ok("Größe – 東京")),
            ("", Ok("")),
            ("   ", Ok("")),
            (&long_ok, Ok(&long_ok)),
            (
                &too_long,
                Err(Error::TooLong {
                    what: "title",
                    max: MAX_TITLE_LEN,
                    len: MAX_TITLE_LEN + 1,
                }),
            ),
            ("bell\u{7}", Err(Error::ControlCharacter { what: "title" })),
            ("nul\u{0}x", Err(Error::ControlCharacter { what: "title" })),
            (
                "esc\u{1b}[31m",
                Err(Error::ControlCharacter { what: "title" }),
            ),
        ];
        for (input, expected) in cases {
            let got = Title::parse(input);
            assert_eq!(
                got.as_ref().map(Title::as_str),
                expected.as_ref().map(|t| *t),
                "{input:?}"
            );
        }
        // Deserialising runs the same rules.
        let title: Title = serde_json::from_str("\" a\\tb \"").expect("valid");
        assert_eq!(title.as_str(), "a b");
        assert!(serde_json::from_str::<Title>("\"\\u0007\"").is_err());
    }

    #[test]
    fn split_weights() {
        let variant = |weight| Variant {
            id: None,
            destination: Destination::parse("https://a.example/").expect("valid"),
            weight,
        };
        assert!(Split::new(vec![]).is_ok());
        for bad in [
            vec![100],
            vec![50, 49],
            vec![0, 100],
            vec![60, 50],
            vec![10; 11],
        ] {
            let variants = bad.iter().map(|&w| variant(w)).collect();
            assert!(Split::new(variants).is_err(), "{bad:?}");
        }
        let split = Split::new(vec![variant(30), variant(70)]).expect("valid");
        assert_eq!(split.pick(0).map(|(i, _)| i), Some(0));
        assert_eq!(split.pick(29).map(|(i, _)| i), Some(0));
        assert_eq!(split.pick(30).map(|(i, _)| i), Some(1));
        assert_eq!(split.pick(99).map(|(i, _)| i), Some(1));
        assert_eq!(split.pick(100), None);
        // A settled split names its variants by their ids, whatever their places.
        let named = |id| Variant {
            id: Some(id),
            ..variant(50)
        };
        // A split stored before ids is shown with its positions.
        assert_eq!(
            Split::new(vec![variant(30), variant(70)])
                .expect("valid")
                .named()
                .with_ids()
                .map(|(id, v)| (id, v.id))
                .collect::<Vec<_>>(),
            [(0, Some(0)), (1, Some(1))]
        );
        let split = Split::new(vec![named(7), named(2)]).expect("valid");
        assert_eq!(split.pick(0).map(|(i, _)| i), Some(7));
        assert_eq!(split.pick(50).map(|(i, _)| i), Some(2));
        assert!(Split::new(vec![named(3), named(3)]).is_err());
    }

    /// A split as written: `(id, destination, weight)`, the destination a short name.
    fn split_of(variants: &[(Option<u8>, &str, u8)]) -> Split {
        let variants = variants
            .iter()
            .map(|&(id, host, weight)| Variant {
                id,
                destination: Destination::parse(&format!("https://{host}.example/"))
                    .expect("valid"),
                weight,
            })
            .collect();
        Split::new(variants).expect("valid")
    }

    #[test]
    fn a_settled_split_keeps_each_variants_id_and_never_gives_one_twice() {
        type Written<'a> = &'a [(Option<u8>, &'a str, u8)];
        // (the link's split now, ids used so far, the request, the stored split and ids used)
        let cases: &[(Written<'_>, u16, Written<'_>, Written<'_>, u16)] = &[
            // A new link: ids in order, whatever the request named.
            (
                &[],
                0,
                &[(Some(9), "a", 50), (None, "b", 50)],
                &[(Some(0), "a", 50), (Some(1), "b", 50)],
                2,
            ),
            // Reordered and reweighed: each keeps its id by destination.
            (
                &[(Some(0), "a", 50), (Some(1), "b", 50)],
                2,
                &[(None, "b", 70), (None, "a", 30)],
                &[(Some(1), "b", 70), (Some(0), "a", 30)],
                2,
            ),
            // The first removed, one added: the new one takes an id never used.
            (
                &[(Some(0), "a", 50), (Some(1), "b", 50)],
                2,
                &[(None, "b", 50), (None, "c", 50)],
                &[(Some(1), "b", 50), (Some(2), "c", 50)],
                3,
            ),
            // The last removed, one added: its id is not given again.
            (
                &[(Some(0), "a", 50), (Some(1), "b", 50)],
                3,
                &[(None, "a", 50), (None, "c", 50)],
                &[(Some(0), "a", 50), (Some(3), "c", 50)],
                4,
            ),
            // A destination changed under its id keeps the id; an id the link has not now is
            // not taken (a split copied from another link).
            (
                &[(Some(4), "a", 50), (Some(5), "b", 50)],
                6,
                &[(Some(5), "fixed", 50), (Some(1), "c", 50)],
                &[(Some(5), "fixed", 50), (Some(6), "c", 50)],
                7,
            ),
            // A named id wins over a destination that matches another variant's.
            (
                &[(Some(0), "a", 50), (Some(1), "b", 50)],
                2,
                &[(None, "b", 50), (Some(1), "c", 50)],
                &[(Some(2), "b", 50), (Some(1), "c", 50)],
                3,
            ),
            // Two variants with one destination: the first takes its id, the second a new one.
            (
                &[(Some(0), "a", 50), (Some(1), "b", 50)],
                2,
                &[(None, "a", 50), (None, "a", 50)],
                &[(Some(0), "a", 50), (Some(2), "a", 50)],
                3,
            ),
            // A split stored before ids: its ids are its positions.
            (
                &[(None, "a", 50), (None, "b", 50)],
                0,
                &[(None, "b", 50), (None, "c", 50)],
                &[(Some(1), "b", 50), (Some(2), "c", 50)],
                3,
            ),
            // The split removed.
            (&[(Some(0), "a", 50), (Some(1), "b", 50)], 2, &[], &[], 2),
        ];
        for (current, used, asked, stored, after) in cases {
            let settled = split_of(asked).settle(&split_of(current), *used);
            assert_eq!(
                settled,
                Ok((split_of(stored), *after)),
                "{current:?} {used} {asked:?}"
            );
        }
        // Past the last id: refused, never an id given twice.
        let full = split_of(&[(Some(254), "a", 50), (Some(255), "b", 50)]);
        let asked = split_of(&[(None, "a", 50), (None, "c", 50)]);
        assert!(matches!(
            asked.settle(&full, MAX_VARIANT_IDS),
            Err(Error::VariantIds(_))
        ));
    }

    #[test]
    fn conditions_parse_with_their_limits() {
        let ok: Condition = serde_json::from_str(r#"{"country":["de","AT"]}"#).expect("valid");
        assert_eq!(
            serde_json::to_string(&ok).expect("serialises"),
            r#"{"country":["DE","AT"]}"#
        );
        let ok: Condition =
            serde_json::from_str(r#"{"query":{"param":"ref","value":"mail"}}"#).expect("valid");
        assert!(matches!(ok, Condition::Query(_)));
        for bad in [
            r#"{"country":[]}"#,
            r#"{"planet":["mars"]}"#,
            r#"{"device":["toaster"]}"#,
            r#"{"os":["ios"],"device":["mobile"]}"#,
            r#"{"query":{"param":" ","value":"x"}}"#,
        ] {
            assert!(serde_json::from_str::<Condition>(bad).is_err(), "{bad}");
        }
    }

    /// A request's lists are read keeping at most their limit: a body of a million short
    /// values is refused (or its repeats dropped) without holding a million of them, and
    /// the refusal still counts what was sent.
    #[test]
    fn long_lists_are_refused_as_they_are_read() {
        let list = |item: &str, n: usize| format!("[{}]", vec![item; n].join(","));
        let tags: Tags = serde_json::from_str(&list(r#""launch""#, 1_000_000)).expect("one tag");
        assert_eq!(tags.as_slice().len(), 1);
        let many: Vec<String> = (0..25).map(|n| format!(r#""t{n}""#)).collect();
        let cases = [
            (
                serde_json::from_str::<Tags>(&format!("[{}]", many.join(","))).map(drop),
                "tags may hold at most 20 entries (got 25)",
            ),
            (
                serde_json::from_str::<Condition>(&format!(
                    r#"{{"country":{}}}"#,
                    list(r#""de""#, 1_000_000)
                ))
                .map(drop),
                "a country condition may hold at most 50 entries (got 1000000)",
            ),
            (
                serde_json::from_str::<Condition>(&format!(
                    r#"{{"language":{}}}"#,
                    list(r#""de""#, 51)
                ))
                .map(drop),
                "a language condition may hold at most 50 entries (got 51)",
            ),
            (
                serde_json::from_str::<Targets>(&list(
                    r#"{"when":{"os":["ios"]},"destination":"https://example.com/"}"#,
                    21,
                ))
                .map(drop),
                "targets may hold at most 20 entries (got 21)",
            ),
            (
                serde_json::from_str::<Split>(&list(
                    r#"{"destination":"https://example.com/","weight":1}"#,
                    11,
                ))
                .map(drop),
                "got 11 destinations",
            ),
        ];
        for (read, message) in cases {
            let err = read.expect_err(message).to_string();
            assert!(err.contains(message), "{message}: {err}");
        }
    }
}
