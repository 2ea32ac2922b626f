//! Applying a Honeycomb spec to the store: the honeycomb row, its quotas, blocklist and origins,
//! and its API key, created, kept or rotated with a grace period.
//!
//! The key's plaintext lives only with the caller (a Kubernetes Secret for the operator, a file
//! in embedded mode) and is handed back here as `current_key` on the next apply; the database
//! holds its hash. The decision is [`plan_keys`], a pure function.

use crate::keys;
use crate::model::{BlockMatch, BlockRule};
use crate::spec::HoneycombSpec;
use crate::store::{HoneycombApply, HoneycombKeyState, NewApiKey, Store};
use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// The caller's key is still the honeycomb's current key.
    Kept,
    /// A first key, or a replacement for a key the caller no longer has.
    Created,
    /// `spec.apiKey.rotate` changed: a new key; the previous one lasts for the grace period.
    Rotated,
}

pub struct Provisioned {
    pub honeycomb_id: i64,
    /// The current key, to be stored by the caller (Secret or file). Never log it.
    pub api_key: String,
    pub key_prefix: String,
    pub key_action: KeyAction,
}

impl std::fmt::Debug for Provisioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioned")
            .field("honeycomb_id", &self.honeycomb_id)
            .field("key_prefix", &self.key_prefix)
            .field("key_action", &self.key_action)
            .finish_non_exhaustive()
    }
}

/// What to do about keys, decided from the stored state alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlan {
    Keep,
    Issue {
        action: KeyAction,
        /// Every other valid key expires then (the end of the grace period).
        expire_others_at: Option<DateTime<Utc>>,
    },
}

pub fn plan_keys(
    state: Option<&HoneycombKeyState>,
    spec: &HoneycombSpec,
    current_key: Option<&str>,
    grace: TimeDelta,
    now: DateTime<Utc>,
) -> KeyPlan {
    let Some(state) = state else {
        return KeyPlan::Issue {
            action: KeyAction::Created,
            expire_others_at: None,
        };
    };
    let rotation_requested =
        spec.api_key.rotate.is_some() && spec.api_key.rotate != state.key_rotation;
    let current_is_live = current_key.is_some_and(|key| {
        keys::prefix_of(key).is_some_and(|prefix| {
            state.keys.iter().any(|record| {
                record.prefix == prefix
                    && record.expires_at.is_none()
                    && keys::verify(key, &record.hash)
            })
        })
    });
    let others_valid = state.keys.iter().any(|record| record.is_valid_at(now));
    match (rotation_requested, current_is_live) {
        (false, true) => KeyPlan::Keep,
        (rotation, _) => KeyPlan::Issue {
            action: if rotation {
                KeyAction::Rotated
            } else {
                KeyAction::Created
            },
            // No grace: revoked at once, whatever the clocks.
            expire_others_at: others_valid.then(|| {
                if grace > TimeDelta::zero() {
                    now + grace
                } else {
                    keys::revoked()
                }
            }),
        },
    }
}

/// Applies `spec` as honeycomb `namespace/name`. Idempotent: applying the same spec with the key
/// it returned changes nothing but `updated_at`.
pub async fn provision(
    store: &dyn Store,
    namespace: &str,
    name: &str,
    spec: &HoneycombSpec,
    current_key: Option<&str>,
    now: DateTime<Utc>,
) -> crate::Result<Provisioned> {
    spec.validate()?;
    let grace = spec
        .grace_period()
        .ok()
        .and_then(|grace| TimeDelta::from_std(grace).ok())
        .unwrap_or(TimeDelta::MAX);
    let state = store.honeycomb_key_state(namespace, name).await?;
    let plan = plan_keys(state.as_ref(), spec, current_key, grace, now);
    let (new_key, expire_other_keys_at, key_action) = match &plan {
        KeyPlan::Keep => (None, None, KeyAction::Kept),
        KeyPlan::Issue {
            action,
            expire_others_at,
        } => (Some(keys::generate()), *expire_others_at, *action),
    };
    let apply = HoneycombApply {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        team_id: spec.team.clone(),
        display_name: spec.display_name.clone().unwrap_or_default(),
        plan: spec.plan,
        reports_per_minute: spec.quotas.reports_per_minute,
        monthly_reports: spec.quotas.monthly_reports,
        allowed_origins: spec.allowed_origins.clone(),
        blocklist: spec
            .blocklist
            .iter()
            .map(|rule| BlockRule {
                field: rule.field.clone(),
                matcher: match (&rule.pattern, &rule.contains) {
                    (Some(pattern), _) => BlockMatch::Pattern(pattern.clone()),
                    (None, contains) => BlockMatch::Contains(contains.clone().unwrap_or_default()),
                },
            })
            .collect(),
        deletion_policy: spec.deletion_policy,
        key_rotation: spec.api_key.rotate.clone(),
        new_key: new_key.as_ref().map(|key| NewApiKey {
            prefix: key.prefix.clone(),
            hash: key.hash.clone(),
        }),
        expire_other_keys_at,
        now,
    };
    let honeycomb_id = store.apply_honeycomb(&apply).await?;
    let (api_key, key_prefix) = match new_key {
        Some(key) => (key.plaintext, key.prefix),
        None => {
            let key = current_key.unwrap_or_default().to_owned();
            let prefix = keys::prefix_of(&key).unwrap_or_default().to_owned();
            (key, prefix)
        }
    };
    Ok(Provisioned {
        honeycomb_id,
        api_key,
        key_prefix,
        key_action,
    })
}
