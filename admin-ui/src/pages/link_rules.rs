//! The editors of a link's rules in the link form: a text field with its API error, the
//! ordered lists of targeting rules and A/B variants (one list editor for both), tags as chips,
//! and the UTM builder with the final URL as the redirect will make it.
//!
//! Nothing here checks a value: what a person typed is sent as typed, and the API's error is
//! shown at the input its `field` names (`targets[2].when.country[0]`, `split`, `utm.source`).

use leptos::prelude::*;
use shortlink::agent::{Device, Os};
use shortlink::rules::{Condition, Tag, Target, Utm, UtmValue, Variant};

use crate::api::{ApiError, TargetForm, Typed, UtmForm, VariantForm, When};

/// The last error of the form, shown by the inputs whose path it names.
#[derive(Debug, Clone, Copy)]
pub struct Errors(pub RwSignal<Option<ApiError>>);

impl Errors {
    /// The message of an error about `path` or a value inside it (`targets[0]` takes
    /// `targets[0].when.country[1]`), tracked.
    pub fn under(self, path: String) -> Signal<Option<String>> {
        Signal::derive(move || {
            self.0.with(|error| {
                error.as_ref().and_then(|e| {
                    e.field
                        .as_deref()
                        .is_some_and(|field| is_under(field, &path))
                        .then(|| e.message.clone())
                })
            })
        })
    }
}

fn is_under(field: &str, path: &str) -> bool {
    field
        .strip_prefix(path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// A labelled input; the API's error about `path` shows under it and marks it invalid.
#[component]
pub fn Field(
    /// The input's id (its error's id adds `-error`).
    id: String,
    label: &'static str,
    value: RwSignal<String>,
    errors: Errors,
    /// Where the API names this value: `fallback_url`, `utm.source`, `split[1].weight`.
    path: String,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] hint: &'static str,
    #[prop(optional)] placeholder: &'static str,
    /// The label says which row it belongs to only to screen readers (`Destination of rule 2`).
    #[prop(optional)]
    context: String,
) -> impl IntoView {
    let error = errors.under(path);
    let error_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = if hint.is_empty() {
        error_id.clone()
    } else {
        format!("{error_id} {hint_id}")
    };
    view! {
        <div class="field">
            <label for=id.clone()>{label}<span class="visually-hidden">{context}</span></label>
            // A browser must not fill a saved password (the person's own) into a link's.
            <input id=id type=kind placeholder=placeholder bind:value=value
                autocomplete=if kind == "password" { "new-password" } else { "off" }
                aria-invalid=move || error.with(Option::is_some).to_string() aria-describedby=described/>
            {(!hint.is_empty()).then(|| view! { <p class="hint" id=hint_id>{hint}</p> })}
            <p class="field-error" id=error_id role="alert">{error}</p>
        </div>
    }
}

/// One row of an ordered list: a targeting rule, or a variant of the split (which uses
/// `destination` and `text`, the weight).
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// Unique in the page, for the ids of the row's inputs (its index changes when it moves).
    key: u32,
    kind: RwSignal<&'static str>,
    /// The countries or languages (comma-separated), the query parameter, or the weight.
    text: RwSignal<String>,
    /// The value a query parameter must have.
    extra: RwSignal<String>,
    /// The devices or operating systems ticked.
    checks: RwSignal<Vec<&'static str>>,
    destination: RwSignal<String>,
}

impl Row {
    fn new(kind: &'static str, text: String, extra: String, checks: Vec<&'static str>) -> Self {
        thread_local!(static NEXT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
        Self {
            key: NEXT.with(|next| next.replace(next.get() + 1)),
            kind: RwSignal::new(kind),
            text: RwSignal::new(text),
            extra: RwSignal::new(extra),
            checks: RwSignal::new(checks),
            destination: RwSignal::new(String::new()),
        }
    }

    /// The editor's row for a link's targeting rule.
    pub fn of_target(target: &Target) -> Self {
        let join = |values: Vec<&str>| values.join(", ");
        let row = match &target.when {
            Condition::Country(v) => Self::new(
                "country",
                join(v.iter().map(|c| c.as_str()).collect()),
                String::new(),
                Vec::new(),
            ),
            Condition::Language(v) => Self::new(
                "language",
                join(v.iter().map(|l| l.as_str()).collect()),
                String::new(),
                Vec::new(),
            ),
            Condition::Device(v) => Self::new(
                "device",
                String::new(),
                String::new(),
                v.iter().map(|d| d.as_str()).collect(),
            ),
            Condition::Os(v) => Self::new(
                "os",
                String::new(),
                String::new(),
                v.iter().map(|o| o.as_str()).collect(),
            ),
            Condition::Query(q) => Self::new("query", q.param.clone(), q.value.clone(), Vec::new()),
        };
        row.destination.set(target.destination.as_str().to_owned());
        row
    }

    /// The editor's row for a variant of a link's split.
    pub fn of_variant(variant: &Variant) -> Self {
        let row = Self::new("", variant.weight.to_string(), String::new(), Vec::new());
        row.destination.set(variant.destination.as_str().to_owned());
        row
    }

    /// The rule as typed, in the API's shape.
    pub fn target_body(self) -> TargetForm {
        let text = self.text.get_untracked();
        let when = match self.kind.get_untracked() {
            "query" => When::Query {
                param: text.trim().to_owned(),
                value: self.extra.get_untracked(),
            },
            kind @ ("device" | "os") => When::List(
                kind,
                self.checks
                    .with_untracked(|c| c.iter().map(|v| (*v).to_owned()).collect()),
            ),
            kind => When::List(
                kind,
                text.split(',')
                    .map(str::trim)
                    .filter(|value| !value.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
        };
        TargetForm {
            when,
            destination: self.destination.get_untracked().trim().to_owned(),
        }
    }

    /// The variant as typed.
    pub fn variant_body(self) -> VariantForm {
        VariantForm {
            destination: self.destination.get_untracked().trim().to_owned(),
            weight: Typed::of(&self.text.get_untracked()),
        }
    }
}

/// Moves the focus to the element `id` once the list has been drawn again.
fn focus_later(id: String) {
    request_animation_frame(move || {
        if let Some(element) = document().get_element_by_id(&id) {
            let element: web_sys::HtmlElement = wasm_bindgen::JsCast::unchecked_into(element);
            let _ = element.focus();
        }
    });
}

/// What a list is about: its API name, the name of one row, and how a row is drawn.
#[derive(Debug, Clone, Copy)]
pub struct ListKind {
    /// `targets` or `split`.
    pub path: &'static str,
    /// `rule` or `variant`, and as a title.
    pub noun: &'static str,
    pub title: &'static str,
    pub add_label: &'static str,
    /// Draws a row's inputs: the row, its API path (`targets[1]`), its name (`rule 2`).
    pub draw: fn(Row, &str, &str, Errors) -> AnyView,
}

/// A change of a list's rows.
type Edit = Box<dyn FnOnce(&mut Vec<Row>)>;

/// An ordered list of rows: add, remove, move up and down (keyboard focus follows the row).
/// A change of the list clears the last error, whose indexes no longer point at the same rows.
#[component]
pub fn RowList(kind: ListKind, rows: RwSignal<Vec<Row>>, errors: Errors) -> impl IntoView {
    let ListKind {
        path,
        noun,
        title,
        add_label,
        draw,
    } = kind;
    let owner = Owner::current();
    let change = move |edit: Edit, focus: String| {
        rows.update(|rows| edit(rows));
        errors.0.set(None);
        focus_later(focus);
    };
    let add = move |_| {
        let row = owner
            .as_ref()
            .map_or_else(Row::default_target, |o| o.with(Row::default_target));
        change(
            Box::new(move |rows| rows.push(row)),
            format!("{path}-{}-destination", row.key),
        );
    };
    let drawn = move || {
        let count = rows.with(Vec::len);
        rows.get()
            .into_iter()
            .enumerate()
            .map(|(index, row)| {
                let key = row.key;
                let name = format!("{noun} {}", index + 1);
                let at = format!("{path}[{index}]");
                // The moved row's same button keeps the focus, unless it is now disabled (at
                // an end of the list): then the other one.
                let step = move |up: bool| {
                    let to = if up { index - 1 } else { index + 1 };
                    let button = if (up && to > 0) || (!up && to + 1 == count) { "up" } else { "down" };
                    change(
                        Box::new(move |rows| rows.swap(index, to)),
                        format!("{path}-{key}-{button}"),
                    );
                };
                view! {
                    <li>
                        <fieldset class="row">
                            <legend>{format!("{title} {}", index + 1)}</legend>
                            {draw(row, &at, &name, errors)}
                            <div class="row-buttons">
                                <button type="button" class="secondary" id=format!("{path}-{key}-up")
                                    disabled=index == 0 aria-label=format!("Move {name} up")
                                    on:click=move |_| step(true)>"↑"</button>
                                <button type="button" class="secondary" id=format!("{path}-{key}-down")
                                    disabled=index + 1 == count aria-label=format!("Move {name} down")
                                    on:click=move |_| step(false)>"↓"</button>
                                <button type="button" class="danger" aria-label=format!("Remove {name}")
                                    on:click=move |_| change(Box::new(move |rows| { rows.remove(index); }), format!("{path}-add"))>
                                    "Remove"
                                </button>
                            </div>
                        </fieldset>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <ol class="rows">{drawn}</ol>
        <p class="field-error" id=format!("{path}-error") role="alert">{errors.under_exact(path)}</p>
        <button type="button" class="secondary" id=format!("{path}-add") on:click=add>{add_label}</button>
    }
}

impl Row {
    fn default_target() -> Self {
        Self::new("country", String::new(), String::new(), Vec::new())
    }
}

impl Errors {
    /// The message of an error about the list itself (`split`: the weights), not a row.
    fn under_exact(self, path: &'static str) -> Signal<Option<String>> {
        Signal::derive(move || {
            self.0.with(|error| {
                error
                    .as_ref()
                    .filter(|e| e.field.as_deref() == Some(path))
                    .map(|e| e.message.clone())
            })
        })
    }
}

const KINDS: [(&str, &str); 5] = [
    ("country", "Country"),
    ("device", "Device"),
    ("os", "Operating system"),
    ("language", "Language"),
    ("query", "Query parameter"),
];

/// A targeting rule: what a visit must match, and where it goes then.
pub fn draw_target(row: Row, at: &str, name: &str, errors: Errors) -> AnyView {
    let of = format!(" of {name}");
    let key = row.key;
    let id = move |part: &str| format!("targets-{key}-{part}");
    let when = format!("{at}.when");
    let values = {
        let of = of.clone();
        move || {
            match row.kind.get() {
            "device" => checks(row, &Device::ALL.map(|d| (d.as_str(), d.as_str())), format!("Devices{of}")),
            "os" => checks(row, &Os::ALL.map(|o| (o.as_str(), o.label())), format!("Operating systems{of}")),
            "query" => view! {
                <Field id=id("values") label="Parameter" value=row.text errors=errors path=when.clone() placeholder="ref" context=of.clone()/>
                <Field id=id("extra") label="Value" value=row.extra errors=errors path=format!("{when}.query.value") placeholder="newsletter" context=of.clone()/>
            }
            .into_any(),
            kind => {
                let (label, hint) = if kind == "language" {
                    ("Languages", "Language tags, comma-separated: de, pt-BR")
                } else {
                    ("Countries", "Two-letter codes, comma-separated: DE, AT")
                };
                view! { <Field id=id("values") label=label value=row.text errors=errors path=when.clone() hint=hint context=of.clone()/> }
                    .into_any()
            }
        }
        }
    };
    view! {
        <div class="field">
            <label for=id("kind")>"Match"<span class="visually-hidden">{of.clone()}</span></label>
            <select id=id("kind") prop:value=move || row.kind.get() on:change=move |ev| {
                let chosen = event_target_value(&ev);
                let kind = KINDS.iter().find(|(value, _)| *value == chosen).map_or("country", |(value, _)| *value);
                row.checks.set(Vec::new());
                row.kind.set(kind);
            }>
                {KINDS.iter().map(|(value, label)| view! { <option value=*value>{*label}</option> }).collect_view()}
            </select>
        </div>
        {values}
        <Field id=id("destination") label="Destination" value=row.destination errors=errors
            path=format!("{at}.destination") kind="url" placeholder="https://example.com/de" context=of/>
    }
    .into_any()
}

/// Ticks for devices or operating systems; the error of the condition shows under them.
fn checks(row: Row, options: &[(&'static str, &'static str)], legend: String) -> AnyView {
    let boxes = options
        .iter()
        .map(|&(value, label)| {
            view! {
                <label class="check">
                    <input type="checkbox" prop:checked=move || row.checks.with(|c| c.contains(&value))
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            row.checks.update(|c| {
                                c.retain(|v| *v != value);
                                if on { c.push(value); }
                            });
                        }/>
                    {label}
                </label>
            }
        })
        .collect_view();
    view! {
        <fieldset class="checks"><legend>{legend}</legend>{boxes}</fieldset>
    }
    .into_any()
}

/// A variant of the split: a destination and its share of the visits.
pub fn draw_variant(row: Row, at: &str, name: &str, errors: Errors) -> AnyView {
    let key = row.key;
    let of = format!(" of {name}");
    view! {
        <Field id=format!("split-{key}-destination") label="Destination" value=row.destination errors=errors
            path=format!("{at}.destination") kind="url" placeholder="https://example.com/b" context=of.clone()/>
        <Field id=format!("split-{key}-weight") label="Weight (%)" value=row.text errors=errors
            path=format!("{at}.weight") context=of/>
    }
    .into_any()
}

pub const TARGETS: ListKind = ListKind {
    path: "targets",
    noun: "rule",
    title: "Rule",
    add_label: "Add a rule",
    draw: draw_target,
};

pub const SPLIT: ListKind = ListKind {
    path: "split",
    noun: "variant",
    title: "Variant",
    add_label: "Add a variant",
    draw: draw_variant,
};

/// The sum of the weights typed (shown so a person sees it is not 100 before sending).
pub fn weight_sum(rows: &[Row]) -> u64 {
    rows.iter()
        .filter_map(|row| row.text.with(|w| w.trim().parse::<u64>().ok()))
        .sum()
}

/// Tags as chips: Enter or a comma adds the text typed, normalised as the API will keep it
/// (what the API would refuse is kept as typed, for the API to say why).
#[component]
pub fn TagsInput(
    tags: RwSignal<Vec<String>>,
    pending: RwSignal<String>,
    errors: Errors,
) -> impl IntoView {
    let error = errors.under("tags".to_owned());
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter" || ev.key() == "," {
            ev.prevent_default();
            add_pending(tags, pending);
        }
    };
    let chips = move || {
        tags.get()
            .into_iter()
            .map(|tag| {
                let label = format!("Remove tag {tag}");
                let removed = tag.clone();
                view! {
                    <li class="chip">
                        {tag}
                        <button type="button" class="icon" aria-label=label
                            on:click=move |_| tags.update(|t| t.retain(|x| *x != removed))>"×"</button>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <ul class="chips" aria-label="Tags">{chips}</ul>
        <div class="field">
            <label for="tag-input">"Add a tag"</label>
            <input id="tag-input" autocomplete="off" bind:value=pending on:keydown=on_key
                aria-invalid=move || error.with(Option::is_some).to_string()
                aria-describedby="tags-error tags-hint"/>
            <p class="hint" id="tags-hint">"Press Enter or type a comma to add it."</p>
            <p class="field-error" id="tags-error" role="alert">{error}</p>
        </div>
    }
}

/// Adds the tags typed but not yet added (also when the form is sent).
pub fn add_pending(tags: RwSignal<Vec<String>>, pending: RwSignal<String>) {
    let typed = pending.get_untracked();
    for piece in typed.split(',').filter(|piece| !piece.trim().is_empty()) {
        let tag = Tag::parse(piece).map_or_else(|_| piece.trim().to_owned(), |t| t.to_string());
        tags.update(|tags| {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        });
    }
    pending.set(String::new());
}

const UTM_FIELDS: [(&str, &str); 5] = [
    ("source", "Source (utm_source)"),
    ("medium", "Medium (utm_medium)"),
    ("campaign", "Campaign (utm_campaign)"),
    ("term", "Term (utm_term)"),
    ("content", "Content (utm_content)"),
];

/// The five UTM values, by field.
pub type UtmInputs = [RwSignal<String>; 5];

pub fn utm_inputs(utm: Option<&Utm>) -> UtmInputs {
    let value =
        |v: Option<&UtmValue>| RwSignal::new(v.map(|v| v.as_str().to_owned()).unwrap_or_default());
    let utm = utm.cloned().unwrap_or_default();
    [
        value(utm.source.as_ref()),
        value(utm.medium.as_ref()),
        value(utm.campaign.as_ref()),
        value(utm.term.as_ref()),
        value(utm.content.as_ref()),
    ]
}

/// The UTM values typed (empty fields left out), in the API's shape.
pub fn utm_body(inputs: UtmInputs) -> UtmForm {
    let [source, medium, campaign, term, content] = inputs.map(|value| {
        let value = value.get_untracked();
        (!value.trim().is_empty()).then(|| value.trim().to_owned())
    });
    UtmForm {
        source,
        medium,
        campaign,
        term,
        content,
    }
}

/// The UTM fields and the destination the redirect will send visitors to, computed by the
/// redirect's own function.
#[component]
pub fn UtmBuilder(
    inputs: UtmInputs,
    destination: RwSignal<String>,
    errors: Errors,
) -> impl IntoView {
    let preview = move || {
        let [source, medium, campaign, term, content] =
            inputs.map(|value| value.with(|v| UtmValue::parse(v).ok()));
        let utm = Utm {
            source,
            medium,
            campaign,
            term,
            content,
        };
        destination.with(|d| utm.apply(d.trim()).into_owned())
    };
    let fields = UTM_FIELDS
        .iter()
        .zip(inputs)
        .map(|(&(name, label), value)| {
            view! { <Field id=format!("utm-{name}") label=label value=value errors=errors path=format!("utm.{name}")/> }
        })
        .collect_view();
    view! {
        <div class="utm-fields">{fields}</div>
        <p class="field-error" role="alert">{errors.under_exact("utm")}</p>
        <div class="field wide">
            <span class="label" id="utm-preview-label">"Final URL"</span>
            <output id="utm-preview" aria-labelledby="utm-preview-label" aria-live="polite">{preview}</output>
        </div>
    }
}
