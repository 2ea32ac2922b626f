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
/// Nesting levels `extra` may have (itself being the first). Common JSON parsers stop at 100
/// to 1,000 levels (serde_json at 128), and every dashboard parses `extra` again from events.
pub const EXTRA_MAX_DEPTH: usize = 32;
/// Postgres text cannot hold U+0000, and no report needs it: refused on both backends alike.
pub const NUL_MESSAGE: &str = "must not contain NUL characters (\\u0000)";

// The OpenAPI document's view of what `parse` reads, field by field; the limits are the
// constants above (a test in `http::openapi` holds the two together). Its doc comment is the
// schema's.
/// A bug report (seed 002). A text must not be blank, and none may hold U+0000; every rejected
/// field is named in the 400's `fields`.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({
    "title": "Login button broken on Safari 17",
    "description": "Steps: visit /login, click Sign in. Nothing happens. No console errors.",
    "severity": "high", "environment": "production", "app_version": "1.4.2", "stack_trace": null,
    "url": "https://example.com/login", "user_agent": "Mozilla/5.0 ...",
    "reporter_email": "user@example.com", "reporter_identifier": "user_42",
    "extra": {"viewport": "1440x900", "billing_plan": "pro"}
}))]
#[allow(dead_code)] // Documentation only.
pub struct ReportBody {
    #[schema(min_length = 1, max_length = 500)]
    title: String,
    #[schema(min_length = 1, max_length = 10000)]
    description: String,
    /// `medium` when absent.
    severity: Option<Severity>,
    /// Free-form: production, staging, anything.
    #[schema(max_length = 255)]
    environment: Option<String>,
    #[schema(max_length = 255)]
    app_version: Option<String>,
    /// Stored as sent, up to 50 KiB of UTF-8.
    stack_trace: Option<String>,
    /// The page the report came from.
    #[schema(max_length = 8192)]
    url: Option<String>,
    #[schema(max_length = 2048)]
    user_agent: Option<String>,
    /// An e-mail address.
    #[schema(max_length = 254)]
    reporter_email: Option<String>,
    /// Anything that finds this reporter again: a user id, a session id.
    #[schema(max_length = 255)]
    reporter_identifier: Option<String>,
    /// Any JSON object (at most 32 levels deep), stored byte for byte.
    #[schema(value_type = Option<Object>)]
    extra: Option<Box<RawValue>>,
}

/// Who a report belongs to and when it arrived; the body supplies the rest.
pub struct Envelope {
    pub honeycomb_id: i64,
    pub api_key_id: i64,
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
        api_key_id: Some(envelope.api_key_id),
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
        if text.contains('\0') {
            self.errors.push(FieldError::new(field, NUL_MESSAGE));
            return None;
        }
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
        if text.contains('\0') {
            self.errors
                .push(FieldError::new("stack_trace", NUL_MESSAGE));
            return None;
        }
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
        if raw.get() == "null" {
            return None;
        }
        if !raw.get().starts_with('{') {
            self.errors
                .push(FieldError::new("extra", "must be a JSON object"));
            return None;
        }
        let compact = Compact::of(raw.get());
        if compact.depth > EXTRA_MAX_DEPTH {
            self.errors.push(FieldError::new(
                "extra",
                format!("must nest at most {EXTRA_MAX_DEPTH} levels deep"),
            ));
            return None;
        }
        if compact.has_nul {
            self.errors.push(FieldError::new("extra", NUL_MESSAGE));
            return None;
        }
        RawValue::from_string(compact.json).ok()
    }
}

/// Valid JSON text without the whitespace outside its strings, with what validation needs to
/// know of it, found in the same pass.
struct Compact {
    json: String,
    /// Deepest nesting of objects and arrays (a bare `{}` is 1).
    depth: usize,
    /// Whether a string (key or value) holds the escape `\u0000`.
    has_nul: bool,
}

impl Compact {
    fn of(json: &str) -> Self {
        let mut compact = Compact {
            json: String::with_capacity(json.len()),
            depth: 0,
            has_nul: false,
        };
        let mut level = 0usize;
        let mut in_string = false;
        let mut chars = json.char_indices();
        while let Some((at, c)) = chars.next() {
            compact.json.push(c);
            if in_string {
                match c {
                    '\\' => {
                        // The escaped character is copied as it is; `\u0000` is NUL.
                        if let Some((_, escaped)) = chars.next() {
                            compact.json.push(escaped);
                            if escaped == 'u' && json.get(at + 2..at + 6) == Some("0000") {
                                compact.has_nul = true;
                            }
                        }
                    }
                    '"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '{' | '[' => {
                    level += 1;
                    compact.depth = compact.depth.max(level);
                }
                '}' | ']' => level = level.saturating_sub(1),
                c if c.is_whitespace() => {
                    compact.json.pop();
                }
                _ => {}
            }
        }
        compact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Result<NewBichito, ApiError> {
        super::parse(
            body,
            Envelope {
                honeycomb_id: 1,
                api_key_id: 1,
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
    fn nul_characters_are_refused_in_every_string_field() {
        let nul = "a\\u0000b";
        for field in [
            "title",
            "description",
            "environment",
            "app_version",
            "stack_trace",
            "url",
            "user_agent",
            "reporter_identifier",
        ] {
            let body = format!(r#"{{"title": "t", "description": "d", "{field}": "{nul}"}}"#);
            assert_eq!(fields(&body), [field], "{field}");
        }
        for extra in [
            format!(r#"{{"k": "{nul}"}}"#),
            format!(r#"{{"{nul}": 1}}"#),
            format!(r#"{{"k": [{{"deep": "{nul}"}}]}}"#),
        ] {
            let body = format!(r#"{{"title": "t", "description": "d", "extra": {extra}}}"#);
            assert_eq!(fields(&body), ["extra"], "{extra}");
        }
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_not_nul() {
        let body = r#"{"title": "t", "description": "C:\\u0000", "extra": {"path": "C:\\u0000"}}"#;
        let report = parse(body.as_bytes()).expect("a backslash and five characters");
        assert_eq!(report.description, "C:\\u0000");
        assert_eq!(
            report.extra.expect("extra").get(),
            r#"{"path":"C:\\u0000"}"#
        );
    }

    #[test]
    fn extra_nests_at_most_32_levels() {
        // Objects and arrays in turn, `levels` deep, the outermost an object.
        let nested = |levels: usize| {
            let mut extra = "1".to_owned();
            for level in (0..levels).rev() {
                extra = if level % 2 == 0 {
                    format!(r#"{{"k": {extra}}}"#)
                } else {
                    format!("[{extra}]")
                };
            }
            extra
        };
        let body =
            |extra: String| format!(r#"{{"title": "t", "description": "d", "extra": {extra}}}"#);
        assert!(parse(body(nested(32)).as_bytes()).is_ok(), "32 levels");
        assert_eq!(fields(&body(nested(33))), ["extra"], "33 levels");
        assert_eq!(fields(&body(nested(10_000))), ["extra"], "10,000 levels");
        assert!(
            parse(
                body(r#"{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}"#.to_owned())
                    .as_bytes()
            )
            .is_ok(),
            "brackets inside strings do not nest"
        );
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let title = "é".repeat(500);
        let body = format!(r#"{{"title": "{title}", "description": "d"}}"#);
        assert!(parse(body.as_bytes()).is_ok());
    }
}
