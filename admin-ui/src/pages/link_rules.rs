//! The editors of a link's rules in the link form: a text field with its API error, the
//! ordered lists of targeting rules and A/B variants (one list editor for both), tags as chips,
//! and the UTM builder with the final URL as the redirect will make it. They read the form's
//! values from its [`FormState`] context.
//!
//! Nothing here checks a value: what a person typed is sent as typed, and the API's error is
//! shown at the input its `field` names (`targets[2].when.country[0]`, `split`, `utm.source`).

use leptos::prelude::*;
use leptos::text_prop::TextProp;
use shortlink::agent::{Device, Os};
use shortlink::rules::{Condition, Tag, Target, Utm, UtmValue, Variant};

use crate::api::{TargetForm, Typed, UtmForm, VariantForm, When};
use crate::i18n::{t_string, use_i18n};
use crate::pages::link_form::FormState;

/// A labelled input; the API's error about `path` shows under it, described by it, and marks
/// it invalid.
#[component]
pub fn Field(
    /// The input's id (its error's id adds `-error`, its hint's `-hint`).
    #[prop(into)]
    id: String,
    #[prop(into)] label: TextProp,
    value: RwSignal<String>,
    /// Where the API names this value: `fallback_url`, `utm.source`, `split[1].weight`.
    #[prop(into)]
    path: String,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional, into)] hint: Option<TextProp>,
    #[prop(optional, into)] placeholder: Option<TextProp>,
    /// Which row the input belongs to, said only to screen readers (`of rule 2`).
    #[prop(optional, into)]
    context: Option<String>,
) -> impl IntoView {
    let error = expect_context::<FormState>().errors.at(path);
    let error_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = if hint.is_some() {
        format!("{error_id} {hint_id}")
    } else {
        error_id.clone()
    };
    view! {
        <div class="field">
            <label for=id.clone()>
                {move || label.get()}
                {context.map(|context| view! { <span class="visually-hidden">" "{context}</span> })}
            </label>
            // A browser must not fill a saved password (the person's own) into a link's.
            <input id=id type=kind placeholder=move || placeholder.as_ref().map(TextProp::get)
                bind:value=value
                autocomplete=if kind == "password" { "new-password" } else { "off" }
                aria-invalid=move || error.with(Option::is_some).to_string() aria-describedby=described/>
            {hint.map(|hint| view! { <p class="hint" id=hint_id>{move || hint.get()}</p> })}
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
    /// A variant's id, for a row of the link's split as it was loaded: sent back with it, so
    /// the variant keeps its clicks whatever is changed around it (even its destination).
    variant_id: Option<u8>,
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
            variant_id: None,
        }
    }

    /// A new row: a rule on countries, or a variant (which ignores the kind).
    fn empty() -> Self {
        Self::new("country", String::new(), String::new(), Vec::new())
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
        let row = Self {
            variant_id: variant.id,
            ..Self::new("", variant.weight.to_string(), String::new(), Vec::new())
        };
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
            id: self.variant_id,
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

/// Moves the focus to the first input marked invalid in the link form, once drawn, so a
/// person who sent it lands on what to fix (the alert under it says what).
pub fn focus_first_invalid() {
    request_animation_frame(|| {
        if let Ok(Some(element)) = document().query_selector(".link-form [aria-invalid=\"true\"]") {
            let element: web_sys::HtmlElement = wasm_bindgen::JsCast::unchecked_into(element);
            let _ = element.focus();
        }
    });
}

/// Which of the form's ordered lists: targeting rules or the split's variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Targets,
    Split,
}

impl List {
    /// The list's name in the API and in the ids of its inputs.
    fn path(self) -> &'static str {
        match self {
            Self::Targets => "targets",
            Self::Split => "split",
        }
    }

    fn rows(self, state: FormState) -> RwSignal<Vec<Row>> {
        match self {
            Self::Targets => state.targets,
            Self::Split => state.split,
        }
    }

    /// The id of a row's first input, which takes the focus when the row is added (or takes
    /// the place of a removed one).
    fn first_input(self, key: u32) -> String {
        match self {
            Self::Targets => format!("targets-{key}-kind"),
            Self::Split => format!("split-{key}-destination"),
        }
    }
}

/// A change of a list's rows, and the element that takes the focus after it.
type Edit = Box<dyn FnOnce(&mut Vec<Row>) -> String>;

/// An ordered list of rows: add, remove, move up and down (keyboard focus follows the row;
/// a removal is announced and the focus goes to the row taking its place, else the one
/// before, else the Add button). A change of the list clears the last error, whose indexes
/// no longer point at the same rows.
#[component]
pub fn RowList(list: List) -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<FormState>();
    let rows = list.rows(state);
    let path = list.path();
    let add_id = format!("{path}-add");
    let announced = RwSignal::new(String::new());
    let owner = Owner::current();
    let change = move |edit: Edit| {
        let mut focus = String::new();
        rows.update(|rows| focus = edit(rows));
        state.errors.set(None);
        focus_later(focus);
    };
    let add = move |_| {
        let row = owner
            .as_ref()
            .map_or_else(Row::empty, |o| o.with(Row::empty));
        announced.set(String::new());
        change(Box::new(move |rows| {
            rows.push(row);
            list.first_input(row.key)
        }));
    };
    let drawn = move || {
        let count = rows.with(Vec::len);
        rows.get()
            .into_iter()
            .enumerate()
            .map(|(index, row)| {
                let key = row.key;
                let n = index + 1;
                let (name, title) = match list {
                    List::Targets => (
                        t_string!(i18n, link_rules.rule_name, n),
                        t_string!(i18n, link_rules.rule_title, n),
                    ),
                    List::Split => (
                        t_string!(i18n, link_rules.variant_name, n),
                        t_string!(i18n, link_rules.variant_title, n),
                    ),
                };
                let at = format!("{path}[{index}]");
                // The moved row's same button keeps the focus, unless it is now disabled (at
                // an end of the list): then the other one.
                let step = move |up: bool| {
                    let to = if up { index - 1 } else { index + 1 };
                    let button = if (up && to > 0) || (!up && to + 1 == count) { "up" } else { "down" };
                    change(Box::new(move |rows| {
                        rows.swap(index, to);
                        format!("{path}-{key}-{button}")
                    }));
                };
                let removed = t_string!(i18n, link_rules.removed, name = name.clone());
                let remove = move |_| {
                    announced.set(removed.clone());
                    change(Box::new(move |rows| {
                        rows.remove(index);
                        rows.get(index)
                            .or_else(|| index.checked_sub(1).and_then(|before| rows.get(before)))
                            .map_or_else(|| format!("{path}-add"), |row| list.first_input(row.key))
                    }));
                };
                let inputs = match list {
                    List::Targets => draw_target(row, &at, &name),
                    List::Split => draw_variant(row, &at, &name),
                };
                view! {
                    <li>
                        <fieldset class="row">
                            <legend>{title}</legend>
                            {inputs}
                            <div class="row-buttons">
                                <button type="button" class="secondary" id=format!("{path}-{key}-up")
                                    disabled=index == 0
                                    aria-label=t_string!(i18n, link_rules.move_up, name = name.clone())
                                    on:click=move |_| step(true)>"↑"</button>
                                <button type="button" class="secondary" id=format!("{path}-{key}-down")
                                    disabled=index + 1 == count
                                    aria-label=t_string!(i18n, link_rules.move_down, name = name.clone())
                                    on:click=move |_| step(false)>"↓"</button>
                                <button type="button" class="danger"
                                    aria-label=t_string!(i18n, link_rules.remove_named, name = name)
                                    on:click=remove>
                                    {t_string!(i18n, link_rules.remove)}
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
        <p class="visually-hidden" role="status">{move || announced.get()}</p>
        <p class="field-error" id=format!("{path}-error") role="alert">{state.errors.exactly(path)}</p>
        <button type="button" class="secondary" id=add_id on:click=add>
            {move || match list {
                List::Targets => t_string!(i18n, link_rules.add_rule),
                List::Split => t_string!(i18n, link_rules.add_variant),
            }}
        </button>
    }
}

/// The kinds of condition a rule can have, as the API names them.
const KINDS: [&str; 5] = ["country", "device", "os", "language", "query"];

/// A targeting rule: what a visit must match, and where it goes then. Called in a tracked
/// scope, which draws it again when the language changes.
fn draw_target(row: Row, at: &str, name: &str) -> AnyView {
    let i18n = use_i18n();
    let of = t_string!(i18n, link_rules.of_row, name);
    let key = row.key;
    let id = move |part: &str| format!("targets-{key}-{part}");
    let when = format!("{at}.when");
    let values = {
        let of = of.clone();
        let name = name.to_owned();
        move || {
            match row.kind.get() {
            "device" => {
                let options = Device::ALL.map(|d| (d.as_str(), device_label(d)));
                let legend = t_string!(i18n, link_rules.devices_of, name = name.clone());
                checks(row, &options, legend, when.clone())
            }
            "os" => {
                let options = Os::ALL.map(|o| {
                    let label = if o == Os::Other {
                        t_string!(i18n, link_rules.os_other)
                    } else {
                        o.label()
                    };
                    (o.as_str(), label)
                });
                let legend = t_string!(i18n, link_rules.systems_of, name = name.clone());
                checks(row, &options, legend, when.clone())
            }
            "query" => view! {
                <Field id=id("values") label=move || t_string!(i18n, link_rules.parameter) value=row.text
                    path=when.clone() placeholder="ref" context=of.clone()/>
                <Field id=id("extra") label=move || t_string!(i18n, link_rules.value) value=row.extra
                    path=format!("{when}.query.value") placeholder="newsletter" context=of.clone()/>
            }
            .into_any(),
            "language" => view! {
                <Field id=id("values") label=move || t_string!(i18n, link_rules.languages) value=row.text
                    path=when.clone() hint=move || t_string!(i18n, link_rules.languages_hint) context=of.clone()/>
            }
            .into_any(),
            _ => view! {
                <Field id=id("values") label=move || t_string!(i18n, link_rules.countries) value=row.text
                    path=when.clone() hint=move || t_string!(i18n, link_rules.countries_hint) context=of.clone()/>
            }
            .into_any(),
        }
        }
    };
    let kinds = KINDS
        .iter()
        .map(|&kind| {
            let label = match kind {
                "device" => t_string!(i18n, link_rules.kind_device),
                "os" => t_string!(i18n, link_rules.kind_os),
                "language" => t_string!(i18n, link_rules.kind_language),
                "query" => t_string!(i18n, link_rules.kind_query),
                _ => t_string!(i18n, link_rules.kind_country),
            };
            view! { <option value=kind>{label}</option> }
        })
        .collect_view();
    view! {
        <div class="field">
            <label for=id("kind")>
                {t_string!(i18n, link_rules.match_kind)}<span class="visually-hidden">" "{of.clone()}</span>
            </label>
            <select id=id("kind") prop:value=move || row.kind.get() on:change=move |ev| {
                let chosen = event_target_value(&ev);
                let kind = KINDS.iter().find(|kind| **kind == chosen).map_or("country", |kind| *kind);
                row.checks.set(Vec::new());
                row.kind.set(kind);
            }>
                {kinds}
            </select>
        </div>
        {values}
        <Field id=id("destination") label=move || t_string!(i18n, link_rules.destination) value=row.destination
            path=format!("{at}.destination") kind="url" placeholder="https://example.com/de" context=of/>
    }
    .into_any()
}

/// A device as a person reads it, in the dashboard's language.
fn device_label(device: Device) -> &'static str {
    let i18n = use_i18n();
    match device {
        Device::Desktop => t_string!(i18n, link_rules.device_desktop),
        Device::Mobile => t_string!(i18n, link_rules.device_mobile),
        Device::Tablet => t_string!(i18n, link_rules.device_tablet),
        Device::Bot => t_string!(i18n, link_rules.device_bot),
        Device::Other => t_string!(i18n, link_rules.device_other),
    }
}

/// Ticks for devices or operating systems in a group named by `legend`; the error of the
/// condition (`when`: none ticked) shows under them and describes each box.
fn checks(
    row: Row,
    options: &[(&'static str, &'static str)],
    legend: String,
    when: String,
) -> AnyView {
    let error = expect_context::<FormState>().errors.at(when);
    let error_id = format!("targets-{}-values-error", row.key);
    let boxes = options
        .iter()
        .map(|&(value, label)| {
            view! {
                <label class="check">
                    <input type="checkbox" prop:checked=move || row.checks.with(|c| c.contains(&value))
                        aria-invalid=move || error.with(Option::is_some).to_string()
                        aria-describedby=error_id.clone()
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
        <fieldset class="checks">
            <legend>{legend}</legend>
            {boxes}
            <p class="field-error" id=error_id role="alert">{error}</p>
        </fieldset>
    }
    .into_any()
}

/// A variant of the split: a destination and its share of the visits.
fn draw_variant(row: Row, at: &str, name: &str) -> AnyView {
    let i18n = use_i18n();
    let key = row.key;
    let of = t_string!(i18n, link_rules.of_row, name);
    view! {
        <Field id=format!("split-{key}-destination") label=move || t_string!(i18n, link_rules.destination)
            value=row.destination path=format!("{at}.destination") kind="url" placeholder="https://example.com/b"
            context=of.clone()/>
        <Field id=format!("split-{key}-weight") label=move || t_string!(i18n, link_rules.weight) value=row.text
            path=format!("{at}.weight") context=of/>
    }
    .into_any()
}

/// The sum of the weights typed (shown so a person sees it is not 100 before sending).
pub fn weight_sum(rows: &[Row]) -> u64 {
    rows.iter()
        .filter_map(|row| row.text.with(|w| w.trim().parse::<u64>().ok()))
        .sum()
}

/// Tags as chips: Enter or a comma adds the text typed, normalised as the API will keep it
/// (what the API would refuse is kept as typed, for the API to say why).
#[component]
pub fn TagsInput() -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<FormState>();
    let FormState {
        tags, pending_tag, ..
    } = state;
    let error = state.errors.at("tags");
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter" || ev.key() == "," {
            ev.prevent_default();
            add_pending(tags, pending_tag);
        }
    };
    let chips = move || {
        tags.get()
            .into_iter()
            .map(|tag| {
                let removed = tag.clone();
                view! {
                    <li class="chip">
                        {tag.clone()}
                        <button type="button" class="icon"
                            aria-label=move || t_string!(i18n, link_rules.remove_tag, tag = tag.clone())
                            on:click=move |_| tags.update(|t| t.retain(|x| *x != removed))>"×"</button>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <ul class="chips" aria-label=move || t_string!(i18n, link_rules.tags)>{chips}</ul>
        <div class="field">
            <label for="tag-input">{move || t_string!(i18n, link_rules.add_tag)}</label>
            <input id="tag-input" autocomplete="off" bind:value=pending_tag on:keydown=on_key
                aria-invalid=move || error.with(Option::is_some).to_string()
                aria-describedby="tags-error tags-hint"/>
            <p class="hint" id="tags-hint">{move || t_string!(i18n, link_rules.tag_hint)}</p>
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
pub fn UtmBuilder() -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<FormState>();
    let FormState {
        utm: inputs,
        destination,
        ..
    } = state;
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
    let labels: [TextProp; 5] = [
        TextProp::from(move || t_string!(i18n, link_rules.utm_source)),
        TextProp::from(move || t_string!(i18n, link_rules.utm_medium)),
        TextProp::from(move || t_string!(i18n, link_rules.utm_campaign)),
        TextProp::from(move || t_string!(i18n, link_rules.utm_term)),
        TextProp::from(move || t_string!(i18n, link_rules.utm_content)),
    ];
    let fields = ["source", "medium", "campaign", "term", "content"]
        .into_iter()
        .zip(labels)
        .zip(inputs)
        .map(|((name, label), value)| {
            view! { <Field id=format!("utm-{name}") label=label value=value path=format!("utm.{name}")/> }
        })
        .collect_view();
    view! {
        <div class="utm-fields">{fields}</div>
        <p class="field-error" role="alert">{state.errors.exactly("utm")}</p>
        <div class="field wide">
            <span class="label" id="utm-preview-label">{move || t_string!(i18n, link_rules.final_url)}</span>
            <output id="utm-preview" aria-labelledby="utm-preview-label" aria-live="polite">{preview}</output>
        </div>
    }
}
