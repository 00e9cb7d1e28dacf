//! Pieces both stats pages show: the range picker, totals, and breakdown tables.

use gloo_storage::Storage;
use leptos::prelude::*;
use shortlink::stats::{Breakdowns, Interval, Ranked};

use crate::range::{Preset, StatsRange, count};

const RANGE_KEY: &str = "kurz.stats.range";

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
pub fn RangePicker(range: RwSignal<StatsRange>) -> impl IntoView {
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
    view! {
        <div class="range-picker" role="group" aria-label="Time range">
            <div class="segments">{presets}</div>
            {move || (range.with(|r| r.preset) == Preset::Custom).then(|| view! {
                <label>
                    <span class="label">"From"</span>
                    <input type="date" prop:value=move || range.with(|r| r.from_day.clone())
                        on:change=move |ev| range.update(|r| r.from_day = event_target_value(&ev))/>
                </label>
                <label>
                    <span class="label">"To"</span>
                    <input type="date" prop:value=move || range.with(|r| r.to_day.clone())
                        on:change=move |ev| range.update(|r| r.to_day = event_target_value(&ev))/>
                </label>
            })}
            <label>
                <span class="label">"Interval"</span>
                <select prop:value=interval_value on:change=move |ev| {
                    let interval = match event_target_value(&ev).as_str() {
                        "hour" => Interval::Hour,
                        "week" => Interval::Week,
                        _ => Interval::Day,
                    };
                    range.update(|r| r.interval = interval);
                }>
                    <option value="hour">"Hour"</option>
                    <option value="day">"Day"</option>
                    <option value="week">"Week"</option>
                </select>
            </label>
            <label class="check">
                <input type="checkbox" prop:checked=move || range.with(|r| r.bots)
                    on:change=move |ev| range.update(|r| r.bots = event_target_checked(&ev))/>
                "Include bots"
            </label>
        </div>
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

/// The top values of each breakdown, as tables with a bar for each share. The A/B variants
/// (of a link with a split) and the tags (of the whole workspace) only when there are some.
#[component]
pub fn BreakdownTables(
    top: Breakdowns,
    /// The destinations of the link's split, in order: a variant's index names one.
    #[prop(optional)]
    variants: Vec<String>,
) -> impl IntoView {
    let label = move |index: usize| match variants.get(index) {
        Some(destination) => format!("Variant {}: {destination}", index + 1),
        None => format!("Variant {} (no longer in the split)", index + 1),
    };
    let variant_rows = top
        .variant
        .into_iter()
        .map(|row| Ranked {
            value: row.value.parse().map_or(row.value, &label),
            count: row.count,
        })
        .collect::<Vec<_>>();
    let tables = [
        ("Referrers", top.referrer),
        ("Countries", top.country),
        ("Devices", top.device),
        ("Browsers", top.browser),
        ("Operating systems", top.os),
        ("A/B variants", variant_rows),
        ("Tags", top.tag),
    ];
    let optional = ["A/B variants", "Tags"];
    view! {
        <div class="breakdowns">
            {tables
                .into_iter()
                .filter(|(title, rows)| !(rows.is_empty() && optional.contains(title)))
                .map(|(title, rows)| view! { <Breakdown title=title rows=rows/> })
                .collect_view()}
        </div>
    }
}

#[component]
fn Breakdown(title: &'static str, rows: Vec<Ranked>) -> impl IntoView {
    let total: i64 = rows.iter().map(|r| r.count).sum::<i64>().max(1);
    view! {
        <section class="breakdown panel" aria-label=title>
            <h3>{title}</h3>
            {if rows.is_empty() {
                view! { <p class="empty small">"No visits in this range."</p> }.into_any()
            } else {
                view! {
                    <table>
                        <thead class="visually-hidden"><tr><th scope="col">{title}</th><th scope="col">"Visits"</th></tr></thead>
                        <tbody>
                            {rows.into_iter().map(|row| {
                                // Tenths of a percent, formatted as integers (no float formatting in the .wasm).
                                let share = row.count.saturating_mul(1000) / total.max(1);
                                view! {
                                    <tr>
                                        <td class="bar-cell">
                                            <span class="bar" style=format!("width: {}.{}%", share / 10, share % 10)></span>
                                            <span class="bar-label">{row.value}</span>
                                        </td>
                                        <td class="num">{count(row.count)}</td>
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
