//! The overview: the whole account's clicks and visitors over 30 days, totals for today,
//! 7 days and 30 days, and the most visited links.

use leptos::prelude::*;
use shortlink::stats::{Interval, Stats};

use crate::chart::SeriesChart;
use crate::nav::{Link, Page};
use crate::pages::stats_view::{BreakdownTables, Totals};
use crate::range::{Preset, StatsRange, count};

#[component]
pub fn Overview() -> impl IntoView {
    let reload = RwSignal::new(0_u32);
    let stats = crate::widgets::load_json::<Stats>(move || {
        reload.track();
        // Daily buckets in the browser's zone: the last one is today, the last seven a week.
        let range = StatsRange {
            preset: Preset::Month,
            interval: Interval::Day,
            ..StatsRange::default()
        };
        // A preset range always has bounds (only a custom one can be invalid).
        format!("/api/v1/stats?{}", range.query().unwrap_or_default())
    });
    view! {
        <section class="page" aria-labelledby="overview-title">
            <div class="page-head">
                <h1 id="overview-title">"Overview"</h1>
                <Link to=Page::Links class="button primary">"Manage links"</Link>
            </div>
            {move || match stats.get() {
                None => view! { <p class="loading">"Loading analytics…"</p> }.into_any(),
                Some(Err(err)) => view! {
                    <div class="error-box" role="alert">
                        <p>{err.message}</p>
                        <button on:click=move |_| reload.update(|n| *n += 1)>"Try again"</button>
                    </div>
                }.into_any(),
                Some(Ok(stats)) => {
                    let sum = |days: usize, pick: fn(&shortlink::stats::Counts) -> i64| -> i64 {
                        stats.series.iter().rev().take(days).map(|p| pick(&p.counts)).sum()
                    };
                    let items = vec![
                        ("Clicks today", sum(1, |c| c.total)),
                        ("Clicks, 7 days", sum(7, |c| c.total)),
                        ("Clicks, 30 days", stats.totals.total),
                        ("Unique visitors, 30 days", stats.totals.uniques),
                    ];
                    let series = stats.series.clone();
                    let top_links = stats.top_links.clone().unwrap_or_default();
                    view! {
                        <Totals items=items/>
                        <h2>"Last 30 days"</h2>
                        <SeriesChart points=Signal::derive(move || series.clone()) interval=Signal::derive(|| Interval::Day)/>
                        <section class="panel top-links" aria-labelledby="top-links-title">
                            <h2 id="top-links-title">"Top links"</h2>
                            {if top_links.is_empty() {
                                view! { <p class="empty small">"No clicks in the last 30 days yet."</p> }.into_any()
                            } else {
                                view! {
                                    <table>
                                        <thead><tr><th scope="col">"Link"</th><th scope="col" class="num">"Clicks"</th></tr></thead>
                                        <tbody>
                                            {top_links.into_iter().map(|link| view! {
                                                <tr>
                                                    <td><Link to=Page::link(link.code.clone(), link.link_id)>{link.code.clone()}</Link></td>
                                                    <td class="num">{count(link.count)}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                }.into_any()
                            }}
                        </section>
                        <BreakdownTables top=stats.top.clone()/>
                    }.into_any()
                }
            }}
        </section>
    }
}
