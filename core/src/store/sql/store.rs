//! [`Store`] for this backend: the database itself. Each concern's trait is implemented in
//! the file of the same name beside this one.

use super::{Dialect, SqlStore};
use crate::Result;
use crate::store::Store;

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        Self::BACKEND
    }

    async fn migrate(&self) -> Result<()> {
        Self::migrator().run(self.pool()).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    async fn settings_version(&self) -> Result<u64> {
        self.current_settings_version().await
    }
}
