//! Pieces both stats pages share: their state (the range, live updates), the range picker,
//! totals, and breakdown tables.
//!
//! A stats page is live: while it is shown it asks again every 5 seconds, so a click made
//! elsewhere appears within moments. It asks only once the last answer came (never two
//! requests at once), waits twice as long after each failure in a row (up to a minute),
//! asks nothing while the tab is hidden and once at once when it is shown again, and keeps
//! the figures shown while it asks (the loader keeps them, and an unchanged answer draws
//! nothing anew).

use gloo_storage::Storage;
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use shortlink::stats::{Breakdowns, Interval, OTHER_VALUES, Stats};

use crate::i18n::{t, t_string, use_i18n};
use crate::range::{Preset, StatsRange, count, country_name};
use crate::widgets::{Json, load_json};

const RANGE_KEY: &str = "kurz.stats.range";
/// The wait between a live page's requests while they succeed, in ms.
const POLL_MS: u32 = 5_000;
/// The longest wait after failures, in ms.
const MAX_WAIT_MS: u32 = 60_000;

/// A stats page's state, in one context: what it shows and its live updates.
#[derive(Clone, Copy)]
pub struct StatsPage {
    pub range: RwSignal<StatsRange>,
    pub live: Live,
}

impl StatsPage {
    /// Provides the page's state, and loads the stats of `path` (`/api/v1/stats`) for the
    /// range: again when it changes, and at each of the live page's turns.
    pub fn provide(range: RwSignal<StatsRange>, path: String) -> (Self, Json<Stats>) {
        let page = Self {
            range,
            live: Live::new(),
        };
        provide_context(page);
        let live = page.live;
        let stats = load_json::<Stats>(move || {
            live.started();
            // A custom range being typed may be invalid for a moment: the picker says why,
            // and the default range stands in.
            let query = range
                .with(StatsRange::query)
                .or_else(|_| StatsRange::default().query())
                .unwrap_or_default();
            format!("{path}?{}", crate::api::query_string(&query))
        });
        live.follow(stats);
        (page, stats)
    }
}

/// Asks a page's stats again: every [`POLL_MS`] while the tab is shown and the answers come,
/// less often while they fail.
#[derive(Clone, Copy)]
pub struct Live {
    /// Read by the page's loader: bumped to ask again (by the wait's end, by Try again).
    pub tick: RwSignal<u32>,
    /// A request is under way: no second one starts (its answer starts the next wait).
    in_flight: StoredValue<bool>,
    /// Failed answers in a row: each doubles the wait.
    failures: StoredValue<u32>,
    /// Numbers the waits: a wait a later answer replaced does nothing when it ends.
    wait: StoredValue<u32>,
    /// A wait ended while the tab was hidden: ask as soon as it is shown.
    due: StoredValue<bool>,
}

impl Live {
    fn new() -> Self {
        let live = Self {
            tick: RwSignal::new(0),
            in_flight: StoredValue::new(false),
            failures: StoredValue::new(0),
            wait: StoredValue::new(0),
            due: StoredValue::new(false),
        };
        // `visibilitychange` is fired at the document and bubbles to the window.
        let shown = window_event_listener_untyped("visibilitychange", move |_| {
            if live.due.try_get_value() == Some(true) {
                live.ask();
            }
        });
        on_cleanup(move || shown.remove());
        live
    }

    /// The loader starts a request (read by it, so a tick asks again).
    fn started(self) {
        self.tick.track();
        self.in_flight.set_value(true);
    }

    /// After each answer (equal to the last or not), waits, then asks again.
    fn follow(self, stats: Json<Stats>) {
        Effect::new(move || {
            let Some(ok) = stats.answered() else {
                return;
            };
            self.in_flight.set_value(false);
            let failures = if ok {
                0
            } else {
                self.failures.get_value().saturating_add(1)
            };
            self.failures.set_value(failures);
            let wait = self.wait.get_value().wrapping_add(1);
            self.wait.set_value(wait);
            let ms = POLL_MS
                .saturating_mul(1 << failures.min(4))
                .min(MAX_WAIT_MS);
            // A task, not a forgotten `Timeout`: a forgotten timer's closure is never freed,
            // and a page left open polls 17,000 times a day.
            leptos::task::spawn_local(async move {
                TimeoutFuture::new(ms).await;
                // The page may be gone, or a later answer started another wait.
                if self.wait.try_get_value() == Some(wait) {
                    self.due.set_value(true);
                    self.ask();
                }
            });
        });
    }

    /// Asks again now, unless the tab is hidden (then when it is shown) or a request is
    /// under way.
    fn ask(self) {
        if document().hidden() || self.in_flight.get_value() {
            return;
        }
        self.due.set_value(false);
        self.tick.update(|n| *n = n.wrapping_add(1));
    }
}

/// The range last chosen (kept across reloads), as a signal that saves each change.
pub fn remembered_range() -> RwSignal<StatsRange> {
    let range =
        RwSignal::new(gloo_storage::LocalStorage::get::<StatsRange>(RANGE_KEY).unwrap_or_default());
    Effect::new(move || {
        let _ = gloo_storage::LocalStorage::set(RANGE_KEY, range.get());
    });
    range
}

#[component]
pub fn RangePicker() -> impl IntoView {
    let i18n = use_i18n();
    let range = expect_context::<StatsPage>().range;
    let presets = Preset::ALL
        .iter()
        .map(|preset| {
            let preset = *preset;
            view! {
                <button type="button" class="segment"
                    aria-pressed=move || (range.with(|r| r.preset) == preset).to_string()
                    on:click=move |_| range.update(|r| {
                        r.preset = preset;
                        r.interval = preset.default_interval();
                    })>
                    {preset.label()}
                </button>
            }
        })
        .collect_view();
    let interval_value = move || range.with(|r| r.interval.as_str().to_owned());
    let invalid = move || range.with(|r| r.bounds().err());
    view! {
        <div class="range-picker" role="group" aria-label=move || t_string!(i18n, stats.range)>
            <div class="segments">{presets}</div>
            {move || (range.with(|r| r.preset) == Preset::Custom).then(|| view! {
                <label>
                    <span class="label">{t!(i18n, stats.from)}</span>
                    <input type="date" prop:value=move || range.with(|r| r.from_day.clone())
                        on:change=move |ev| range.update(|r| r.from_day = event_target_value(&ev))/>
                </label>
                <label>
                    <span class="label">{t!(i18n, stats.to)}</span>
                    <input type="date" prop:value=move || range.with(|r| r.to_day.clone())
                        on:change=move |ev| range.update(|r| r.to_day = event_target_value(&ev))/>
                </label>
            })}
            <label>
                <span class="label">{t!(i18n, stats.interval)}</span>
                <select prop:value=interval_value on:change=move |ev| {
                    let interval = match event_target_value(&ev).as_str() {
                        "hour" => Interval::Hour,
                        "week" => Interval::Week,
                        _ => Interval::Day,
                    };
                    range.update(|r| r.interval = interval);
                }>
                    <option value="hour">{t!(i18n, stats.hour)}</option>
                    <option value="day">{t!(i18n, stats.day)}</option>
                    <option value="week">{t!(i18n, stats.week)}</option>
                </select>
            </label>
            <label class="check">
                <input type="checkbox" prop:checked=move || range.with(|r| r.bots)
                    on:change=move |ev| range.update(|r| r.bots = event_target_checked(&ev))/>
                {t!(i18n, stats.include_bots)}
            </label>
        </div>
        <p class="error" role="alert">{invalid}</p>
    }
}

/// A row of headline numbers.
#[component]
pub fn Totals(items: Vec<(&'static str, i64)>) -> impl IntoView {
    view! {
        <dl class="totals">
            {items.into_iter().map(|(label, value)| view! {
                <div class="total"><dt>{label}</dt><dd>{count(value)}</dd></div>
            }).collect_view()}
        </dl>
    }
}

/// What a breakdown is of: its title, and how its values are named.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Referrer,
    Country,
    Device,
    Browser,
    Os,
    Variant,
    Tag,
}

/// The top values of each breakdown, as tables with a bar for each share. The A/B variants
/// (of a link with a split) and the tags (of the whole workspace) only when there are some.
/// Above them, how many visits of the range are in the totals but not in the tables
/// (`details_shed`), when any are.
#[component]
pub fn BreakdownTables(
    top: Breakdowns,
    /// Visits of the range counted without their details (`Counts::details_shed`).
    details_shed: i64,
    /// The variants of the link's split, in order: each one's id (which the breakdown's values
    /// name) and destination.
    #[prop(optional)]
    variants: Vec<(u8, String)>,
) -> impl IntoView {
    let i18n = use_i18n();
    let variant = move |value: &str| -> Option<String> {
        let id = value.parse::<u8>().ok()?;
        Some(match variants.iter().position(|(of, _)| *of == id) {
            Some(index) => {
                let (n, destination) = (index + 1, &variants[index].1);
                t_string!(i18n, stats.variant, n, destination)
            }
            None => t_string!(i18n, stats.variant_gone, id),
        })
    };
    // The API's names of values that are not names of things (`direct`, `mobile`, …), in
    // the dashboard's language; countries by their name.
    let name = move |kind: Kind, value: String| -> String {
        let word = match (kind, value.as_str()) {
            (_, OTHER_VALUES) => t_string!(i18n, stats.other_values),
            (Kind::Referrer, "direct") => t_string!(i18n, stats.direct),
            (Kind::Country, "unknown") => t_string!(i18n, stats.unknown),
            (Kind::Country, code) => return country_name(code),
            (Kind::Device, "desktop") => t_string!(i18n, stats.desktop),
            (Kind::Device, "mobile") => t_string!(i18n, stats.mobile),
            (Kind::Device, "tablet") => t_string!(i18n, stats.tablet),
            (Kind::Device, "bot") => t_string!(i18n, stats.bot),
            (Kind::Device, "other") | (Kind::Browser | Kind::Os, "Other") => {
                t_string!(i18n, stats.other)
            }
            (Kind::Variant, id) => return variant(id).unwrap_or(value),
            _ => return value,
        };
        word.to_owned()
    };
    let tables = [
        (
            Kind::Referrer,
            t_string!(i18n, stats.referrers),
            top.referrer,
        ),
        (Kind::Country, t_string!(i18n, stats.countries), top.country),
        (Kind::Device, t_string!(i18n, stats.devices), top.device),
        (Kind::Browser, t_string!(i18n, stats.browsers), top.browser),
        (Kind::Os, t_string!(i18n, stats.os), top.os),
        (Kind::Variant, t_string!(i18n, stats.variants), top.variant),
        (Kind::Tag, t_string!(i18n, stats.tags), top.tag),
    ];
    view! {
        {(details_shed > 0).then(|| view! {
            <p class="hint details-shed" role="note">
                {t!(i18n, stats.details_shed, n = move || count(details_shed))}
            </p>
        })}
        <div class="breakdowns">
            {tables
                .into_iter()
                .filter(|(kind, _, rows)| !(rows.is_empty() && matches!(kind, Kind::Variant | Kind::Tag)))
                .map(|(kind, title, rows)| {
                    let rows = rows.into_iter().map(|row| (name(kind, row.value), row.count)).collect();
                    view! { <Breakdown title=title rows=rows/> }
                })
                .collect_view()}
        </div>
    }
}

#[component]
fn Breakdown(title: &'static str, rows: Vec<(String, i64)>) -> impl IntoView {
    let i18n = use_i18n();
    let total: i64 = rows.iter().map(|(_, count)| count).sum::<i64>().max(1);
    view! {
        <section class="breakdown panel" aria-label=title>
            <h3>{title}</h3>
            {if rows.is_empty() {
                view! { <p class="empty small">{t!(i18n, stats.no_visits)}</p> }.into_any()
            } else {
                view! {
                    <table>
                        <thead class="visually-hidden"><tr><th scope="col">{title}</th><th scope="col">{t!(i18n, stats.visits)}</th></tr></thead>
                        <tbody>
                            {rows.into_iter().map(|(value, visits)| {
                                // Tenths of a percent, formatted as integers (no float formatting in the .wasm).
                                let share = visits.saturating_mul(1000) / total;
                                view! {
                                    <tr>
                                        <td class="bar-cell">
                                            <span class="bar" style=format!("width: {}.{}%", share / 10, share % 10)></span>
                                            <span class="bar-label">{value}</span>
                                        </td>
                                        <td class="num">{count(visits)}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}
