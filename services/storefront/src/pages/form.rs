//! Form fields with their labels, hints and messages, wired for assistive
//! technology: every input has a `label`, a field's hint and message are
//! named by its `aria-describedby`, a refused field is `aria-invalid`, and
//! the messages are announced (`role="alert"`).

use maud::{Markup, html};

use crate::backend::Failure;

/// A form with nothing but its CSRF token (a button).
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

/// Per-field messages of a refused form, by the form's field names.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    fields: Vec<(String, String)>,
    general: Vec<String>,
}

impl Errors {
    /// No messages.
    pub fn new() -> Self {
        Self::default()
    }

    /// A message for `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields.push((field.to_owned(), message.into()));
    }

    /// A message about the whole form.
    pub fn general(&mut self, message: impl Into<String>) {
        self.general.push(message.into());
    }

    /// The service's per-field messages, `rename` mapping its field paths
    /// (`payment.card_number`) to the form's (`card_number`); fields the
    /// form does not have, and a problem without fields, become general
    /// messages. A field that already has a message keeps it.
    pub fn add_failure(&mut self, failure: &Failure, rename: &[(&str, &str)]) {
        let errors = failure.field_errors();
        if errors.is_empty() {
            let detail = failure.problem().map_or_else(
                || "Part of the shop is not answering right now. Please try again.".to_owned(),
                |p| p.detail.clone(),
            );
            self.general(detail);
            return;
        }
        for e in errors {
            match rename.iter().find(|(from, _)| *from == e.field) {
                Some((_, to)) if self.get(to).is_none() => {
                    self.add(to, sentence(&e.message));
                }
                Some(_) => {}
                None => self.general(format!("{}: {}", e.field, e.message)),
            }
        }
    }

    /// The message of `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    /// Whether there is no message at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    /// The summary above a form: what is wrong, each field's message
    /// linking to that field.
    pub fn summary(&self, labels: &[(&str, &str)]) -> Markup {
        html! {
            @if !self.is_empty() {
                div.notice.error role="alert" tabindex="-1" id="form-errors" {
                    p { strong { "Please check the form." } }
                    ul {
                        @for message in &self.general {
                            li { (message) }
                        }
                        @for (field, message) in &self.fields {
                            li {
                                a href={ "#" (field) } {
                                    (labels.iter().find(|(f, _)| f == field).map_or(field.as_str(), |(_, l)| l))
                                    ": " (message)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// "is required" → "Is required."
fn sentence(message: &str) -> String {
    let mut chars = message.trim().chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// One labelled input.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// The field's name, also its element id.
    pub name: &'a str,
    /// Its label.
    pub label: &'a str,
    /// The input's `type` (`textarea` for a text area).
    pub kind: &'a str,
    /// Its value (never a password's or a card's).
    pub value: &'a str,
    /// A hint under the label.
    pub hint: Option<&'a str>,
    /// The `autocomplete` token.
    pub autocomplete: Option<&'a str>,
    /// The `inputmode`.
    pub inputmode: Option<&'a str>,
    /// Whether it must be filled.
    pub required: bool,
    /// `min` and `max` of a number.
    pub range: Option<(i64, i64)>,
}

impl<'a> Field<'a> {
    /// A required text input.
    pub fn text(name: &'a str, label: &'a str, value: &'a str) -> Self {
        Self {
            name,
            label,
            kind: "text",
            value,
            hint: None,
            autocomplete: None,
            inputmode: None,
            required: true,
            range: None,
        }
    }

    /// Another input type.
    #[must_use]
    pub fn kind(mut self, kind: &'a str) -> Self {
        self.kind = kind;
        self
    }

    /// A hint.
    #[must_use]
    pub fn hint(mut self, hint: &'a str) -> Self {
        self.hint = Some(hint);
        self
    }

    /// An `autocomplete` token.
    #[must_use]
    pub fn autocomplete(mut self, token: &'a str) -> Self {
        self.autocomplete = Some(token);
        self
    }

    /// An `inputmode`.
    #[must_use]
    pub fn inputmode(mut self, mode: &'a str) -> Self {
        self.inputmode = Some(mode);
        self
    }

    /// A number's bounds.
    #[must_use]
    pub fn range(mut self, min: i64, max: i64) -> Self {
        self.range = Some((min, max));
        self
    }

    /// The field with `errors`' message for it.
    pub fn render(&self, errors: &Errors) -> Markup {
        let error = errors.get(self.name);
        let hint_id = format!("{}-hint", self.name);
        let error_id = format!("{}-error", self.name);
        let described = [
            self.hint.map(|_| hint_id.as_str()),
            error.map(|_| error_id.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        let described = (!described.is_empty()).then_some(described);
        let invalid = error.map(|_| "true");
        html! {
            div.field {
                label for=(self.name) { (self.label) @if !self.required { span.optional { " (optional)" } } }
                @if let Some(hint) = self.hint {
                    p.hint id=(hint_id) { (hint) }
                }
                @if self.kind == "textarea" {
                    textarea id=(self.name) name=(self.name) rows="5"
                        required[self.required]
                        aria-describedby=[described.as_deref()]
                        aria-invalid=[invalid] { (self.value) }
                } @else {
                    input id=(self.name) name=(self.name) type=(self.kind) value=(self.value)
                        required[self.required]
                        autocomplete=[self.autocomplete]
                        inputmode=[self.inputmode]
                        min=[self.range.map(|r| r.0)]
                        max=[self.range.map(|r| r.1)]
                        aria-describedby=[described.as_deref()]
                        aria-invalid=[invalid];
                }
                @if let Some(message) = error {
                    p.field-error id=(error_id) role="alert" { (message) }
                }
            }
        }
    }
}

/// A labelled `select` of `(value, text)` options.
pub fn select(
    name: &str,
    label: &str,
    options: &[(String, String)],
    chosen: &str,
    errors: &Errors,
) -> Markup {
    let error = errors.get(name);
    let error_id = format!("{name}-error");
    html! {
        div.field {
            label for=(name) { (label) }
            select id=(name) name=(name) required
                aria-describedby=[error.map(|_| error_id.as_str())]
                aria-invalid=[error.map(|_| "true")] {
                @for (value, text) in options {
                    option value=(value) selected[value == chosen] { (text) }
                }
            }
            @if let Some(message) = error {
                p.field-error id=(error_id) role="alert" { (message) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_platform::problem::{FieldError, Problem};

    fn refused(errors: &[(&str, &str)]) -> Failure {
        let mut problem = Problem::new(http::StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        problem.errors = errors
            .iter()
            .map(|(f, m)| FieldError {
                field: (*f).to_owned(),
                message: (*m).to_owned(),
            })
            .collect();
        Failure::Refused {
            service: "orders".to_owned(),
            problem,
        }
    }

    #[test]
    fn service_fields_are_renamed_to_the_forms() {
        let mut errors = Errors::new();
        errors.add("exp_month", "Must be a number.");
        errors.add_failure(
            &refused(&[
                ("payment.card_number", "is not a valid card number"),
                ("payment.exp_month", "is required"),
                ("cart", "is empty"),
            ]),
            &[
                ("payment.card_number", "card_number"),
                ("payment.exp_month", "exp_month"),
            ],
        );
        assert_eq!(
            errors.get("card_number"),
            Some("Is not a valid card number.")
        );
        assert_eq!(
            errors.get("exp_month"),
            Some("Must be a number."),
            "ours first"
        );
        let summary = errors
            .summary(&[("card_number", "Card number")])
            .into_string();
        assert!(summary.contains("cart: is empty"), "{summary}");
        assert!(summary.contains("href=\"#card_number\""), "{summary}");
        assert!(summary.contains("role=\"alert\""), "{summary}");
    }

    #[test]
    fn a_refused_field_is_described_and_announced() {
        let mut errors = Errors::new();
        errors.add("email", "Is taken.");
        let html = Field::text("email", "E-mail", "a@b.example")
            .kind("email")
            .hint("We send receipts here.")
            .render(&errors)
            .into_string();
        assert!(html.contains("<label for=\"email\">"), "{html}");
        assert!(
            html.contains("aria-describedby=\"email-hint email-error\""),
            "{html}"
        );
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        assert!(html.contains("id=\"email-error\" role=\"alert\""), "{html}");
        let clean = Field::text("name", "Name", "")
            .render(&Errors::new())
            .into_string();
        assert!(!clean.contains("aria-describedby"), "{clean}");
    }
}
