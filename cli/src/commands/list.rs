//! `kurz list`: links, newest first, one per line; every page with `--all`.

use std::io::Write;

use shortlink::query::LinkListQuery;

use crate::commands::{json_line, line};
use crate::{Client, Error, Exit};

/// The largest page the API gives, for `--all`.
const LARGEST_PAGE: i64 = 200;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only links whose code, destination, note or title contains this (any case).
    #[arg(long)]
    search: Option<String>,
    /// Only links with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// How many links (1 to 200; default 50); with --all, how many per request.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=LARGEST_PAGE))]
    limit: Option<i64>,
    /// Every link, following the pages to the last.
    #[arg(long)]
    all: bool,
    /// One JSON object (the API's link) per line instead of code, short URL and destination.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(
    client: &Client,
    args: Args,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<Exit, Error> {
    let mut query = LinkListQuery {
        q: args.search,
        tag: args.tag,
        limit: args.limit.or(args.all.then_some(LARGEST_PAGE)),
        ..LinkListQuery::default()
    };
    // Each page is written before the next is asked for: memory stays one page.
    loop {
        let page = client.list(&query).await?;
        for link in &page.links {
            if args.json {
                json_line(stdout, link)?;
            } else {
                line(
                    stdout,
                    format_args!(
                        "{}\t{}\t{}",
                        link.code.as_str(),
                        link.short_url,
                        link.destination.as_str()
                    ),
                )?;
            }
        }
        match page.next_cursor {
            Some(cursor) if args.all => query.cursor = Some(cursor),
            Some(_) => {
                writeln!(stderr, "(more links: --all lists every one)").ok();
                break;
            }
            None => break,
        }
    }
    Ok(Exit::Success)
}
