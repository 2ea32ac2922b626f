//! The `Honeycomb` spec (`bichito.dev/v1alpha1`): what a platform team writes in YAML.
//!
//! The operator derives its custom resource from these same types; `bichito apply -f` reads
//! them from a file. [`HoneycombSpec::validate`] lists every problem at once.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const API_VERSION: &str = "bichito.dev/v1alpha1";
pub const KIND: &str = "Honeycomb";
pub const DEFAULT_NAMESPACE: &str = "default";
/// How long a rotated-out key keeps working when `gracePeriod` is not set.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(24 * 3600);
/// The installation a Honeycomb without `spec.installation` belongs to.
pub const DEFAULT_INSTALLATION: &str = "default";

/// One project: its API key, quotas, plan, blocklist and allowed browser origins.
// kube's `printcolumn(...)` takes one `type_` per column; clippy reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, CustomResource, KubeSchema)]
#[kube(
    group = "bichito.dev",
    version = "v1alpha1",
    kind = "Honeycomb",
    namespaced,
    status = "HoneycombStatus",
    shortname = "hc",
    printcolumn(name = "Team", type_ = "string", json_path = ".spec.team"),
    printcolumn(name = "Plan", type_ = "string", json_path = ".spec.plan"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new(
    "(has(self.installation) ? self.installation : 'default') == (has(oldSelf.installation) ? oldSelf.installation : 'default')"
).message("spec.installation is immutable: delete the Honeycomb and create it again for the other installation"))]
pub struct HoneycombSpec {
    /// The bichito installation whose operator manages this Honeycomb (its chart value
    /// `installation`), as an Ingress names its IngressClass: unset means `default`. Other
    /// installations' operators never touch it. Fixed once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub installation: Option<String>,
    /// The owning team's slug (lowercase letters, digits and dashes).
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub team: String,
    /// A human name for dashboards.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub display_name: Option<String>,
    #[serde(default)]
    pub plan: Plan,
    #[serde(default)]
    pub quotas: Quotas,
    #[serde(default)]
    pub blocklist: Vec<BlockRuleSpec>,
    /// Browser origins allowed to call the ingest API (`https://host[:port]`, or `*`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub api_key: ApiKeySpec,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    #[default]
    Free,
    Pro,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "free" => Some(Plan::Free),
            "pro" => Some(Plan::Pro),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quotas {
    /// Reports accepted per minute per API key; the server default (60) when unset.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub reports_per_minute: Option<u32>,
    /// Reports stored per calendar month (UTC) on the free plan; 1000 when unset.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub monthly_reports: Option<u32>,
}

/// One blocklist rule: a glob `pattern` (`*` and `?`) or a `contains` substring, matched
/// case-insensitively against one field of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockRuleSpec {
    pub field: String,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub contains: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeySpec {
    /// The Secret (in Kubernetes) or file (embedded mode) that holds the key.
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"))]
    pub secret_name: String,
    /// Change this value to rotate the key; the previous key keeps working for `gracePeriod`.
    #[serde(default)]
    pub rotate: Option<String>,
    /// How long a rotated-out key stays valid, e.g. `24h`, `30m`.
    #[serde(default)]
    pub grace_period: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Deleting the honeycomb revokes its keys and keeps its bichitos.
    #[default]
    Retain,
    /// Deleting the honeycomb deletes its bichitos too.
    Delete,
}

impl DeletionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionPolicy::Retain => "Retain",
            DeletionPolicy::Delete => "Delete",
        }
    }
}

/// What the operator reports back on a Honeycomb. Never the key itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoneycombStatus {
    /// The honeycomb's id: the `project_id` of its reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honeycomb_id: Option<i64>,
    /// The first 16 characters of the current key, to recognise it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<HoneycombCondition>,
}

/// A status condition (`Ready`, `KeyProvisioned`, `Synced`), shaped like Kubernetes' own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoneycombCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The CRD as YAML, generated from these types (`bichito-operator crd`).
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let header = "# Generated by `bichito-operator crd` from core/src/spec.rs: do not edit.\n";
    format!(
        "{header}{}",
        yaml_serde::to_string(&Honeycomb::crd()).unwrap_or_default()
    )
}

/// Fields of a report that a blocklist rule may look at.
pub const BLOCKABLE_FIELDS: &[&str] = &[
    "title",
    "description",
    "environment",
    "app_version",
    "url",
    "user_agent",
    "reporter_email",
    "reporter_identifier",
    "stack_trace",
];

impl HoneycombSpec {
    /// The installation this Honeycomb belongs to.
    pub fn installation(&self) -> &str {
        self.installation.as_deref().unwrap_or(DEFAULT_INSTALLATION)
    }

    /// Every problem with the spec, or `Ok` when it can be applied.
    pub fn validate(&self) -> crate::Result<()> {
        let mut problems = Vec::new();
        if !is_slug(self.installation(), 63) {
            problems.push(format!(
                "installation {:?} must be 1-63 lowercase letters, digits or dashes",
                self.installation()
            ));
        }
        if !is_slug(&self.team, 63) {
            problems.push(format!(
                "team {:?} must be 1-63 lowercase letters, digits or dashes, starting and ending with a letter or digit",
                self.team
            ));
        }
        if self
            .display_name
            .as_ref()
            .is_some_and(|name| name.chars().count() > 200)
        {
            problems.push("displayName must be at most 200 characters".to_owned());
        }
        if let Some(rate) = self.quotas.reports_per_minute
            && !(1..=1_000_000).contains(&rate)
        {
            problems.push("quotas.reportsPerMinute must be between 1 and 1000000".to_owned());
        }
        if self.quotas.monthly_reports == Some(0) {
            problems.push("quotas.monthlyReports must be at least 1".to_owned());
        }
        for (index, rule) in self.blocklist.iter().enumerate() {
            if !BLOCKABLE_FIELDS.contains(&rule.field.as_str()) {
                problems.push(format!(
                    "blocklist[{index}].field {:?} must be one of {}",
                    rule.field,
                    BLOCKABLE_FIELDS.join(", ")
                ));
            }
            match (&rule.pattern, &rule.contains) {
                (Some(value), None) | (None, Some(value)) if !value.is_empty() => {}
                _ => problems.push(format!(
                    "blocklist[{index}] needs exactly one non-empty `pattern` or `contains`"
                )),
            }
        }
        for origin in &self.allowed_origins {
            if !is_origin(origin) {
                problems.push(format!(
                    "allowedOrigins entry {origin:?} must be `*` or scheme://host[:port] without a path"
                ));
            }
        }
        if !is_dns_subdomain(&self.api_key.secret_name) {
            problems.push(format!(
                "apiKey.secretName {:?} must be a DNS subdomain name (lowercase, at most 253 characters)",
                self.api_key.secret_name
            ));
        }
        if let Err(problem) = self.grace_period() {
            problems.push(problem);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::InvalidSpec(problems))
        }
    }

    /// The rotation grace period, defaulting to 24 hours.
    pub fn grace_period(&self) -> Result<Duration, String> {
        match &self.api_key.grace_period {
            None => Ok(DEFAULT_GRACE_PERIOD),
            Some(text) => humantime::parse_duration(text).map_err(|err| {
                format!("apiKey.gracePeriod {text:?} is not a duration like 24h: {err}")
            }),
        }
    }
}

fn is_slug(value: &str, max: usize) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(|label| is_slug(label, 63))
}

fn is_origin(value: &str) -> bool {
    if value == "*" {
        return true;
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' ', '@'])
}

/// A whole YAML document: `apiVersion`, `kind`, `metadata` and `spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoneycombDocument {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: HoneycombSpec,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl HoneycombDocument {
    pub fn namespace(&self) -> &str {
        self.metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE)
    }
}

/// Parses every `Honeycomb` document of a (multi-document) YAML file.
pub fn parse_documents(yaml: &str) -> crate::Result<Vec<HoneycombDocument>> {
    let mut documents = Vec::new();
    for document in yaml_serde::Deserializer::from_str(yaml) {
        let value = yaml_serde::Value::deserialize(document)
            .map_err(|err| crate::Error::Yaml(err.to_string()))?;
        if value.is_null() {
            continue;
        }
        let parsed: HoneycombDocument = serde_path_to_error::deserialize(value)
            .map_err(|err| crate::Error::Yaml(format!("{}: {}", err.path(), err.inner())))?;
        if parsed.api_version != API_VERSION || parsed.kind != KIND {
            return Err(crate::Error::Yaml(format!(
                "expected apiVersion {API_VERSION} and kind {KIND}, found {} {}",
                parsed.api_version, parsed.kind
            )));
        }
        if !is_dns_subdomain(&parsed.metadata.name) || !is_slug(parsed.namespace(), 63) {
            return Err(crate::Error::Yaml(format!(
                "metadata.name {:?} and namespace {:?} must be DNS names",
                parsed.metadata.name,
                parsed.namespace()
            )));
        }
        documents.push(parsed);
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/honeycomb.yaml");

    #[test]
    fn the_committed_crd_matches_the_rust_types() {
        let committed = include_str!("../../crds/honeycomb.yaml");
        assert!(
            committed == crd_yaml(),
            "crds/honeycomb.yaml is out of date: run `cargo run -p bichito-operator -- crd > crds/honeycomb.yaml`"
        );
    }

    #[test]
    fn the_example_parses_and_validates() {
        let documents = parse_documents(EXAMPLE).expect("example parses");
        assert_eq!(documents.len(), 1);
        let document = &documents[0];
        assert_eq!(document.metadata.name, "checkout-web");
        assert_eq!(document.namespace(), "payments");
        assert_eq!(document.spec.team, "payments");
        assert_eq!(document.spec.plan, Plan::Free);
        assert_eq!(document.spec.quotas.reports_per_minute, Some(60));
        assert_eq!(document.spec.blocklist.len(), 2);
        assert_eq!(document.spec.grace_period(), Ok(DEFAULT_GRACE_PERIOD));
        document.spec.validate().expect("example validates");
    }

    #[test]
    fn every_problem_is_listed() {
        let mut spec = parse_documents(EXAMPLE).expect("parses").remove(0).spec;
        spec.team = "Payments!".into();
        spec.allowed_origins = vec!["https://ok.example".into(), "ftp://x/y".into()];
        spec.blocklist.push(BlockRuleSpec {
            field: "nope".into(),
            pattern: None,
            contains: None,
        });
        spec.api_key.grace_period = Some("soon".into());
        let Err(crate::Error::InvalidSpec(problems)) = spec.validate() else {
            panic!("spec should be invalid");
        };
        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn unknown_fields_and_kinds_are_rejected() {
        let typo = EXAMPLE.replace("allowedOrigins", "allowedOrigin");
        assert!(parse_documents(&typo).is_err());
        let wrong_kind = EXAMPLE.replace("kind: Honeycomb", "kind: Beehive");
        assert!(parse_documents(&wrong_kind).is_err());
        let wrong_plan = EXAMPLE.replace("plan: free", "plan: gold");
        let message = parse_documents(&wrong_plan)
            .expect_err("invalid plan")
            .to_string();
        assert!(message.contains("spec.plan"), "{message}");
    }
}
