//! `kurz stats`: a link's (or the workspace's) totals and top values over a range.

use std::io::Write;

use shortlink::ShortCode;
use shortlink::query::StatsQuery;
use shortlink::stats::{Ranked, Stats};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::commands::{json_line, line};
use crate::{Client, Error, Exit};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The link's code; without it, the whole workspace.
    code: Option<ShortCode>,
    /// Start of the range (RFC 3339); default: 7 days before --to.
    #[arg(long, value_name = "RFC3339", value_parser = shortlink::timestamp::parse, conflicts_with = "days")]
    from: Option<OffsetDateTime>,
    /// End of the range (RFC 3339, exclusive); default: now.
    #[arg(long, value_name = "RFC3339", value_parser = shortlink::timestamp::parse, conflicts_with = "days")]
    to: Option<OffsetDateTime>,
    /// The last N days up to now (1 to 400).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=400))]
    days: Option<u16>,
    /// Print the API's answer as JSON (with the series).
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(
    client: &Client,
    args: Args,
    stdout: &mut dyn Write,
) -> Result<Exit, Error> {
    // The last N days end now as this client reads the clock: sent without an end, the
    // server's later `now` made `--days 400` a moment over 400 days, and refused.
    let (from, to) = match args.days {
        Some(days) => {
            let now = OffsetDateTime::now_utc();
            (Some(now - Duration::days(days.into())), Some(now))
        }
        None => (args.from, args.to),
    };
    let query = StatsQuery {
        from,
        to,
        ..StatsQuery::default()
    };
    let stats = client.stats(args.code.as_ref(), &query).await?;
    if args.json {
        json_line(stdout, &stats)?;
    } else {
        write_text(stdout, &stats)?;
    }
    Ok(Exit::Success)
}

fn write_text(out: &mut dyn Write, stats: &Stats) -> Result<(), Error> {
    let counts = &stats.totals;
    line(out, format_args!("from      {}", rfc3339(stats.from)))?;
    line(out, format_args!("to        {}", rfc3339(stats.to)))?;
    line(
        out,
        format_args!(
            "total     {} (clicks {}, QR scans {}, bots {}); unique visitors {}",
            counts.total, counts.clicks, counts.qr_scans, counts.bots, counts.uniques
        ),
    )?;
    let top = &stats.top;
    for (name, values) in [
        ("referrer", &top.referrer),
        ("country", &top.country),
        ("device", &top.device),
        ("browser", &top.browser),
        ("os", &top.os),
        ("variant", &top.variant),
        ("tag", &top.tag),
    ] {
        if !values.is_empty() {
            line(out, format_args!("{name:<9} {}", ranked(values)))?;
        }
    }
    if let Some(links) = stats.top_links.as_ref().filter(|links| !links.is_empty()) {
        let listed: Vec<String> = links
            .iter()
            .map(|link| format!("{} {}", link.code, link.count))
            .collect();
        line(out, format_args!("links     {}", listed.join(", ")))?;
    }
    Ok(())
}

fn ranked(values: &[Ranked]) -> String {
    let listed: Vec<String> = values
        .iter()
        .map(|value| format!("{} {}", value.value, value.count))
        .collect();
    listed.join(", ")
}

fn rfc3339(instant: OffsetDateTime) -> String {
    instant
        .format(&Rfc3339)
        .unwrap_or_else(|_| instant.to_string())
}
