//! Blocklist matching: does a report hit one of its honeycomb's rules?

use crate::model::{BlockMatch, BlockRule, NewBichito};
use wildmatch::WildMatch;

/// The first rule the report matches, if any. Matching ignores case.
pub fn first_match<'r>(rules: &'r [BlockRule], report: &NewBichito) -> Option<&'r BlockRule> {
    rules.iter().find(|rule| {
        field_value(report, &rule.field).is_some_and(|value| matches(&rule.matcher, value))
    })
}

fn matches(matcher: &BlockMatch, value: &str) -> bool {
    let value = value.to_lowercase();
    match matcher {
        BlockMatch::Pattern(pattern) => WildMatch::new(&pattern.to_lowercase()).matches(&value),
        BlockMatch::Contains(needle) => value.contains(&needle.to_lowercase()),
    }
}

fn field_value<'a>(report: &'a NewBichito, field: &str) -> Option<&'a str> {
    match field {
        "title" => Some(&report.title),
        "description" => Some(&report.description),
        "environment" => report.environment.as_deref(),
        "app_version" => report.app_version.as_deref(),
        "url" => report.url.as_deref(),
        "user_agent" => report.user_agent.as_deref(),
        "reporter_email" => report.reporter_email.as_deref(),
        "reporter_identifier" => report.reporter_identifier.as_deref(),
        "stack_trace" => report.stack_trace.as_deref(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;

    fn report(title: &str, email: Option<&str>) -> NewBichito {
        NewBichito {
            honeycomb_id: 1,
            api_key_id: None,
            team_id: "t".into(),
            title: title.into(),
            description: "d".into(),
            severity: Severity::Medium,
            environment: None,
            app_version: None,
            stack_trace: None,
            url: None,
            user_agent: None,
            reporter_email: email.map(Into::into),
            reporter_identifier: None,
            extra: None,
            created_at: chrono::Utc::now(),
        }
    }

    fn rules() -> Vec<BlockRule> {
        vec![
            BlockRule {
                field: "reporter_email".into(),
                matcher: BlockMatch::Pattern("*@spam.example".into()),
            },
            BlockRule {
                field: "title".into(),
                matcher: BlockMatch::Contains("casino".into()),
            },
        ]
    }

    #[test]
    fn glob_and_substring_rules_match_ignoring_case() {
        let rules = rules();
        assert_eq!(
            first_match(&rules, &report("Hi", Some("Bot@SPAM.example"))),
            Some(&rules[0])
        );
        assert_eq!(
            first_match(&rules, &report("Best CASINO bonus", None)),
            Some(&rules[1])
        );
    }

    #[test]
    fn other_reports_pass() {
        let rules = rules();
        assert_eq!(
            first_match(&rules, &report("Login broken", Some("ana@example.com"))),
            None
        );
        assert_eq!(
            first_match(&rules, &report("Login broken", Some("a@spam.example.org"))),
            None
        );
        assert_eq!(first_match(&rules, &report("Login broken", None)), None);
    }
}
