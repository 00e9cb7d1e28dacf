//! One link's analytics: time series, unique visitors, breakdowns, CSV export.
//!
//! The page is addressed by code and, from every link the dashboard makes, pinned to the
//! link's id ([`Page::Link`]): the API reads a link's data by code, so the page first checks
//! that the link with the code now is the one it was opened for, and asks for its analytics
//! only then. A code freed by a delete and taken by another link in the moment between that
//! check and the next request is the window that remains.

use leptos::prelude::*;

use crate::chart::SeriesChart;
use crate::nav::{Link, Page};
use crate::pages::stats_view::{BreakdownTables, RangePicker, Totals, remembered_range};
use crate::{Auth, api};

#[component]
pub fn LinkStats(code: String, id: Option<i64>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let code = Signal::stored(code);
    let range = remembered_range();
    let link = crate::widgets::load(move || {
        let code = code.get();
        async move {
            match (api::get_link(&code).await, id) {
                (Ok(link), Some(id)) if link.id != id => Err(gone(&code)),
                (Err(err), Some(_)) if err.status == 404 => Err(gone(&code)),
                (answer, _) => answer,
            }
        }
    });
    let found = move || matches!(link.get(), Some(Ok(_)));
    // None until the link is known to be the one the address names.
    let stats = crate::widgets::load(move || {
        let code = code.get();
        let query = range.with(crate::range::StatsRange::query);
        let found = found();
        async move {
            if !found {
                return None;
            }
            Some(match query {
                Ok(query) => api::stats(Some(&code), &query).await.map_err(|e| {
                    auth.check(&e);
                    e.message
                }),
                Err(message) => Err(message),
            })
        }
    });
    let csv_url = move || {
        let code = api::encode(&code.get());
        let bounds = range.with(crate::range::StatsRange::query).ok().map(|q| {
            // The export takes only the range.
            q.split('&')
                .filter(|part| part.starts_with("from=") || part.starts_with("to="))
                .collect::<Vec<_>>()
                .join("&")
        });
        format!(
            "/api/v1/links/{code}/clicks.csv?{}",
            bounds.unwrap_or_default()
        )
    };
    view! {
        <section class="page" aria-labelledby="link-title">
            <p class="crumbs"><Link to=Page::Links>"← Links"</Link></p>
            <div class="page-head">
                <h1 id="link-title">{move || format!("Analytics of {}", code.get())}</h1>
                {move || found().then(|| view! {
                    <a class="button secondary" href=csv_url download="">"Export CSV"</a>
                })}
            </div>
            {move || match link.get() {
                None => view! { <p class="loading">"Loading the link…"</p> }.into_any(),
                Some(Err(err)) => {
                    auth.check(&err);
                    view! { <p class="error-box" role="alert">{err.message}</p> }.into_any()
                }
                Some(Ok(link)) => view! {
                    <p class="link-summary">
                        <a href=link.short_url.clone() target="_blank" rel="noopener noreferrer">{link.short_url.clone()}</a>
                        " → "
                        <span class="destination">{link.destination.as_str().to_owned()}</span>
                    </p>
                }.into_any(),
            }}
            <RangePicker range=range/>
            {move || match stats.get() {
                None => view! { <p class="loading">"Loading analytics…"</p> }.into_any(),
                // The link's own line above says it is loading, or gone.
                Some(None) => ().into_any(),
                Some(Some(Err(message))) => view! { <p class="error-box" role="alert">{message}</p> }.into_any(),
                Some(Some(Ok(stats))) => {
                    let interval = stats.interval;
                    let series = stats.series.clone();
                    let nothing = stats.totals.total == 0 && stats.totals.bots == 0;
                    // Clicks counted at the shortener a link was imported from have no time,
                    // so no range holds them: said apart from the totals.
                    let imported = link.with(|link| match link {
                        Some(Ok(link)) => link.imported_clicks,
                        _ => 0,
                    });
                    let variants = link.with(|link| match link {
                        Some(Ok(link)) => link.split.as_slice().iter().map(|v| v.destination.as_str().to_owned()).collect(),
                        _ => Vec::new(),
                    });
                    view! {
                        <Totals items=vec![
                            ("Clicks", stats.totals.total),
                            ("Unique visitors", stats.totals.uniques),
                            ("QR scans", stats.totals.qr_scans),
                            ("Bots", stats.totals.bots),
                        ]/>
                        {(imported > 0).then(|| view! {
                            <p class="hint" id="imported-clicks">{format!("{} clicks before import", crate::range::count(imported as i64))}</p>
                        })}
                        {nothing.then(|| view! { <p class="empty">"No visits in this range yet. Share the short link, or choose a longer range."</p> })}
                        <SeriesChart points=Signal::derive(move || series.clone()) interval=Signal::derive(move || interval)/>
                        <BreakdownTables top=stats.top variants=variants/>
                    }.into_any()
                }
            }}
        </section>
    }
}

/// The answer for a page pinned to a link that no longer has its code.
fn gone(code: &str) -> api::ApiError {
    api::ApiError {
        status: 404,
        code: "not_found".to_owned(),
        message: format!(
            "This link was deleted. The code {code} is free again, or belongs to another link now: find that one under Links."
        ),
        field: None,
    }
}
