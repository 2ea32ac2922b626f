//! What a Sentry feedback item becomes: the body of a bichito report, as `POST /api/v1/bugs`
//! takes it. `feedback` items carry an event whose `contexts.feedback` holds the message and
//! the reporter; the deprecated `user_report` items carry `name`, `email` and `comments`.
//! Values are trimmed to bichito's limits, so a long message or URL never costs the report.

use crate::report::{
    APP_VERSION_MAX_CHARS, DESCRIPTION_MAX_CHARS, ENVIRONMENT_MAX_CHARS, REPORTER_EMAIL_MAX_CHARS,
    REPORTER_IDENTIFIER_MAX_CHARS, URL_MAX_CHARS, USER_AGENT_MAX_CHARS,
};
use serde_json::{Map, Value, json};

use super::envelope::Item;

/// A title's length: the message's first line, shortened.
const TITLE_CHARS: usize = 120;

fn text(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// At most `max` characters (and no NUL, which bichito refuses).
fn cut(text: &str, max: usize) -> String {
    text.chars()
        .filter(|&character| character != '\0')
        .take(max)
        .collect()
}

fn title_of(message: &str) -> String {
    let first = message
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    if first.chars().count() > TITLE_CHARS {
        format!("{}…", cut(first, TITLE_CHARS - 1))
    } else if first.is_empty() {
        "User feedback".to_owned()
    } else {
        cut(first, TITLE_CHARS)
    }
}

/// The report a `feedback` or `user_report` item makes; `None` for any other item.
pub fn report_of(item: &Item) -> Option<Value> {
    let payload = item.json()?;
    let mut report = match item.kind() {
        "feedback" => from_feedback(&payload)?,
        "user_report" => from_user_report(&payload)?,
        _ => return None,
    };
    // Only an address bichito accepts; anything else stays readable in `extra`.
    if let Some(email) = report.get("reporter_email").and_then(Value::as_str)
        && (!email_address::EmailAddress::is_valid(email)
            || email.chars().count() > REPORTER_EMAIL_MAX_CHARS)
    {
        let email = email.to_owned();
        report.remove("reporter_email");
        if let Some(Value::Object(extra)) = report.get_mut("extra") {
            extra.insert("contact".into(), Value::String(email));
        }
    }
    Some(Value::Object(report))
}

/// A report's title (the first line) and description (all of it) from a message.
fn from_message(message: &str) -> Map<String, Value> {
    let description = if message.is_empty() {
        "(no message)".to_owned()
    } else {
        cut(message, DESCRIPTION_MAX_CHARS)
    };
    Map::from_iter([
        ("title".to_owned(), json!(title_of(message))),
        ("description".to_owned(), json!(description)),
    ])
}

fn from_feedback(event: &Map<String, Value>) -> Option<Map<String, Value>> {
    let feedback = event.get("contexts")?.get("feedback")?;
    let message = text(feedback.get("message")).unwrap_or("");
    let request = event.get("request");
    let user = event.get("user");
    let mut report = from_message(message);
    let mut put = |field: &str, value: Option<&str>, max: usize| {
        if let Some(value) = value {
            report.insert(field.into(), json!(cut(value, max)));
        }
    };
    put(
        "reporter_email",
        text(feedback.get("contact_email"))
            .or_else(|| text(user.and_then(|user| user.get("email")))),
        usize::MAX,
    );
    put(
        "reporter_identifier",
        text(feedback.get("name"))
            .or_else(|| text(user.and_then(|user| user.get("id"))))
            .or_else(|| text(user.and_then(|user| user.get("username")))),
        REPORTER_IDENTIFIER_MAX_CHARS,
    );
    put(
        "url",
        text(feedback.get("url")).or_else(|| text(request.and_then(|request| request.get("url")))),
        URL_MAX_CHARS,
    );
    put(
        "user_agent",
        text(
            request
                .and_then(|request| request.get("headers"))
                .and_then(|headers| headers.get("User-Agent")),
        ),
        USER_AGENT_MAX_CHARS,
    );
    put(
        "environment",
        text(event.get("environment")),
        ENVIRONMENT_MAX_CHARS,
    );
    put(
        "app_version",
        text(event.get("release")),
        APP_VERSION_MAX_CHARS,
    );
    // What else Sentry knows, kept under `extra.sentry` (the feedback itself is the report).
    let mut contexts = event
        .get("contexts")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    contexts.remove("feedback");
    let mut sentry = Map::new();
    for (field, value) in [
        ("event_id", event.get("event_id")),
        ("associated_event_id", feedback.get("associated_event_id")),
        ("replay_id", feedback.get("replay_id")),
        ("source", feedback.get("source")),
        ("sdk", event.get("sdk")),
        ("tags", event.get("tags")),
        ("platform", event.get("platform")),
    ] {
        if let Some(value) = value.filter(|value| !value.is_null()) {
            sentry.insert(field.into(), value.clone());
        }
    }
    if !contexts.is_empty() {
        sentry.insert("contexts".into(), Value::Object(contexts));
    }
    report.insert("extra".into(), json!({ "sentry": sentry }));
    Some(report)
}

fn from_user_report(payload: &Map<String, Value>) -> Option<Map<String, Value>> {
    let message = text(payload.get("comments")).unwrap_or("");
    let mut report = from_message(message);
    if let Some(email) = text(payload.get("email")) {
        report.insert("reporter_email".into(), json!(email));
    }
    if let Some(name) = text(payload.get("name")) {
        report.insert(
            "reporter_identifier".into(),
            json!(cut(name, REPORTER_IDENTIFIER_MAX_CHARS)),
        );
    }
    let mut sentry = Map::new();
    if let Some(event_id) = payload.get("event_id").filter(|value| !value.is_null()) {
        sentry.insert("associated_event_id".into(), event_id.clone());
    }
    sentry.insert("item".into(), json!("user_report"));
    report.insert("extra".into(), json!({ "sentry": sentry }));
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: &str, payload: Value) -> Item {
        Item {
            header: Map::from_iter([("type".to_owned(), json!(kind))]),
            payload: payload.to_string().into_bytes(),
        }
    }

    #[test]
    fn a_feedback_event_becomes_a_report_with_its_context() {
        let report = report_of(&item(
            "feedback",
            json!({
                "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
                "environment": "production",
                "release": "shop@1.4.2",
                "platform": "javascript",
                "request": {"url": "https://shop.example/cart", "headers": {"User-Agent": "Mozilla/5.0"}},
                "sdk": {"name": "sentry.javascript.browser", "version": "11.12.0"},
                "contexts": {
                    "feedback": {"message": "Coupon ignored\nThe total stays at 40.", "contact_email": "ana@example.com", "name": "Ana", "url": "https://shop.example/cart?x=1", "source": "widget"},
                    "browser": {"name": "Chrome"}
                }
            }),
        ))
        .expect("a report");
        assert_eq!(report["title"], "Coupon ignored");
        assert_eq!(
            report["description"],
            "Coupon ignored\nThe total stays at 40."
        );
        assert_eq!(report["reporter_email"], "ana@example.com");
        assert_eq!(report["reporter_identifier"], "Ana");
        assert_eq!(report["url"], "https://shop.example/cart?x=1");
        assert_eq!(report["user_agent"], "Mozilla/5.0");
        assert_eq!(report["environment"], "production");
        assert_eq!(report["app_version"], "shop@1.4.2");
        assert_eq!(
            report["extra"]["sentry"]["sdk"]["name"],
            "sentry.javascript.browser"
        );
        assert_eq!(
            report["extra"]["sentry"]["contexts"],
            json!({"browser": {"name": "Chrome"}})
        );
        assert_eq!(report["extra"]["sentry"]["source"], "widget");
    }

    #[test]
    fn user_reports_long_messages_and_bad_addresses() {
        let report = report_of(&item(
            "user_report",
            json!({"event_id": "abc", "name": "Bea", "email": "not an address", "comments": "x".repeat(20_000)}),
        ))
        .expect("a report");
        assert_eq!(
            report["title"].as_str().expect("title").chars().count(),
            TITLE_CHARS
        );
        assert!(report["title"].as_str().expect("title").ends_with('…'));
        assert_eq!(
            report["description"]
                .as_str()
                .expect("text")
                .chars()
                .count(),
            DESCRIPTION_MAX_CHARS
        );
        assert_eq!(
            report.get("reporter_email"),
            None,
            "kept out of the checked field"
        );
        assert_eq!(report["extra"]["contact"], "not an address");
        assert_eq!(report["extra"]["sentry"]["associated_event_id"], "abc");
        let empty =
            report_of(&item("feedback", json!({"contexts": {"feedback": {}}}))).expect("a report");
        assert_eq!(
            (&empty["title"], &empty["description"]),
            (&json!("User feedback"), &json!("(no message)"))
        );
    }

    #[test]
    fn other_items_make_no_report() {
        for kind in [
            "event",
            "transaction",
            "session",
            "attachment",
            "client_report",
        ] {
            assert_eq!(
                report_of(&item(kind, json!({"message": "x"}))),
                None,
                "{kind}"
            );
        }
        assert_eq!(
            report_of(&item("feedback", json!({"message": "no contexts"}))),
            None
        );
    }
}
