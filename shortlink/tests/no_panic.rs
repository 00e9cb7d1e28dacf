//! Every parser of this crate, fed anything: it answers a value or an error, never a panic.
//! A panic in a request handler drops the connection without an answer (the origin) or kills
//! the isolate (the edge).
//!
//! The inputs are JSON objects shaped like each type (its own field names, values of every
//! kind), with strings biased to what breaks parsers: timestamps at the ends of `time`'s range
//! and in extreme offsets, numbers at the ends of `i64`, URLs with odd hosts. Whatever parses
//! is then used as the processes use it (serialised back, decided, bounded).

use proptest::prelude::*;
use serde_json::{Map, Value};
use shortlink::api::{CreateLink, ErrorBody, Link, LinkPage, UpdateLink};
use shortlink::edge::{
    ClickEvent, IngestBatch, IngestResult, ReplayResult, SyncBatch, SyncResult, Tombstone,
    is_qr_scan,
};
use shortlink::redirect::{LinkRecord, Visit, decide};
use shortlink::stats::{Interval, Stats};
use shortlink::workspace::{
    AuditPage, ChangePassword, ChangeRole, CreateApiKey, CreateInvitation, CreatedApiKey,
    InvitationToken, Role, Scope, SignUp, SwitchWorkspace, WorkspaceName,
};
use shortlink::{CodeScrambler, Destination, HostKey, RedirectStatus, ShortCode, signature};
use time::{OffsetDateTime, UtcOffset};

/// Strings that break parsers more often than random ones do.
fn tricky_string() -> impl Strategy<Value = String> {
    let year = prop_oneof![0u32..=9999, 9990u32..=9999, 1969u32..=1970, 8999u32..=9000];
    let timestamp = (
        year,
        1u32..=12,
        1u32..=31,
        0u32..=23,
        0u32..=59,
        0u32..=60,
        prop_oneof![
            Just("Z".to_owned()),
            (0u32..=23, 0u32..=59, any::<bool>())
                .prop_map(|(h, m, neg)| format!("{}{h:02}:{m:02}", if neg { '-' } else { '+' })),
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, offset)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{offset}")
        });
    prop_oneof![
        any::<String>(),
        timestamp,
        Just("9999-12-31T23:30:00-05:00".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("9223372036854775807".to_owned()),
        "(https?|ftp|javascript)://[a-zA-Z0-9.:@%\\[\\]-]{0,30}(/[a-z?#=&.]{0,10})?",
        "[a-zA-Z0-9_-]{1,70}",
        "[0-9a-f]{0,70}",
    ]
}

/// Any JSON value, strings tricky, numbers at the ends of their types too.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![Just(301u16), Just(302), Just(307), Just(308), any::<u16>()]
            .prop_map(Value::from),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// An object with some of `fields`, each holding any value (or, often, one shaped like a
/// field of that name).
fn object_of(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    proptest::collection::vec(
        (proptest::sample::select(fields), shaped_value()),
        0..=fields.len() + 1,
    )
    .prop_map(|pairs| {
        Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    })
}

/// A value that is often right for one of the fields below, else anything.
fn shaped_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any_json(),
        tricky_string().prop_map(Value::String),
        proptest::collection::vec(record(), 0..3).prop_map(Value::Array),
        record(),
    ]
}

/// Something close to a link record or click event: the fields every body shares.
fn record() -> impl Strategy<Value = Value> {
    proptest::collection::vec(
        (
            proptest::sample::select(
                &[
                    "v",
                    "version",
                    "link_id",
                    "destination",
                    "status",
                    "expires_at",
                    "code",
                    "record",
                    "id",
                    "at",
                    "source",
                    "country",
                    "referrer",
                    "user_agent",
                    "qr",
                    "head",
                    "visitor",
                    "deleted",
                    "rules",
                ][..],
            ),
            prop_oneof![
                tricky_string().prop_map(Value::String),
                any::<i64>().prop_map(Value::from),
                Just(Value::from(1)),
                Just(Value::from("edge")),
                Just(Value::from("https://example.com/")),
                Just(Value::Bool(true)),
                Just(Value::Null),
            ],
        ),
        0..12,
    )
    .prop_map(|pairs| {
        Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    })
}

/// Parses `value` as `T` from its JSON text, as a request body is; what parses serialises.
fn parse<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> Option<T> {
    let text = value.to_string();
    let parsed = serde_json::from_str::<T>(&text).ok()?;
    let _ = serde_json::to_string(&parsed);
    Some(parsed)
}

/// Any instant `time` holds, in any offset.
fn any_instant() -> impl Strategy<Value = OffsetDateTime> {
    let first = -377_705_116_800i64; // -9999-01-01T00:00:00Z
    let last = 253_402_300_799i64; // 9999-12-31T23:59:59Z
    (
        prop_oneof![
            first..=last,
            (last - 100_000)..=last,
            first..=(first + 100_000)
        ],
        -93_599i32..=93_599,
    )
        .prop_filter_map("representable", |(seconds, offset)| {
            OffsetDateTime::from_unix_timestamp(seconds)
                .ok()?
                .checked_to_offset(UtcOffset::from_whole_seconds(offset).ok()?)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn api_bodies(
        create in object_of(&["destination", "code", "status", "expires_at"]),
        update in object_of(&["destination", "status", "expires_at"]),
        link in object_of(&["id", "code", "short_url", "destination", "status", "expires_at", "created_at", "updated_at"]),
        other in any_json(),
    ) {
        if let Some(create) = parse::<CreateLink>(&create) {
            // An accepted expiry is in UTC and leaves room for any range built on it.
            if let Some(at) = create.expires_at {
                prop_assert_eq!(at.offset(), UtcOffset::UTC);
                prop_assert!(at.checked_add(time::Duration::days(400)).is_some());
            }
        }
        if let Some(update) = parse::<UpdateLink>(&update) {
            if let Some(Some(at)) = update.expires_at {
                prop_assert_eq!(at.offset(), UtcOffset::UTC);
            }
            let _ = update.is_empty();
        }
        parse::<Link>(&link);
        for value in [&create, &update, &link, &other] {
            parse::<LinkPage>(value);
            parse::<CreatedApiKey>(value);
            parse::<CreateApiKey>(value);
            parse::<AuditPage>(value);
            parse::<ChangePassword>(value);
            parse::<ChangeRole>(value);
            parse::<CreateInvitation>(value);
            parse::<InvitationToken>(value);
            parse::<SignUp>(value);
            parse::<SwitchWorkspace>(value);
            parse::<WorkspaceName>(value);
            parse::<Role>(value);
            parse::<Scope>(value);
            parse::<ErrorBody>(value);
            parse::<Stats>(value);
            parse::<Interval>(value);
            parse::<RedirectStatus>(value);
            parse::<ShortCode>(value);
            parse::<Destination>(value);
        }
    }

    #[test]
    fn edge_contract(
        record in record(),
        sync in object_of(&["changes"]),
        change in object_of(&["code", "version", "record"]),
        ingest in object_of(&["events"]),
        other in any_json(),
        now in any_instant(),
        query in proptest::option::of(any::<String>()),
    ) {
        let visit = Visit {
            now,
            country: query.as_deref(),
            agent: shortlink::agent::classify(query.as_deref()),
            accept_language: query.as_deref(),
            query: query.as_deref(),
            visitor: query.as_deref(),
            unlocked: false,
            clicks_in_flight: u64::MAX,
        };
        if let Some(link) = parse::<LinkRecord>(&record) {
            let _ = decide(&link, &visit);
        }
        if let Some(event) = parse::<ClickEvent>(&record) {
            let _ = serde_json::to_string(&event.bounded());
        }
        parse::<Tombstone>(&record);
        if let Some(batch) = parse::<SyncBatch>(&sync) {
            for change in batch.changes {
                if let Some(link) = change.record {
                    let _ = decide(&link, &visit);
                }
            }
        }
        let wrapped = Value::Object([("changes".to_owned(), Value::Array(vec![change]))].into_iter().collect());
        parse::<SyncBatch>(&wrapped);
        if let Some(batch) = parse::<IngestBatch>(&ingest) {
            for event in batch.events {
                let _ = event.bounded();
            }
        }
        for value in [&record, &other] {
            parse::<SyncResult>(value);
            parse::<IngestResult>(value);
            parse::<ReplayResult>(value);
        }
        let _ = is_qr_scan(query.as_deref());
    }

    #[test]
    fn strings(input in tricky_string(), key in any::<[u8; 16]>()) {
        let _ = shortlink::timestamp::parse(&input);
        if let Ok(code) = ShortCode::parse(&input) {
            let _ = CodeScrambler::new(key).decode(&code);
        }
        if let Ok(destination) = Destination::parse(&input) {
            let _ = destination.host_key();
        }
        let _ = HostKey::parse(&input);
        let _ = HostKey::new(&input);
        let _ = shortlink::visitor::visitor_key(&key, time::Date::MIN, &input, &input);
    }

    #[test]
    fn signatures(
        timestamp in proptest::option::of(prop_oneof![tricky_string(), any::<i64>().prop_map(|n| n.to_string())]),
        signature in proptest::option::of(prop_oneof![tricky_string(), "[0-9a-f]{64}"]),
        now in any::<i64>(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let _ = signature::verify(
            b"secret",
            "POST",
            "/_edge/sync",
            timestamp.as_deref(),
            signature.as_deref(),
            &body,
            now,
        );
        // A signature made for any timestamp verifies at that instant, at either end of i64.
        if let Some(Ok(at)) = timestamp.as_deref().map(str::parse::<i64>) {
            let good = signature::sign(b"secret", "POST", "/_edge/sync", at, &body);
            let verified = signature::verify(
                b"secret", "POST", "/_edge/sync", timestamp.as_deref(), Some(&good), &body, at,
            );
            prop_assert_eq!(verified, Ok(()));
        }
    }
}
