//! What should exist for a Honeycomb, computed without a client: the API-key Secret, whether a
//! Secret found under that name is ours to write, and the status with its conditions.

use bichito_core::provision::KeyAction;
use bichito_core::spec::{API_VERSION, Honeycomb, HoneycombCondition, HoneycombStatus, KIND};
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// The field manager of every write, and the `app.kubernetes.io/managed-by` label it stamps.
pub const MANAGER: &str = "bichito-operator";
/// Guards the database state of a Honeycomb until its keys are revoked.
pub const FINALIZER: &str = "bichito.dev/cleanup";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Names the Honeycomb a Secret belongs to, for `kubectl get secrets -l`.
pub const HONEYCOMB_LABEL: &str = "bichito.dev/honeycomb";
/// The Secret's data key that holds the API key.
pub const API_KEY_FIELD: &str = "api-key";

pub const READY: &str = "Ready";
pub const KEY_PROVISIONED: &str = "KeyProvisioned";
pub const SYNCED: &str = "Synced";

/// What a Secret found under `spec.apiKey.secretName` means for this Honeycomb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOwnership {
    Absent,
    /// Ours: managed by this operator and controlled by this very Honeycomb (same uid). The key
    /// it holds, when it holds one.
    Managed {
        api_key: Option<String>,
    },
    /// Someone else's (a hand-made Secret, or another Honeycomb's): never written.
    Foreign,
}

pub fn secret_ownership(secret: Option<&Secret>, honeycomb: &Honeycomb) -> SecretOwnership {
    let Some(secret) = secret else {
        return SecretOwnership::Absent;
    };
    let labelled = secret.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGER);
    let controlled = honeycomb.uid().is_some_and(|uid| {
        secret
            .owner_references()
            .iter()
            .any(|owner| owner.controller == Some(true) && owner.kind == KIND && owner.uid == uid)
    });
    if labelled && controlled {
        SecretOwnership::Managed {
            api_key: api_key_in(secret),
        }
    } else {
        SecretOwnership::Foreign
    }
}

fn api_key_in(secret: &Secret) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(API_KEY_FIELD))
        .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
        .filter(|key| !key.is_empty())
}

/// The API-key Secret: in the Honeycomb's namespace, controlled by it (so that it is garbage
/// collected with it), labelled as ours. `None` when the Honeycomb has no uid or namespace yet.
pub fn api_key_secret(honeycomb: &Honeycomb, api_key: &str) -> Option<Secret> {
    let owner = honeycomb.controller_owner_ref(&())?;
    let labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned()),
        (HONEYCOMB_LABEL.to_owned(), honeycomb.name_any()),
        ("app.kubernetes.io/part-of".to_owned(), "bichito".to_owned()),
    ]);
    Some(Secret {
        metadata: ObjectMeta {
            name: Some(honeycomb.spec.api_key.secret_name.clone()),
            namespace: Some(honeycomb.namespace()?),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            API_KEY_FIELD.to_owned(),
            ByteString(api_key.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    })
}

/// True when `existing` lacks something `desired` sets: its key, a label, the owner.
pub fn secret_differs(existing: &Secret, desired: &Secret) -> bool {
    let labels_missing = desired
        .labels()
        .iter()
        .any(|(name, value)| existing.labels().get(name) != Some(value));
    let owner_missing = desired
        .owner_references()
        .iter()
        .any(|owner| !existing.owner_references().contains(owner));
    labels_missing || owner_missing || api_key_in(existing) != api_key_in(desired)
}

/// How one reconciliation went, as far as the status is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Provisioned {
        honeycomb_id: i64,
        key_prefix: String,
        key_action: KeyAction,
    },
    /// A Secret of that name exists and is not ours: nothing was written.
    SecretConflict,
    /// The spec does not validate: nothing was written. Every problem is listed.
    InvalidSpec(Vec<String>),
    /// The database failed; the previous state stays in force.
    DatabaseUnavailable(String),
}

/// The status after `outcome`, keeping what is still true of `previous` (ids, the prefix,
/// transition times of conditions whose status did not change).
pub fn status(honeycomb: &Honeycomb, outcome: &Outcome, now: DateTime<Utc>) -> HoneycombStatus {
    let previous = honeycomb.status.clone().unwrap_or_default();
    let generation = honeycomb.metadata.generation;
    let secret_name = &honeycomb.spec.api_key.secret_name;
    let (key, synced) = match outcome {
        Outcome::Provisioned { key_action, .. } => {
            // A kept key keeps the reason it was made for, so that the reconciliation after a
            // creation or rotation finds nothing to write.
            let previous_reason = previous
                .conditions
                .iter()
                .find(|c| c.type_ == KEY_PROVISIONED && c.status == "True")
                .map(|c| c.reason.as_str());
            let reason = match (key_action, previous_reason) {
                (KeyAction::Created, _) => "KeyCreated",
                (KeyAction::Rotated, _) => "KeyRotated",
                (KeyAction::Kept, Some("KeyCreated")) => "KeyCreated",
                (KeyAction::Kept, Some("KeyRotated")) => "KeyRotated",
                (KeyAction::Kept, _) => "KeyCurrent",
            };
            let message = match reason {
                "KeyCreated" => format!("a new API key is stored in Secret {secret_name}"),
                "KeyRotated" => format!(
                    "the API key was rotated into Secret {secret_name}; the previous key stays valid for the grace period"
                ),
                _ => format!("the API key in Secret {secret_name} is current"),
            };
            (
                ("True", reason, message),
                (
                    "True",
                    "Synced",
                    "plan, quotas, blocklist and allowed origins are in force".to_owned(),
                ),
            )
        }
        Outcome::SecretConflict => {
            let message = format!(
                "Secret {secret_name} exists and is not managed by {MANAGER} for this Honeycomb; it was left untouched. Delete it or choose another spec.apiKey.secretName"
            );
            (
                ("False", "SecretConflict", message.clone()),
                ("False", "SecretConflict", message),
            )
        }
        Outcome::InvalidSpec(problems) => {
            let message = format!("the spec is invalid: {}", problems.join("; "));
            (
                ("False", "InvalidSpec", message.clone()),
                ("False", "InvalidSpec", message),
            )
        }
        Outcome::DatabaseUnavailable(error) => {
            let message = format!(
                "the database could not be updated ({error}); the last applied state stays in force"
            );
            (
                (
                    "Unknown",
                    "DatabaseUnavailable",
                    "the key could not be checked against the database".to_owned(),
                ),
                ("False", "DatabaseUnavailable", message),
            )
        }
    };
    let ready = if key.0 == "True" && synced.0 == "True" {
        (
            "True",
            "Ready",
            "the API key works and the spec is in force".to_owned(),
        )
    } else if synced.0 != "True" {
        ("False", synced.1, synced.2.clone())
    } else {
        ("False", key.1, key.2.clone())
    };
    let conditions = [(READY, ready), (KEY_PROVISIONED, key), (SYNCED, synced)]
        .into_iter()
        .map(|(type_, (status, reason, message))| {
            let last_transition_time = previous
                .conditions
                .iter()
                .find(|condition| condition.type_ == type_ && condition.status == status)
                .and_then(|condition| condition.last_transition_time.clone())
                .unwrap_or_else(|| now.to_rfc3339_opts(SecondsFormat::Secs, true));
            HoneycombCondition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message,
                last_transition_time: Some(last_transition_time),
                observed_generation: generation,
            }
        })
        .collect();
    let (honeycomb_id, key_prefix, secret_name) = match outcome {
        Outcome::Provisioned {
            honeycomb_id,
            key_prefix,
            ..
        } => (
            Some(*honeycomb_id),
            Some(key_prefix.clone()),
            Some(secret_name.clone()),
        ),
        _ => (
            previous.honeycomb_id,
            previous.key_prefix,
            previous.secret_name,
        ),
    };
    HoneycombStatus {
        honeycomb_id,
        key_prefix,
        secret_name,
        observed_generation: generation,
        conditions,
    }
}

/// A Kubernetes Event to publish about a Honeycomb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The Event that `outcome` deserves, judged against the status before it: key changes and
/// applied spec changes always; a failure only when it is new, so that a Honeycomb stuck on
/// the same problem does not flood its Events.
pub fn notice(honeycomb: &Honeycomb, outcome: &Outcome) -> Option<Notice> {
    let previous = honeycomb.status.as_ref();
    let previous_ready_reason = previous
        .and_then(|status| status.conditions.iter().find(|c| c.type_ == READY))
        .map(|condition| condition.reason.as_str());
    let secret_name = &honeycomb.spec.api_key.secret_name;
    let failure = |reason: &'static str, note: String| {
        (previous_ready_reason != Some(reason)).then_some(Notice {
            warning: true,
            reason,
            note,
        })
    };
    match outcome {
        Outcome::Provisioned {
            key_prefix,
            key_action: KeyAction::Created,
            ..
        } => Some(Notice {
            warning: false,
            reason: "KeyCreated",
            note: format!("API key {key_prefix}… stored in Secret {secret_name}"),
        }),
        Outcome::Provisioned {
            key_prefix,
            key_action: KeyAction::Rotated,
            ..
        } => Some(Notice {
            warning: false,
            reason: "KeyRotated",
            note: format!(
                "API key rotated to {key_prefix}… in Secret {secret_name}; the previous key stays valid for {}",
                honeycomb
                    .spec
                    .api_key
                    .grace_period
                    .as_deref()
                    .unwrap_or("24h")
            ),
        }),
        Outcome::Provisioned {
            key_action: KeyAction::Kept,
            ..
        } => {
            let generation = honeycomb.metadata.generation;
            let observed = previous.and_then(|status| status.observed_generation);
            let recovered = previous_ready_reason.is_some_and(|reason| reason != "Ready");
            (observed != generation || recovered).then(|| Notice {
                warning: false,
                reason: "Synced",
                note: format!(
                    "generation {} is in force: plan {}, {} reports/min, {} blocklist rules, {} allowed origins",
                    generation.unwrap_or_default(),
                    honeycomb.spec.plan.as_str(),
                    honeycomb
                        .spec
                        .quotas
                        .reports_per_minute
                        .map_or_else(|| "default".to_owned(), |n| n.to_string()),
                    honeycomb.spec.blocklist.len(),
                    honeycomb.spec.allowed_origins.len()
                ),
            })
        }
        Outcome::SecretConflict => failure(
            "SecretConflict",
            format!(
                "Secret {secret_name} is not managed by {MANAGER} for this Honeycomb; left untouched"
            ),
        ),
        Outcome::InvalidSpec(problems) => failure("InvalidSpec", problems.join("; ")),
        Outcome::DatabaseUnavailable(error) => failure("DatabaseUnavailable", error.clone()),
    }
}

/// The server-side-apply body for the status subresource.
pub fn status_patch(status: &HoneycombStatus) -> serde_json::Value {
    serde_json::json!({"apiVersion": API_VERSION, "kind": KIND, "status": status})
}

/// The Secret a renamed `spec.apiKey.secretName` left behind: the one the status names.
pub fn previous_secret_name(honeycomb: &Honeycomb) -> Option<&str> {
    honeycomb
        .status
        .as_ref()
        .and_then(|status| status.secret_name.as_deref())
        .filter(|name| *name != honeycomb.spec.api_key.secret_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn honeycomb() -> Honeycomb {
        let mut honeycomb = bichito_core::testing::example_honeycomb();
        honeycomb.metadata.uid = Some("uid-1".into());
        honeycomb.metadata.generation = Some(3);
        honeycomb
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .single()
            .expect("valid time")
    }

    fn provisioned(key_action: KeyAction) -> Outcome {
        Outcome::Provisioned {
            honeycomb_id: 42,
            key_prefix: "sk_live_ab12cd34".into(),
            key_action,
        }
    }

    fn condition<'a>(status: &'a HoneycombStatus, type_: &str) -> &'a HoneycombCondition {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    #[test]
    fn the_secret_is_controlled_by_its_honeycomb_and_holds_the_key() {
        let secret = api_key_secret(&honeycomb(), "sk_live_secret").expect("a secret");
        assert_eq!(secret.name_any(), "checkout-web-api-key");
        assert_eq!(secret.namespace().as_deref(), Some("payments"));
        assert_eq!(
            secret.labels().get(MANAGED_BY_LABEL).map(String::as_str),
            Some(MANAGER)
        );
        assert_eq!(
            secret.labels().get(HONEYCOMB_LABEL).map(String::as_str),
            Some("checkout-web")
        );
        let owner = &secret.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Honeycomb", "uid-1", Some(true))
        );
        assert_eq!(owner.api_version, API_VERSION);
        assert_eq!(api_key_in(&secret).as_deref(), Some("sk_live_secret"));
        assert_eq!(
            secret_ownership(Some(&secret), &honeycomb()),
            SecretOwnership::Managed {
                api_key: Some("sk_live_secret".into())
            }
        );
    }

    #[test]
    fn a_honeycomb_without_uid_gets_no_secret() {
        let mut honeycomb = honeycomb();
        honeycomb.metadata.uid = None;
        assert!(api_key_secret(&honeycomb, "sk_live_secret").is_none());
    }

    #[test]
    fn a_secret_someone_else_made_or_controls_is_foreign() {
        let ours = api_key_secret(&honeycomb(), "sk_live_secret").expect("a secret");
        assert_eq!(
            secret_ownership(None, &honeycomb()),
            SecretOwnership::Absent
        );

        let mut hand_made = ours.clone();
        hand_made.metadata.labels = None;
        hand_made.metadata.owner_references = None;
        assert_eq!(
            secret_ownership(Some(&hand_made), &honeycomb()),
            SecretOwnership::Foreign
        );

        let mut unlabelled = ours.clone();
        unlabelled.metadata.labels = None;
        assert_eq!(
            secret_ownership(Some(&unlabelled), &honeycomb()),
            SecretOwnership::Foreign,
            "our owner reference alone does not make a Secret ours"
        );

        let mut other_honeycombs = ours.clone();
        other_honeycombs.metadata.owner_references = Some(vec![OwnerReference {
            uid: "uid-2".into(),
            ..ours.owner_references()[0].clone()
        }]);
        assert_eq!(
            secret_ownership(Some(&other_honeycombs), &honeycomb()),
            SecretOwnership::Foreign,
            "another Honeycomb's Secret of the same name is not ours"
        );
    }

    #[test]
    fn only_a_missing_key_label_or_owner_makes_the_secret_differ() {
        let desired = api_key_secret(&honeycomb(), "sk_live_secret").expect("a secret");
        let mut existing = desired.clone();
        existing.metadata.resource_version = Some("7".into());
        existing
            .metadata
            .labels
            .get_or_insert_default()
            .insert("extra".into(), "kept".into());
        assert!(!secret_differs(&existing, &desired));

        let rotated = api_key_secret(&honeycomb(), "sk_live_other").expect("a secret");
        assert!(secret_differs(&existing, &rotated));
        let mut unlabelled = existing.clone();
        unlabelled.metadata.labels = None;
        assert!(secret_differs(&unlabelled, &desired));
    }

    #[test]
    fn a_provisioned_honeycomb_is_ready_with_its_id_prefix_and_secret() {
        let status = status(&honeycomb(), &provisioned(KeyAction::Created), t0());
        assert_eq!(status.honeycomb_id, Some(42));
        assert_eq!(status.key_prefix.as_deref(), Some("sk_live_ab12cd34"));
        assert_eq!(status.secret_name.as_deref(), Some("checkout-web-api-key"));
        assert_eq!(status.observed_generation, Some(3));
        let reasons: Vec<(&str, &str, &str)> = status
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("Ready", "True", "Ready"),
                ("KeyProvisioned", "True", "KeyCreated"),
                ("Synced", "True", "Synced"),
            ]
        );
        assert!(status.conditions.iter().all(|c| {
            c.last_transition_time.as_deref() == Some("2026-11-23T12:00:00Z")
                && c.observed_generation == Some(3)
        }));
    }

    #[test]
    fn an_unchanged_outcome_gives_an_identical_status() {
        let mut honeycomb = honeycomb();
        honeycomb.status = Some(status(&honeycomb, &provisioned(KeyAction::Created), t0()));
        let later = t0() + chrono::TimeDelta::hours(1);
        let again = status(&honeycomb, &provisioned(KeyAction::Kept), later);
        assert_eq!(
            Some(&again),
            honeycomb.status.as_ref(),
            "nothing to write, so no status update and no watch event"
        );
        assert_eq!(condition(&again, KEY_PROVISIONED).reason, "KeyCreated");

        honeycomb.status = Some(status(&honeycomb, &Outcome::SecretConflict, later));
        let recovered = status(&honeycomb, &provisioned(KeyAction::Kept), later);
        assert_eq!(condition(&recovered, KEY_PROVISIONED).reason, "KeyCurrent");
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_changes() {
        let mut honeycomb = honeycomb();
        honeycomb.status = Some(status(&honeycomb, &provisioned(KeyAction::Created), t0()));
        let later = t0() + chrono::TimeDelta::hours(1);
        let rotated = status(&honeycomb, &provisioned(KeyAction::Rotated), later);
        let key = condition(&rotated, KEY_PROVISIONED);
        assert_eq!(key.reason, "KeyRotated");
        assert_eq!(
            key.last_transition_time.as_deref(),
            Some("2026-11-23T12:00:00Z"),
            "True stayed True"
        );

        let conflict = status(&honeycomb, &Outcome::SecretConflict, later);
        let ready = condition(&conflict, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "SecretConflict")
        );
        assert_eq!(
            ready.last_transition_time.as_deref(),
            Some("2026-11-23T13:00:00Z")
        );
        assert_eq!(
            (conflict.honeycomb_id, conflict.key_prefix.as_deref()),
            (Some(42), Some("sk_live_ab12cd34")),
            "what was provisioned before is still reported"
        );
    }

    #[test]
    fn failures_name_their_reason_on_ready() {
        let invalid = status(
            &honeycomb(),
            &Outcome::InvalidSpec(vec!["team must be a slug".into()]),
            t0(),
        );
        let ready = condition(&invalid, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert!(ready.message.contains("team must be a slug"));
        assert_eq!(invalid.honeycomb_id, None);

        let down = status(
            &honeycomb(),
            &Outcome::DatabaseUnavailable("pool timed out".into()),
            t0(),
        );
        assert_eq!(condition(&down, READY).reason, "DatabaseUnavailable");
        assert_eq!(condition(&down, KEY_PROVISIONED).status, "Unknown");
        assert_eq!(condition(&down, SYNCED).status, "False");
    }

    #[test]
    fn key_changes_are_always_announced() {
        let created = notice(&honeycomb(), &provisioned(KeyAction::Created)).expect("an event");
        assert_eq!((created.warning, created.reason), (false, "KeyCreated"));
        assert!(created.note.contains("sk_live_ab12cd34"));
        assert!(created.note.contains("checkout-web-api-key"));
        let rotated = notice(&honeycomb(), &provisioned(KeyAction::Rotated)).expect("an event");
        assert_eq!(rotated.reason, "KeyRotated");
        assert!(rotated.note.contains("24h"), "{}", rotated.note);
    }

    #[test]
    fn a_kept_key_is_announced_only_when_a_new_generation_is_in_force() {
        let mut honeycomb = honeycomb();
        honeycomb.status = Some(status(&honeycomb, &provisioned(KeyAction::Created), t0()));
        assert_eq!(notice(&honeycomb, &provisioned(KeyAction::Kept)), None);
        honeycomb.metadata.generation = Some(4);
        let synced = notice(&honeycomb, &provisioned(KeyAction::Kept)).expect("an event");
        assert_eq!(synced.reason, "Synced");
        assert!(
            synced
                .note
                .starts_with("generation 4 is in force: plan free, 60 reports/min")
        );
    }

    #[test]
    fn a_failure_is_announced_once_then_its_recovery() {
        let mut honeycomb = honeycomb();
        let conflict = notice(&honeycomb, &Outcome::SecretConflict).expect("an event");
        assert_eq!(
            (conflict.warning, conflict.reason),
            (true, "SecretConflict")
        );
        honeycomb.status = Some(status(&honeycomb, &Outcome::SecretConflict, t0()));
        assert_eq!(
            notice(&honeycomb, &Outcome::SecretConflict),
            None,
            "not again"
        );
        let invalid = Outcome::InvalidSpec(vec!["bad".into()]);
        assert_eq!(
            notice(&honeycomb, &invalid).map(|n| n.reason),
            Some("InvalidSpec"),
            "a different failure is news"
        );
        honeycomb.status = Some(status(
            &honeycomb,
            &Outcome::DatabaseUnavailable("down".into()),
            t0(),
        ));
        assert_eq!(
            notice(&honeycomb, &provisioned(KeyAction::Kept)).map(|n| n.reason),
            Some("Synced"),
            "recovery is announced even without a spec change"
        );
    }

    #[test]
    fn the_status_patch_names_the_resource() {
        let patch = status_patch(&HoneycombStatus::default());
        assert_eq!(patch["apiVersion"], "bichito.dev/v1alpha1");
        assert_eq!(patch["kind"], "Honeycomb");
        assert!(patch["status"].is_object());
    }

    #[test]
    fn a_renamed_secret_leaves_the_old_name_in_the_status() {
        let mut honeycomb = honeycomb();
        assert_eq!(previous_secret_name(&honeycomb), None);
        honeycomb.status = Some(HoneycombStatus {
            secret_name: Some("checkout-web-api-key".into()),
            ..HoneycombStatus::default()
        });
        assert_eq!(previous_secret_name(&honeycomb), None, "same name");
        honeycomb.spec.api_key.secret_name = "checkout-web-key-v2".into();
        assert_eq!(
            previous_secret_name(&honeycomb),
            Some("checkout-web-api-key")
        );
    }
}
