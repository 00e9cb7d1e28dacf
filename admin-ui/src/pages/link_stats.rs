//! One link's analytics: time series, unique visitors, breakdowns, CSV export; live while
//! the page is open.
//!
//! The page is addressed by code and, from every link the dashboard makes, pinned to the
//! link's id ([`Page::Link`]): the API reads a link's data by code, so the page first checks
//! that the link with the code now is the one it was opened for, and asks for its analytics
//! only then. A code freed by a delete and taken by another link in the moment between that
//! check and the next request is the window that remains.

use leptos::prelude::*;
use shortlink::api::Link as ShortLink;
use shortlink::query::ExportQuery;
use shortlink::stats::Stats;

use crate::api::{encode, query_string};
use crate::chart::SeriesChart;
use crate::i18n::{t, t_string, use_i18n};
use crate::nav::{Link, Page};
use crate::pages::stats_view::{BreakdownTables, RangePicker, StatsPage, Totals, remembered_range};
use crate::range::StatsRange;
use crate::widgets::{Loaded, load_json};

#[component]
pub fn LinkStats(code: String, id: Option<i64>) -> impl IntoView {
    let i18n = use_i18n();
    let reload = RwSignal::new(0_u32);
    let path = format!("/api/v1/links/{}", encode(&code));
    let link = load_json::<ShortLink>({
        let path = path.clone();
        move || {
            reload.track();
            path.clone()
        }
    });
    // Whether the link with the code now is the one the address names (`None` while not
    // known): a page kept past the link's delete says so rather than show another link.
    let pinned = Memo::new(move |_| match link.get()? {
        Ok(found) => Some(id.is_none_or(|id| found.id == id)),
        Err(err) => (err.status == 404 && id.is_some()).then_some(false),
    });
    let title = code.clone();
    let gone = code;
    view! {
        <section class="page" aria-labelledby="link-title">
            <p class="crumbs"><Link to=Page::Links>{t!(i18n, link_stats.back)}</Link></p>
            <div class="page-head">
                <h1 id="link-title">{t!(i18n, link_stats.title, code = move || title.clone())}</h1>
            </div>
            {move || match pinned.get() {
                Some(false) => {
                    let code = gone.clone();
                    view! { <p class="error-box" role="alert">{t_string!(i18n, link_stats.gone, code)}</p> }.into_any()
                }
                _ => {
                    let path = path.clone();
                    view! {
                        <Loaded data=link reload=reload
                            loading=Signal::derive(move || t_string!(i18n, link_stats.loading_link).to_owned())
                            children=move |link: ShortLink| view! { <LinkAnalytics link=link path=path.clone()/> }/>
                    }.into_any()
                }
            }}
        </section>
    }
}

/// The link's line and its analytics, once it is known to be the link the page is for.
#[component]
fn LinkAnalytics(link: ShortLink, path: String) -> impl IntoView {
    let i18n = use_i18n();
    let auth = expect_context::<crate::Auth>();
    let range = remembered_range();
    let csv_url = {
        let path = path.clone();
        move || {
            // The export takes only the range (and the workspace).
            let query = range.with(StatsRange::query).unwrap_or_default();
            let bounds = ExportQuery {
                from: query.from,
                to: query.to,
                // A download carries no header: the URL names the workspace shown.
                workspace: auth.workspace_id(),
            };
            format!("{path}/clicks.csv?{}", query_string(&bounds))
        }
    };
    let (page, stats) = StatsPage::provide(range, format!("{path}/stats"));
    // Clicks counted at the shortener a link was imported from have no time, so no range
    // holds them: said apart from the totals.
    let imported = link.imported_clicks;
    let variants: Vec<(u8, String)> = link
        .split
        .with_ids()
        .map(|(id, v)| (id, v.destination.as_str().to_owned()))
        .collect();
    view! {
        <div class="link-head">
            <p class="link-summary">
                <a href=link.short_url.clone() target="_blank" rel="noopener noreferrer">{link.short_url.clone()}</a>
                <span aria-hidden="true">" → "</span>
                <span class="visually-hidden">" "{t!(i18n, link_stats.goes_to)}" "</span>
                <span class="destination">{link.destination.as_str().to_owned()}</span>
            </p>
            <a class="button secondary" href=csv_url download="">{t!(i18n, link_stats.export_csv)}</a>
        </div>
        {(imported > 0).then(|| view! {
            <p class="hint" id="imported-clicks">{t_string!(i18n, link_stats.imported, count = crate::range::count(imported as i64))}</p>
        })}
        <RangePicker/>
        <p class="hint live">{t!(i18n, stats.live)}</p>
        <Loaded data=stats reload=page.live.tick
            loading=Signal::derive(move || t_string!(i18n, stats.loading).to_owned())
            children=move |stats: Stats| view! { <Figures stats=stats variants=variants.clone()/> }/>
    }
}

#[component]
fn Figures(stats: Stats, variants: Vec<(u8, String)>) -> impl IntoView {
    let i18n = use_i18n();
    let nothing = stats.totals.total == 0 && stats.totals.bots == 0;
    view! {
        <Totals items=vec![
            (t_string!(i18n, link_stats.clicks), stats.totals.total),
            (t_string!(i18n, link_stats.uniques), stats.totals.uniques),
            (t_string!(i18n, link_stats.qr_scans), stats.totals.qr_scans),
            (t_string!(i18n, link_stats.bots), stats.totals.bots),
        ]/>
        {nothing.then(|| view! { <p class="empty">{t!(i18n, link_stats.empty)}</p> })}
        <SeriesChart points=stats.series interval=stats.interval/>
        <BreakdownTables top=stats.top details_shed=stats.totals.details_shed variants=variants/>
    }
}
