//! The clicks-over-time chart: drawn into an SVG string, sized to its container,
//! coloured for the light or dark theme, with a tooltip for the bucket under the pointer;
//! for screen readers (and anyone) a summary as its name and its points as a table.

use leptos::ev;
use leptos::html::Div;
use leptos::prelude::*;
use shortlink::stats::{Interval, Point};

use crate::i18n::{t, t_string, use_i18n};
use crate::range::{bucket_label, bucket_title, count};

const HEIGHT: u32 = 280;
const MARGIN: u32 = 12;
const MARGIN_RIGHT: u32 = 32;
const Y_LABELS: u32 = 56;
const X_LABELS: u32 = 28;

/// Whether the system asks for dark colours; follows changes while the page is open.
#[derive(Debug, Clone, Copy)]
pub struct Dark(pub ReadSignal<bool>);

pub fn watch_dark_mode() -> Dark {
    let query = window()
        .match_media("(prefers-color-scheme: dark)")
        .ok()
        .flatten();
    let (dark, set_dark) = signal(query.as_ref().is_some_and(web_sys::MediaQueryList::matches));
    if let Some(query) = query {
        let on_change = wasm_bindgen::closure::Closure::<dyn Fn(web_sys::MediaQueryListEvent)>::new(
            move |event: web_sys::MediaQueryListEvent| set_dark.set(event.matches()),
        );
        query.set_onchange(Some(wasm_bindgen::JsCast::unchecked_ref(
            on_change.as_ref(),
        )));
        // Lives as long as the page.
        on_change.forget();
    }
    Dark(dark)
}

struct Palette {
    text: &'static str,
    grid: &'static str,
    clicks: &'static str,
    visitors: &'static str,
}

fn palette(dark: bool) -> Palette {
    if dark {
        Palette {
            text: "#c9d1d9",
            grid: "#30363d",
            clicks: "#58a6ff",
            visitors: "#f0883e",
        }
    } else {
        Palette {
            text: "#3a404a",
            grid: "#e3e6ea",
            clicks: "#1f5fd1",
            visitors: "#c24e00",
        }
    }
}

/// The smallest of 1, 2, 5, 10, 20, 50, … that is at least `n`: a readable step between the
/// y axis's labels.
fn nice_step(n: i64) -> i64 {
    let mut step = 1;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= n {
                return step * factor;
            }
        }
        step *= 10;
    }
}

/// `&`, `<` and `>` escaped, for text inside the SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG of clicks (area) and unique visitors (line) per bucket: a few paths and labels,
/// drawn here rather than by a charting crate (which cost ~12 KB of the gzipped .wasm).
/// Coordinates are whole pixels, so no float formatting is needed either.
fn render(points: &[Point], interval: Interval, width: u32, dark: bool) -> String {
    use std::fmt::Write;
    let colors = palette(dark);
    let top = points
        .iter()
        .map(|p| p.counts.total.max(p.counts.uniques))
        .max()
        .unwrap_or(0);
    // Four steps of a readable size, with some headroom; a visible axis when nothing happened.
    let step = nice_step(((top + top / 8).max(4) + 3) / 4);
    let y_max = step * 4;
    let (left, right) = (
        i64::from(MARGIN + Y_LABELS),
        i64::from(width - MARGIN_RIGHT),
    );
    let (top_px, bottom) = (i64::from(MARGIN), i64::from(HEIGHT - MARGIN - X_LABELS));
    let last = points.len().saturating_sub(1).max(1) as i64;
    let x = |i: usize| left + (i as i64) * (right - left) / last;
    let y = |v: i64| bottom - v * (bottom - top_px) / y_max;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif" font-size="13" fill="{}">"#,
        colors.text
    );
    // Writing to a String cannot fail.
    for k in 0..=4 {
        let value = step * k;
        let at = y(value);
        let _ = write!(
            svg,
            r#"<line x1="{left}" x2="{right}" y1="{at}" y2="{at}" stroke="{}"/><text x="{}" y="{}" text-anchor="end">{}</text>"#,
            colors.grid,
            left - 6,
            at + 4,
            escape(&count(value))
        );
    }
    let labels = (width / 110).clamp(2, 8) as usize;
    let shown = points.len().min(labels).max(1);
    for k in 0..shown {
        let index = if shown == 1 {
            0
        } else {
            k * (points.len() - 1) / (shown - 1)
        };
        if let Some(point) = points.get(index) {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                x(index),
                bottom + 18,
                escape(&bucket_label(point.t, interval))
            );
        }
    }
    if !points.is_empty() {
        let line = |pick: fn(&Point) -> i64| {
            let mut path = String::new();
            for (i, point) in points.iter().enumerate() {
                let _ = write!(
                    path,
                    "{}{},{} ",
                    if i == 0 { 'M' } else { 'L' },
                    x(i),
                    y(pick(point))
                );
            }
            path
        };
        let clicks = line(|p| p.counts.total);
        let _ = write!(
            svg,
            r#"<path d="{clicks}L{},{bottom} L{left},{bottom} Z" fill="{}" fill-opacity="0.18" stroke="none"/><path d="{clicks}" fill="none" stroke="{}" stroke-width="2"/><path d="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            x(points.len() - 1),
            colors.clicks,
            colors.clicks,
            line(|p| p.counts.uniques),
            colors.visitors
        );
    }
    svg.push_str("</svg>");
    svg
}

thread_local! {
    /// The width the chart last had: a chart drawn anew (a live page's new answer) starts at
    /// it, so it is not drawn twice.
    static LAST_WIDTH: std::cell::Cell<u32> = const { std::cell::Cell::new(720) };
}

/// What the chart shows, in words: its range, totals and peak (the SVG's accessible name).
fn summary(points: &[Point], interval: Interval) -> String {
    let i18n = use_i18n();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return String::new();
    };
    let from = bucket_title(first.t, interval);
    let to = bucket_title(last.t, interval);
    let peak = points
        .iter()
        .max_by_key(|p| (p.counts.total, std::cmp::Reverse(p.t)))
        .filter(|p| p.counts.total > 0);
    let Some(peak) = peak else {
        return t_string!(i18n, stats.chart_empty, from, to);
    };
    let clicks = count(points.iter().map(|p| p.counts.total).sum());
    let uniques = count(points.iter().map(|p| p.counts.uniques).sum());
    t_string!(
        i18n,
        stats.chart_summary,
        from,
        to,
        clicks,
        uniques,
        peak = count(peak.counts.total),
        peak_at = bucket_title(peak.t, interval)
    )
}

/// The chart of a series (redrawn when the width or the theme change), named by a summary,
/// with its points as a table behind "Show as table".
#[component]
pub fn SeriesChart(points: Vec<Point>, interval: Interval) -> impl IntoView {
    let i18n = use_i18n();
    let Dark(dark) = expect_context::<Dark>();
    let container = NodeRef::<Div>::new();
    let (width, set_width) = signal(LAST_WIDTH.with(std::cell::Cell::get));
    let measure = move || {
        if let Some(element) = container.get_untracked() {
            let measured = element.client_width().max(280) as u32;
            LAST_WIDTH.with(|last| last.set(measured));
            if measured != width.get_untracked() {
                set_width.set(measured);
            }
        }
    };
    Effect::new(move || {
        // Once mounted, and at every resize.
        if container.get().is_some() {
            measure();
        }
    });
    let resize = window_event_listener(ev::resize, move |_| measure());
    on_cleanup(move || resize.remove());

    let label = summary(&points, interval);
    let points = StoredValue::new(points);
    let svg = Memo::new(move |_| {
        points.with_value(|points| render(points, interval, width.get(), dark.get()))
    });
    let (hover, set_hover) = signal(None::<(usize, f64)>);
    let on_move = move |event: ev::MouseEvent| {
        let n = points.with_value(Vec::len);
        let Some(element) = container.get_untracked() else {
            return;
        };
        if n == 0 {
            return;
        }
        let rect = element.get_bounding_client_rect();
        let x = f64::from(event.client_x()) - rect.left();
        // The plotting area starts after the margin and the y labels.
        let left = f64::from(MARGIN + Y_LABELS);
        let plot = rect.width() - left - f64::from(MARGIN_RIGHT);
        if plot <= 0.0 {
            return;
        }
        let fraction = ((x - left) / plot).clamp(0.0, 1.0);
        let index = (fraction * (n.saturating_sub(1).max(1)) as f64).round() as usize;
        set_hover.set(Some((index.min(n - 1), x)));
    };
    // For the pointer only: the summary and the table say the same to everyone.
    let tooltip = move || {
        let (index, x) = hover.get()?;
        let point = points.with_value(|points| points.get(index).cloned())?;
        let label = bucket_label(point.t, interval);
        Some(view! {
            <div class="tooltip" aria-hidden="true" style=format!("left: {}px", x.round() as i64)>
                <strong>{label}</strong>
                <span class="swatch clicks"></span>{t_string!(i18n, stats.tooltip_clicks, count = count(point.counts.total))}
                <span class="swatch visitors"></span>{t_string!(i18n, stats.tooltip_uniques, count = count(point.counts.uniques))}
            </div>
        })
    };
    let rows = points.with_value(|points| {
        points
            .iter()
            .map(|point| {
                view! {
                    <tr>
                        <th scope="row">{bucket_title(point.t, interval)}</th>
                        <td class="num">{count(point.counts.total)}</td>
                        <td class="num">{count(point.counts.uniques)}</td>
                    </tr>
                }
            })
            .collect_view()
    });
    view! {
        <figure class="chart">
            <div
                class="chart-canvas"
                node_ref=container
                on:mousemove=on_move
                on:mouseleave=move |_| set_hover.set(None)
            >
                <div class="svg" role="img" aria-label=label inner_html=move || svg.get()></div>
                {tooltip}
            </div>
            <figcaption class="legend">
                <span class="swatch clicks"></span>{t!(i18n, stats.clicks)}
                <span class="swatch visitors"></span>{t!(i18n, stats.uniques)}
            </figcaption>
            <details class="chart-table">
                <summary>{t!(i18n, stats.show_table)}</summary>
                <table>
                    <caption class="visually-hidden">{t!(i18n, stats.table_caption)}</caption>
                    <thead><tr>
                        <th scope="col">{t!(i18n, stats.period)}</th>
                        <th scope="col" class="num">{t!(i18n, stats.clicks)}</th>
                        <th scope="col" class="num">{t!(i18n, stats.uniques)}</th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </details>
        </figure>
    }
}
