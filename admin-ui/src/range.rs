//! The time range a stats page shows, and how times and numbers are written for people.
//!
//! Times are the browser's: ranges start at local midnight, the series is bucketed in the
//! browser's IANA time zone, and labels are local.

use serde::{Deserialize, Serialize};
use shortlink::query::StatsQuery;
use shortlink::stats::Interval;
use wasm_bindgen::JsValue;

use crate::i18n::td_string;

thread_local! {
    /// The dashboard's language as a BCP 47 tag (`en`, `ko`): dates and numbers are written in it.
    static LOCALE: std::cell::Cell<crate::i18n::Locale> = const { std::cell::Cell::new(crate::i18n::Locale::en) };
}

/// Writes dates and numbers in the language the dashboard shows, from now on and whenever
/// it changes.
pub fn follow_locale(i18n: leptos_i18n::I18nContext<crate::i18n::Locale>) {
    use leptos::prelude::Effect;
    Effect::new(move || set_locale(i18n.get_locale()));
    // Before the first effect runs, the first page may already write a date.
    set_locale(i18n.get_locale_untracked());
}

/// Dates and numbers in `locale` from now on (called before the pages are drawn anew in it).
pub fn set_locale(locale: crate::i18n::Locale) {
    LOCALE.with(|current| current.set(locale));
}

/// The dashboard's language now, for what is written outside a component (an API error).
pub fn locale() -> crate::i18n::Locale {
    LOCALE.with(std::cell::Cell::get)
}

/// Its BCP 47 tag, for the browser's `Intl` formats.
fn tag() -> &'static str {
    use leptos_i18n::Locale as _;
    locale().as_str()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    Day,
    Week,
    Month,
    Custom,
}

impl Preset {
    pub const ALL: [Self; 4] = [Self::Day, Self::Week, Self::Month, Self::Custom];

    /// Its name on the range picker, in the dashboard's language.
    pub fn label(self) -> &'static str {
        let locale = locale();
        match self {
            Self::Day => td_string!(locale, stats.preset_day),
            Self::Week => td_string!(locale, stats.preset_week),
            Self::Month => td_string!(locale, stats.preset_month),
            Self::Custom => td_string!(locale, stats.preset_custom),
        }
    }

    /// The interval that suits the range best.
    pub fn default_interval(self) -> Interval {
        match self {
            Self::Day => Interval::Hour,
            Self::Week | Self::Month | Self::Custom => Interval::Day,
        }
    }
}

/// What a stats page asks for. Kept in local storage, so a reload keeps the choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsRange {
    pub preset: Preset,
    /// `YYYY-MM-DD` (local days, both included) for [`Preset::Custom`].
    pub from_day: String,
    pub to_day: String,
    pub interval: Interval,
    pub bots: bool,
}

impl Default for StatsRange {
    fn default() -> Self {
        let today = local_day(js_sys::Date::now());
        Self {
            preset: Preset::Week,
            from_day: local_day(js_sys::Date::now() - 6.0 * DAY_MS),
            to_day: today,
            interval: Interval::Day,
            bots: false,
        }
    }
}

const DAY_MS: f64 = 86_400_000.0;

impl StatsRange {
    /// `[from, to)` in milliseconds since the epoch; why not, in the dashboard's language.
    pub fn bounds(&self) -> Result<(f64, f64), &'static str> {
        let now = js_sys::Date::now();
        let locale = locale();
        match self.preset {
            Preset::Day => Ok((now - DAY_MS, now)),
            Preset::Week => Ok((local_midnight_days_ago(6), now)),
            Preset::Month => Ok((local_midnight_days_ago(29), now)),
            Preset::Custom => {
                let from =
                    parse_day(&self.from_day).ok_or(td_string!(locale, stats.choose_start))?;
                let to = parse_day(&self.to_day).ok_or(td_string!(locale, stats.choose_end))?;
                if to < from {
                    return Err(td_string!(locale, stats.end_before_start));
                }
                // The end day is included: up to the next local midnight.
                let after = js_sys::Date::new(&JsValue::from_f64(to));
                after.set_date(after.get_date() + 1);
                Ok((from, after.get_time()))
            }
        }
    }

    /// The stats API's query, `to` being now for a preset (each time it is asked: a live
    /// page's next request sees the clicks made since).
    pub fn query(&self) -> Result<StatsQuery, &'static str> {
        let (from, to) = self.bounds()?;
        Ok(StatsQuery {
            from: instant(from),
            to: instant(to),
            interval: self.interval,
            tz: Some(time_zone()),
            bots: self.bots,
            top: Some(10),
        })
    }
}

/// Milliseconds since the epoch (a `Date`'s) → the instant, for a query.
fn instant(ms: f64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms as i64) * 1_000_000).ok()
}

fn iso(ms: f64) -> String {
    String::from(js_sys::Date::new(&JsValue::from_f64(ms)).to_iso_string())
}

/// `YYYY-MM-DD` of a local day → its local midnight, in ms.
fn parse_day(day: &str) -> Option<f64> {
    let mut parts = day.splitn(3, '-').map(|part| part.parse::<u32>().ok());
    let (year, month, date) = (parts.next()??, parts.next()??, parts.next()??);
    let midnight =
        js_sys::Date::new_with_year_month_day(year, month.checked_sub(1)? as i32, date as i32);
    let ms = midnight.get_time();
    (!ms.is_nan()).then_some(ms)
}

fn local_midnight_days_ago(days: i32) -> f64 {
    let today = js_sys::Date::new_0();
    // JavaScript carries a day before the 1st into the previous month.
    js_sys::Date::new_with_year_month_day(
        today.get_full_year(),
        today.get_month() as i32,
        today.get_date() as i32 - days,
    )
    .get_time()
}

/// `YYYY-MM-DD` of the local day holding `ms`, as `<input type=date>` wants it.
pub fn local_day(ms: f64) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(ms));
    format!(
        "{:04}-{:02}-{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date()
    )
}

/// The browser's IANA time zone, e.g. `Europe/Berlin`.
pub fn time_zone() -> String {
    let options = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new())
        .resolved_options();
    js_sys::Reflect::get(&options, &JsValue::from_str("timeZone"))
        .ok()
        .and_then(|zone| zone.as_string())
        .unwrap_or_else(|| "UTC".to_owned())
}

/// A point in time, in the browser's locale: `27 Nov 2026, 14:05`.
pub fn date_time(t: time::OffsetDateTime) -> String {
    locale_string(t, &[("dateStyle", "medium"), ("timeStyle", "short")])
}

/// A bucket's start, as short as its interval allows.
pub fn bucket_label(t: time::OffsetDateTime, interval: Interval) -> String {
    match interval {
        Interval::Hour => locale_string(
            t,
            &[
                ("weekday", "short"),
                ("hour", "2-digit"),
                ("minute", "2-digit"),
            ],
        ),
        Interval::Day | Interval::Week => {
            locale_string(t, &[("day", "numeric"), ("month", "short")])
        }
    }
}

/// A bucket's start in full, for the chart's table and summary: `3 Jul 2026, 14:00` for an
/// hour, `3 Jul 2026` for a day, `Week of 29 Jun 2026` for a week.
pub fn bucket_title(t: time::OffsetDateTime, interval: Interval) -> String {
    match interval {
        Interval::Hour => date_time(t),
        Interval::Day => locale_string(t, &[("dateStyle", "medium")]),
        Interval::Week => {
            let date = locale_string(t, &[("dateStyle", "medium")]);
            td_string!(locale(), stats.week_of, date)
        }
    }
}

/// A country's name in the dashboard's language from its ISO 3166 code (`DE`: `Germany`,
/// `독일`); anything else as it is.
pub fn country_name(code: &str) -> String {
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return code.to_owned();
    }
    let options = js_sys::Object::new();
    // Setting a property of a fresh plain object cannot fail.
    let _ = js_sys::Reflect::set(&options, &"type".into(), &"region".into());
    let locales = js_sys::Array::of1(&JsValue::from_str(tag()));
    js_sys::Intl::DisplayNames::new(&locales, &options)
        .of(code)
        .map_or_else(|| code.to_owned(), String::from)
}

fn locale_string(t: time::OffsetDateTime, options: &[(&str, &str)]) -> String {
    let ms = (t.unix_timestamp_nanos() / 1_000_000) as f64;
    let object = js_sys::Object::new();
    for (key, value) in options {
        // Setting a property of a fresh plain object cannot fail.
        let _ = js_sys::Reflect::set(&object, &JsValue::from_str(key), &JsValue::from_str(value));
    }
    String::from(js_sys::Date::new(&JsValue::from_f64(ms)).to_locale_string(tag(), &object))
}

/// `12345` → `12,345` (in the dashboard's language).
pub fn count(n: i64) -> String {
    String::from(js_sys::Number::from(n as f64).to_locale_string(tag()))
}

/// `<input type=datetime-local>` value (local) → RFC 3339 (UTC) for the API.
pub fn local_input_to_rfc3339(value: &str) -> Option<String> {
    let ms = js_sys::Date::new(&JsValue::from_str(value)).get_time();
    (!ms.is_nan()).then(|| iso(ms))
}

/// RFC 3339 instant → `<input type=datetime-local>` value, local.
pub fn to_local_input(t: time::OffsetDateTime) -> String {
    let ms = (t.unix_timestamp_nanos() / 1_000_000) as f64;
    let date = js_sys::Date::new(&JsValue::from_f64(ms));
    format!(
        "{}T{:02}:{:02}",
        local_day(ms),
        date.get_hours(),
        date.get_minutes()
    )
}
