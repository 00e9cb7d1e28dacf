//! `kurz create`: one link, its short URL printed.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use shortlink::api::CreateLink;
use shortlink::rules::{Tag, Tags, Title};
use shortlink::{Destination, ShortCode};
use time::OffsetDateTime;

use crate::commands::{json_line, line};
use crate::{Client, Error, Exit};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where the link sends visitors (an http or https URL).
    destination: Destination,
    /// A custom code (slug); without it the origin makes one.
    #[arg(long)]
    code: Option<ShortCode>,
    /// A tag; repeat for more.
    #[arg(long = "tag", value_name = "TAG", value_parser = Tag::parse)]
    tags: Vec<Tag>,
    /// The link's title.
    #[arg(long, value_parser = Title::parse)]
    title: Option<Title>,
    /// When the link stops working (RFC 3339, e.g. 2030-01-01T00:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = shortlink::timestamp::parse)]
    expires: Option<OffsetDateTime>,
    /// Print the created link as JSON instead of its short URL.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(
    client: &Client,
    args: Args,
    stdout: &mut dyn Write,
) -> Result<Exit, Error> {
    let tags = Tags::new(args.tags).map_err(|err| Error::Config(format!("--tag: {err}")))?;
    let link = CreateLink {
        destination: args.destination,
        code: args.code,
        status: Default::default(),
        expires_at: args.expires,
        disabled: false,
        max_clicks: None,
        fallback_url: None,
        password: None,
        targets: Default::default(),
        split: Default::default(),
        utm: Default::default(),
        tags,
        note: None,
        title: args.title,
        created_at: None,
        imported_clicks: 0,
        clicks_used: 0,
    };
    let created = client.create(&link, &idempotency_key()).await?;
    if args.json {
        json_line(stdout, &created)?;
    } else {
        line(stdout, format_args!("{}", created.short_url))?;
    }
    Ok(Exit::Success)
}

/// A key no other run uses, so that a create retried after a lost answer makes one link
/// (`import` adds each chunk's number to one).
/// The standard library's hasher is seeded with randomness from the operating system; with
/// the time and the process id, two runs do not meet.
pub(crate) fn idempotency_key() -> String {
    use std::hash::BuildHasher;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let random =
        std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    format!("kurz-cli-{nanos:x}-{random:016x}")
}
