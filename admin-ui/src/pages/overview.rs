//! The overview: the whole account's clicks and visitors over 30 days, totals for today,
//! 7 days and 30 days, and the most visited links; live while it is open.

use leptos::prelude::*;
use shortlink::stats::{Counts, Interval, Stats};

use crate::chart::SeriesChart;
use crate::i18n::{t, t_string, use_i18n};
use crate::nav::{Link, Page};
use crate::pages::stats_view::{BreakdownTables, StatsPage, Totals};
use crate::range::{Preset, StatsRange, count};
use crate::widgets::Loaded;

#[component]
pub fn Overview() -> impl IntoView {
    let i18n = use_i18n();
    // Daily buckets in the browser's zone: the last one is today, the last seven a week.
    let range = RwSignal::new(StatsRange {
        preset: Preset::Month,
        interval: Interval::Day,
        ..StatsRange::default()
    });
    let (page, stats) = StatsPage::provide(range, "/api/v1/stats".to_owned());
    view! {
        <section class="page" aria-labelledby="overview-title">
            <div class="page-head">
                <h1 id="overview-title">{t!(i18n, overview.title)}</h1>
                <Link to=Page::Links class="button primary">{t!(i18n, overview.manage_links)}</Link>
            </div>
            <p class="hint live">{t!(i18n, stats.live)}</p>
            <Loaded data=stats reload=page.live.tick
                loading=Signal::derive(move || t_string!(i18n, overview.loading).to_owned())
                let:stats>
                <Figures stats=stats/>
            </Loaded>
        </section>
    }
}

#[component]
fn Figures(stats: Stats) -> impl IntoView {
    let i18n = use_i18n();
    let sum = |days: usize, pick: fn(&Counts) -> i64| -> i64 {
        stats
            .series
            .iter()
            .rev()
            .take(days)
            .map(|p| pick(&p.counts))
            .sum()
    };
    let items = vec![
        (t_string!(i18n, overview.clicks_today), sum(1, |c| c.total)),
        (t_string!(i18n, overview.clicks_week), sum(7, |c| c.total)),
        (t_string!(i18n, overview.clicks_month), stats.totals.total),
        (
            t_string!(i18n, overview.uniques_month),
            stats.totals.uniques,
        ),
    ];
    let top_links = stats.top_links.unwrap_or_default();
    view! {
        <Totals items=items/>
        <h2>{t!(i18n, overview.last_30_days)}</h2>
        <SeriesChart points=stats.series interval=Interval::Day/>
        <section class="panel top-links" aria-labelledby="top-links-title">
            <h2 id="top-links-title">{t!(i18n, overview.top_links)}</h2>
            {if top_links.is_empty() {
                view! { <p class="empty small">{t!(i18n, overview.no_top_links)}</p> }.into_any()
            } else {
                view! {
                    <table>
                        <thead><tr>
                            <th scope="col">{t!(i18n, overview.link)}</th>
                            <th scope="col" class="num">{t!(i18n, overview.clicks)}</th>
                        </tr></thead>
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
        <BreakdownTables top=stats.top details_shed=stats.totals.details_shed/>
    }
}
