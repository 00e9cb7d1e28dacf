//! The clicks-over-time chart: drawn by plotters into an SVG string, sized to its container,
//! coloured for the light or dark theme, with a tooltip for the bucket under the pointer.

use leptos::ev;
use leptos::html::Div;
use leptos::prelude::*;
use plotters::prelude::*;
use shortlink::stats::{Interval, Point};

use crate::range::{bucket_label, count};

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
    text: RGBColor,
    grid: RGBColor,
    clicks: RGBColor,
    visitors: RGBColor,
}

fn palette(dark: bool) -> Palette {
    if dark {
        Palette {
            text: RGBColor(0xc9, 0xd1, 0xd9),
            grid: RGBColor(0x30, 0x36, 0x3d),
            clicks: RGBColor(0x58, 0xa6, 0xff),
            visitors: RGBColor(0xf0, 0x88, 0x3e),
        }
    } else {
        Palette {
            text: RGBColor(0x3a, 0x40, 0x4a),
            grid: RGBColor(0xe3, 0xe6, 0xea),
            clicks: RGBColor(0x1f, 0x5f, 0xd1),
            visitors: RGBColor(0xc2, 0x4e, 0x00),
        }
    }
}

/// The SVG of clicks (area) and unique visitors (line) per bucket.
fn render(points: &[Point], interval: Interval, width: u32, dark: bool) -> Result<String, String> {
    let colors = palette(dark);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, HEIGHT)).into_drawing_area();
        let top = points
            .iter()
            .map(|p| p.counts.total.max(p.counts.uniques))
            .max()
            .unwrap_or(0);
        // Some headroom, and a visible axis even when nothing happened.
        let y_max = (top + top / 8).max(4);
        let last = points.len().saturating_sub(1).max(1);
        let font = ("sans-serif", 13).into_font().color(&colors.text);
        let mut chart = ChartBuilder::on(&root)
            .margin(MARGIN)
            // Room for the last x label, which is centred on the right edge.
            .margin_right(MARGIN_RIGHT)
            .x_label_area_size(X_LABELS)
            .y_label_area_size(Y_LABELS)
            .build_cartesian_2d(0..last, 0..y_max)
            .map_err(|e| e.to_string())?;
        let x_labels = (width / 110).clamp(2, 8) as usize;
        chart
            .configure_mesh()
            .x_labels(x_labels)
            .y_labels(5)
            .x_label_formatter(&|i| {
                points
                    .get(*i)
                    .map(|p| bucket_label(p.t, interval))
                    .unwrap_or_default()
            })
            .y_label_formatter(&|v| count(*v))
            .label_style(font)
            .axis_style(colors.grid)
            .bold_line_style(colors.grid)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                AreaSeries::new(
                    points.iter().enumerate().map(|(i, p)| (i, p.counts.total)),
                    0,
                    colors.clicks.mix(0.18),
                )
                .border_style(colors.clicks.stroke_width(2)),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i, p.counts.uniques)),
                colors.visitors.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The chart of a series, redrawn when the data, the width or the theme change.
#[component]
pub fn SeriesChart(
    #[prop(into)] points: Signal<Vec<Point>>,
    #[prop(into)] interval: Signal<Interval>,
) -> impl IntoView {
    let Dark(dark) = expect_context::<Dark>();
    let container = NodeRef::<Div>::new();
    let (width, set_width) = signal(720_u32);
    let measure = move || {
        if let Some(element) = container.get_untracked() {
            let measured = element.client_width().max(280) as u32;
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

    let svg = Memo::new(move |_| {
        points.with(|points| render(points, interval.get(), width.get(), dark.get()))
    });
    let (hover, set_hover) = signal(None::<(usize, f64)>);
    let on_move = move |event: ev::MouseEvent| {
        let n = points.with(Vec::len);
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
    let tooltip = move || {
        let (index, x) = hover.get()?;
        let point = points.with(|points| points.get(index).cloned())?;
        let label = bucket_label(point.t, interval.get());
        Some(view! {
            <div class="tooltip" role="status" style=format!("left: {x:.0}px")>
                <strong>{label}</strong>
                <span class="swatch clicks"></span>{format!("{} clicks", count(point.counts.total))}
                <span class="swatch visitors"></span>{format!("{} unique visitors", count(point.counts.uniques))}
            </div>
        })
    };
    view! {
        <figure class="chart">
            <div
                class="chart-canvas"
                node_ref=container
                on:mousemove=on_move
                on:mouseleave=move |_| set_hover.set(None)
                role="img"
                aria-label="Clicks and unique visitors over time"
            >
                {move || match svg.get() {
                    Ok(svg) => view! { <div class="svg" inner_html=svg></div> }.into_any(),
                    Err(err) => view! { <p class="error">{format!("The chart could not be drawn: {err}")}</p> }.into_any(),
                }}
                {tooltip}
            </div>
            <figcaption class="legend">
                <span class="swatch clicks"></span>"Clicks"
                <span class="swatch visitors"></span>"Unique visitors"
            </figcaption>
        </figure>
    }
}
