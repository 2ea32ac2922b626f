//! Reading a report body (seed 002): every field checked against its limits, every rejected
//! field named in one error.

use crate::error::{ApiError, FieldError};
use bichito_core::model::{NewBichito, Severity};
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use std::collections::HashMap;

pub const TITLE_MAX_CHARS: usize = 500;
pub const DESCRIPTION_MAX_CHARS: usize = 10_000;
/// "Up to ~50KB": 50 KiB of UTF-8.
pub const STACK_TRACE_MAX_BYTES: usize = 50 * 1024;
/// Bounds the seed leaves open ("free-form"), chosen generously and documented in the README.
pub const ENVIRONMENT_MAX_CHARS: usize = 255;
pub const APP_VERSION_MAX_CHARS: usize = 255;
pub const URL_MAX_CHARS: usize = 8_192;
pub const USER_AGENT_MAX_CHARS: usize = 2_048;
pub const REPORTER_EMAIL_MAX_CHARS: usize = 254;
pub const REPORTER_IDENTIFIER_MAX_CHARS: usize = 255;

/// Who a report belongs to and when it arrived; the body supplies the rest.
pub struct Envelope {
    pub honeycomb_id: i64,
    pub team_id: String,
    pub created_at: DateTime<Utc>,
}

pub fn parse(body: &[u8], envelope: Envelope) -> Result<NewBichito, ApiError> {
    let raw: &RawValue = serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("malformed JSON: {err}")))?;
    if !raw.get().starts_with('{') {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".to_owned(),
        ));
    }
    let fields: HashMap<String, &RawValue> = serde_json::from_str(raw.get())
        .map_err(|err| ApiError::BadRequest(format!("malformed JSON: {err}")))?;
    let mut reader = Reader {
        fields,
        errors: Vec::new(),
    };

    let title = reader.required_text("title", TITLE_MAX_CHARS);
    let description = reader.required_text("description", DESCRIPTION_MAX_CHARS);
    let severity = reader.severity();
    let environment = reader.optional_text("environment", ENVIRONMENT_MAX_CHARS);
    let app_version = reader.optional_text("app_version", APP_VERSION_MAX_CHARS);
    let stack_trace = reader.stack_trace();
    let url = reader.optional_text("url", URL_MAX_CHARS);
    let user_agent = reader.optional_text("user_agent", USER_AGENT_MAX_CHARS);
    let reporter_email = reader.reporter_email();
    let reporter_identifier =
        reader.optional_text("reporter_identifier", REPORTER_IDENTIFIER_MAX_CHARS);
    let extra = reader.extra();

    if !reader.errors.is_empty() {
        return Err(ApiError::Validation(reader.errors));
    }
    Ok(NewBichito {
        honeycomb_id: envelope.honeycomb_id,
        team_id: envelope.team_id,
        title: title.unwrap_or_default(),
        description: description.unwrap_or_default(),
        severity,
        environment,
        app_version,
        stack_trace,
        url,
        user_agent,
        reporter_email,
        reporter_identifier,
        extra,
        created_at: envelope.created_at,
    })
}

struct Reader<'a> {
    fields: HashMap<String, &'a RawValue>,
    errors: Vec<FieldError>,
}

impl Reader<'_> {
    /// The field as a string: `None` when absent or null; an error when of another type.
    fn string(&mut self, field: &str) -> Option<String> {
        let raw = self.fields.get(field)?;
        match serde_json::from_str::<Option<String>>(raw.get()) {
            Ok(value) => value,
            Err(_) => {
                self.errors.push(FieldError::new(field, "must be a string"));
                None
            }
        }
    }

    fn required_text(&mut self, field: &str, max_chars: usize) -> Option<String> {
        let present = self
            .fields
            .get(field)
            .is_some_and(|raw| raw.get() != "null");
        let value = self.string(field);
        match value {
            None if !present => {
                self.errors.push(FieldError::new(field, "is required"));
                None
            }
            None => None,
            Some(text) if text.trim().is_empty() => {
                self.errors.push(FieldError::new(
                    field,
                    format!("must be 1 to {max_chars} characters, not blank"),
                ));
                None
            }
            Some(text) => self.within(field, text, max_chars),
        }
    }

    fn optional_text(&mut self, field: &str, max_chars: usize) -> Option<String> {
        let text = self.string(field)?;
        self.within(field, text, max_chars)
    }

    fn within(&mut self, field: &str, text: String, max_chars: usize) -> Option<String> {
        let chars = text.chars().count();
        if chars > max_chars {
            self.errors.push(FieldError::new(
                field,
                format!("must be at most {max_chars} characters (got {chars})"),
            ));
            return None;
        }
        Some(text)
    }

    fn severity(&mut self) -> Severity {
        let Some(value) = self.string("severity") else {
            return Severity::default();
        };
        Severity::parse(&value).unwrap_or_else(|| {
            self.errors.push(FieldError::new(
                "severity",
                "must be one of low, medium, high, critical",
            ));
            Severity::default()
        })
    }

    fn stack_trace(&mut self) -> Option<String> {
        let text = self.string("stack_trace")?;
        if text.len() > STACK_TRACE_MAX_BYTES {
            self.errors.push(FieldError::new(
                "stack_trace",
                format!(
                    "must be at most {STACK_TRACE_MAX_BYTES} bytes (got {})",
                    text.len()
                ),
            ));
            return None;
        }
        Some(text)
    }

    fn reporter_email(&mut self) -> Option<String> {
        let email = self.optional_text("reporter_email", REPORTER_EMAIL_MAX_CHARS)?;
        if !email_address::EmailAddress::is_valid(&email) {
            self.errors.push(FieldError::new(
                "reporter_email",
                "must be a valid email address",
            ));
            return None;
        }
        Some(email)
    }

    /// `extra` keeps the reporter's tokens, key order and number spelling; only the whitespace
    /// between tokens goes, so that every event payload stays on one SSE `data:` line.
    fn extra(&mut self) -> Option<Box<RawValue>> {
        let raw = *self.fields.get("extra")?;
        match raw.get().as_bytes().first() {
            Some(b'{') => RawValue::from_string(minify(raw.get())).ok(),
            _ if raw.get() == "null" => None,
            _ => {
                self.errors
                    .push(FieldError::new("extra", "must be a JSON object"));
                None
            }
        }
    }
}

/// Removes the whitespace outside strings of valid JSON text.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Result<NewBichito, ApiError> {
        super::parse(
            body,
            Envelope {
                honeycomb_id: 1,
                team_id: "t".into(),
                created_at: Utc::now(),
            },
        )
    }

    fn fields(body: &str) -> Vec<String> {
        match parse(body.as_bytes()) {
            Err(ApiError::Validation(errors)) => {
                errors.into_iter().map(|error| error.field).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_minimal_report_gets_the_defaults() {
        let report = parse(br#"{"title": "t", "description": "d"}"#).expect("valid");
        assert_eq!(report.severity, Severity::Medium);
        assert!(report.extra.is_none() && report.environment.is_none());
    }

    #[test]
    fn nulls_mean_absent_for_optional_fields() {
        let report = parse(br#"{"title": "t", "description": "d", "stack_trace": null, "extra": null, "severity": null}"#)
            .expect("valid");
        assert!(report.stack_trace.is_none() && report.extra.is_none());
        assert_eq!(report.severity, Severity::Medium);
    }

    #[test]
    fn every_rejected_field_is_named_at_once() {
        let body = r#"{"title": "", "severity": "urgent", "reporter_email": "nope", "extra": [1], "url": 5}"#;
        assert_eq!(
            fields(body),
            [
                "title",
                "description",
                "severity",
                "url",
                "reporter_email",
                "extra"
            ]
        );
    }

    #[test]
    fn extra_keeps_tokens_order_and_numbers_without_whitespace() {
        let body = "{\"title\":\"t\",\"description\":\"d\",\"extra\":{\"z\": 1,\n \"a\": [1.50, \"x \\\" y\"]}}";
        let report = parse(body.as_bytes()).expect("valid");
        assert_eq!(
            report.extra.expect("extra").get(),
            r#"{"z":1,"a":[1.50,"x \" y"]}"#
        );
    }

    #[test]
    fn malformed_json_and_non_objects_are_bad_requests() {
        assert!(matches!(
            parse(b"{\"title\": "),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(parse(b"[1, 2]"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse(b""), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let title = "é".repeat(500);
        let body = format!(r#"{{"title": "{title}", "description": "d"}}"#);
        assert!(parse(body.as_bytes()).is_ok());
    }
}
