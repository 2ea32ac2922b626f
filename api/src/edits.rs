//! Reading dashboard input: `PATCH` bodies, comments and list filters, each field validated
//! and every rejected field named in one error.

use crate::error::{ApiError, FieldError};
use crate::report::NUL_MESSAGE;
use bichito_core::model::{BichitoPatch, BichitoQuery, Severity, Status};
use serde_json::Value;
use std::collections::HashMap;

pub const LABELS_MAX: usize = 20;
pub const LABEL_MAX_CHARS: usize = 50;
pub const ASSIGNEE_MAX_CHARS: usize = 255;
pub const COMMENT_MAX_CHARS: usize = 10_000;
pub const PAGE_DEFAULT: u32 = 50;
pub const PAGE_MAX: u32 = 200;
/// The longest text a list search (`q`) takes, in characters.
pub const SEARCH_MAX: usize = 200;

// The OpenAPI document's view of what `parse_patch` reads; its doc comment is the schema's.
/// A triage change: any of these fields, and no other; those left out stay as they are.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "resolved", "labels": ["safari", "login"]}))]
#[allow(dead_code)] // Documentation only.
pub struct BichitoChange {
    #[schema(nullable = false)]
    status: Option<Status>,
    #[schema(nullable = false)]
    severity: Option<Severity>,
    /// Who works on it; `null` unassigns.
    #[schema(min_length = 1, max_length = 255)]
    assignee: Option<String>,
    /// The whole new list: at most 20 labels of 1 to 50 characters, not blank; repeats are
    /// dropped.
    #[schema(max_items = 20, nullable = false)]
    labels: Option<Vec<String>>,
    /// Another bichito of the same team this one repeats; `null` clears it.
    #[schema(minimum = 1)]
    duplicate_of: Option<i64>,
}

// The OpenAPI document's view of what `parse_comment` reads.
/// A new comment.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"body": "Reproduced on Safari 17.4; looking at it."}))]
#[allow(dead_code)] // Documentation only.
pub struct NewComment {
    /// Not blank.
    #[schema(min_length = 1, max_length = 10000)]
    body: String,
}

fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ApiError::BadRequest(
            "the body must be a JSON object".to_owned(),
        )),
        Err(err) => Err(ApiError::BadRequest(format!("malformed JSON: {err}"))),
    }
}

pub fn parse_patch(body: &[u8]) -> Result<BichitoPatch, ApiError> {
    let mut patch = BichitoPatch::default();
    let mut errors = Vec::new();
    for (field, value) in object(body)? {
        match field.as_str() {
            "status" => match value.as_str().and_then(Status::parse) {
                Some(status) => patch.status = Some(status),
                None => errors.push(FieldError::new(
                    "status",
                    "must be one of open, in_progress, resolved, closed",
                )),
            },
            "severity" => match value.as_str().and_then(Severity::parse) {
                Some(severity) => patch.severity = Some(severity),
                None => errors.push(FieldError::new(
                    "severity",
                    "must be one of low, medium, high, critical",
                )),
            },
            "assignee" => match value {
                Value::Null => patch.assignee = Some(None),
                Value::String(assignee) if assignee.contains('\0') => {
                    errors.push(FieldError::new("assignee", NUL_MESSAGE));
                }
                Value::String(assignee)
                    if !assignee.trim().is_empty()
                        && assignee.chars().count() <= ASSIGNEE_MAX_CHARS =>
                {
                    patch.assignee = Some(Some(assignee));
                }
                _ => errors.push(FieldError::new(
                    "assignee",
                    format!("must be null or 1 to {ASSIGNEE_MAX_CHARS} characters"),
                )),
            },
            "labels" => match labels(&value) {
                Ok(labels) => patch.labels = Some(labels),
                Err(message) => errors.push(FieldError::new("labels", message)),
            },
            "duplicate_of" => match value {
                Value::Null => patch.duplicate_of = Some(None),
                Value::Number(id) if id.as_i64().is_some_and(|id| id > 0) => {
                    patch.duplicate_of = Some(id.as_i64())
                }
                _ => errors.push(FieldError::new(
                    "duplicate_of",
                    "must be null or the id of another bichito",
                )),
            },
            other => errors.push(FieldError::new(
                other,
                "cannot be changed (status, severity, assignee, labels, duplicate_of can)",
            )),
        }
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Labels: strings of 1–50 characters, at most 20; duplicates are dropped, order kept.
fn labels(value: &Value) -> Result<Vec<String>, String> {
    let problem = format!(
        "must be a list of at most {LABELS_MAX} labels of 1 to {LABEL_MAX_CHARS} characters"
    );
    let Value::Array(items) = value else {
        return Err(problem);
    };
    let mut labels: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if item.as_str().is_some_and(|label| label.contains('\0')) {
            return Err(NUL_MESSAGE.to_owned());
        }
        match item.as_str().map(str::trim) {
            Some(label) if !label.is_empty() && label.chars().count() <= LABEL_MAX_CHARS => {
                if !labels.iter().any(|known| known == label) {
                    labels.push(label.to_owned());
                }
            }
            _ => return Err(problem),
        }
    }
    if labels.len() > LABELS_MAX {
        return Err(problem);
    }
    Ok(labels)
}

pub fn parse_comment(body: &[u8]) -> Result<String, ApiError> {
    let fields = object(body)?;
    match fields.get("body") {
        Some(Value::String(text)) if text.contains('\0') => {
            Err(ApiError::Validation(vec![FieldError::new(
                "body",
                NUL_MESSAGE,
            )]))
        }
        Some(Value::String(text))
            if !text.trim().is_empty() && text.chars().count() <= COMMENT_MAX_CHARS =>
        {
            Ok(text.clone())
        }
        _ => Err(ApiError::Validation(vec![FieldError::new(
            "body",
            format!("is required: 1 to {COMMENT_MAX_CHARS} characters, not blank"),
        )])),
    }
}

/// `?status=&severity=&project_id=&assignee=&label=&limit=&cursor=` of a team's list.
pub fn parse_query(
    team_id: &str,
    params: &HashMap<String, String>,
) -> Result<BichitoQuery, ApiError> {
    let mut query = BichitoQuery {
        team_id: team_id.to_owned(),
        limit: PAGE_DEFAULT,
        ..BichitoQuery::default()
    };
    let mut errors = Vec::new();
    for (name, value) in params {
        match name.as_str() {
            "status" => match Status::parse(value) {
                Some(status) => query.status = Some(status),
                None => errors.push(FieldError::new(
                    "status",
                    "must be one of open, in_progress, resolved, closed",
                )),
            },
            "severity" => match Severity::parse(value) {
                Some(severity) => query.severity = Some(severity),
                None => errors.push(FieldError::new(
                    "severity",
                    "must be one of low, medium, high, critical",
                )),
            },
            "project_id" => match value.parse() {
                Ok(id) => query.honeycomb_id = Some(id),
                Err(_) => errors.push(FieldError::new("project_id", "must be a honeycomb id")),
            },
            "assignee" | "label" | "q" if value.contains('\0') => {
                errors.push(FieldError::new(name, NUL_MESSAGE));
            }
            "assignee" => query.assignee = Some(value.clone()),
            "label" => query.label = Some(value.clone()),
            "q" if value.chars().count() > SEARCH_MAX => errors.push(FieldError::new(
                "q",
                format!("must be at most {SEARCH_MAX} characters"),
            )),
            "q" if !value.trim().is_empty() => query.title_contains = Some(value.trim().to_owned()),
            "limit" => match value.parse::<u32>() {
                Ok(limit) if (1..=PAGE_MAX).contains(&limit) => query.limit = limit,
                _ => errors.push(FieldError::new("limit", format!("must be 1 to {PAGE_MAX}"))),
            },
            "cursor" => match value.parse::<i64>() {
                Ok(id) if id > 0 => query.before_id = Some(id),
                _ => errors.push(FieldError::new(
                    "cursor",
                    "must be a next_cursor from a previous page",
                )),
            },
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(ApiError::Validation(errors))
    }
}
