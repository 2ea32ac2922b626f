//! Dashboard sessions and one-time sign-ins.

use super::SqlStore;
use crate::Result;
use crate::session::{SessionRecord, SignIn};
use crate::store::SessionStore;
use chrono::{DateTime, Utc};

fn teams_json(teams: &[String]) -> String {
    serde_json::Value::from(teams.to_vec()).to_string()
}

#[async_trait::async_trait]
impl SessionStore for SqlStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, teams, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.id_hash)
        .bind(&session.user_id)
        .bind(teams_json(&session.teams))
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.revoked_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        Ok(sqlx::query_as(
            "SELECT id_hash, user_id, teams, created_at, expires_at, revoked_at \
             FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn revoke_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL",
        )
        .bind(id_hash)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_sign_in(&self, id_hash: &str, sign_in: &SignIn) -> Result<()> {
        let (user_id, teams, verifier, nonce, return_to) = match sign_in {
            SignIn::Link {
                user_id,
                teams,
                return_to,
                ..
            } => (
                Some(user_id),
                Some(teams_json(teams)),
                None,
                None,
                return_to,
            ),
            SignIn::Oidc {
                verifier,
                nonce,
                return_to,
                ..
            } => (None, None, Some(verifier), Some(nonce), return_to),
        };
        sqlx::query(
            "INSERT INTO sign_ins (id_hash, user_id, teams, verifier, nonce, return_to, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(teams)
        .bind(verifier)
        .bind(nonce)
        .bind(return_to)
        .bind(sign_in.expires_at())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn take_sign_in(&self, id_hash: &str) -> Result<Option<SignIn>> {
        // One statement finds and deletes it: of two concurrent takes, one gets it.
        Ok(sqlx::query_as(
            "DELETE FROM sign_ins WHERE id_hash = $1 \
             RETURNING user_id, teams, verifier, nonce, return_to, expires_at",
        )
        .bind(id_hash)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64> {
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        let sign_ins = sqlx::query("DELETE FROM sign_ins WHERE expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(sessions.rows_affected() + sign_ins.rows_affected())
    }
}
