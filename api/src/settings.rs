//! Caches of honeycomb settings and API keys, so that the ingest path rarely reads them from
//! the database, dropped as soon as the operator or `bichito apply` changes them, in every
//! process (see `Store::settings_version`).

use bichito_core::model::{ApiKeyRecord, Honeycomb};
use bichito_core::store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

struct Entry<T> {
    fetched: Instant,
    /// The store's settings version when it was read.
    version: u64,
    value: T,
}

/// Honeycomb settings and API key records. An entry is trusted while the store's settings
/// version is the one it was read at (every change of settings or keys, by any process,
/// moves it as it commits) and for at most `ttl`. Unknown keys are not cached (so random keys
/// cannot grow the cache); a key whose grace period ends is refused at once because its
/// record carries its expiry.
pub struct SettingsCache {
    ttl: Duration,
    keys: RwLock<HashMap<String, Entry<ApiKeyRecord>>>,
    honeycombs: RwLock<HashMap<i64, Entry<Arc<Honeycomb>>>>,
    origins: RwLock<Option<Entry<Arc<HashSet<String>>>>>,
}

impl SettingsCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            keys: RwLock::default(),
            honeycombs: RwLock::default(),
            origins: RwLock::default(),
        }
    }

    fn fresh<T: Clone>(&self, entry: Option<&Entry<T>>, version: u64) -> Option<T> {
        entry
            .filter(|entry| entry.version == version && entry.fetched.elapsed() < self.ttl)
            .map(|entry| entry.value.clone())
    }

    fn entry<T>(&self, version: u64, value: T) -> Entry<T> {
        Entry {
            fetched: Instant::now(),
            version,
            value,
        }
    }

    /// The store's settings version, to look settings up at: read it before the lookups of one
    /// request (a change committed in between makes what they cache stale, never fresh).
    pub async fn version(&self, store: &dyn Store) -> bichito_core::Result<u64> {
        store.settings_version().await
    }

    pub async fn api_key(
        &self,
        store: &dyn Store,
        version: u64,
        prefix: &str,
    ) -> bichito_core::Result<Option<ApiKeyRecord>> {
        if let Some(hit) = self.fresh(read(&self.keys).get(prefix), version) {
            return Ok(Some(hit));
        }
        let record = store.api_key_by_prefix(prefix).await?;
        if let Some(record) = &record {
            let mut keys = write(&self.keys);
            keys.retain(|_, entry| entry.version == version && entry.fetched.elapsed() < self.ttl);
            keys.insert(prefix.to_owned(), self.entry(version, record.clone()));
        }
        Ok(record)
    }

    /// Drops a key the store found revoked, before the change is announced.
    pub fn forget_key(&self, prefix: &str) {
        write(&self.keys).remove(prefix);
    }

    pub async fn honeycomb(
        &self,
        store: &dyn Store,
        version: u64,
        id: i64,
    ) -> bichito_core::Result<Option<Arc<Honeycomb>>> {
        if let Some(hit) = self.fresh(read(&self.honeycombs).get(&id), version) {
            return Ok(Some(hit));
        }
        let honeycomb = store.honeycomb(id).await?.map(Arc::new);
        if let Some(honeycomb) = &honeycomb {
            let mut honeycombs = write(&self.honeycombs);
            honeycombs
                .retain(|_, entry| entry.version == version && entry.fetched.elapsed() < self.ttl);
            honeycombs.insert(id, self.entry(version, honeycomb.clone()));
        }
        Ok(honeycomb)
    }

    /// Every origin some honeycomb allows (`*` included when one allows any).
    pub async fn known_origins(
        &self,
        store: &dyn Store,
    ) -> bichito_core::Result<Arc<HashSet<String>>> {
        let version = store.settings_version().await?;
        if let Some(hit) = self.fresh(read(&self.origins).as_ref(), version) {
            return Ok(hit);
        }
        let origins: Arc<HashSet<String>> =
            Arc::new(store.all_allowed_origins().await?.into_iter().collect());
        *write(&self.origins) = Some(self.entry(version, origins.clone()));
        Ok(origins)
    }
}

// A panic while holding one of these locks cannot leave a cache map half-written in a way that
// matters (entries are whole values), so a poisoned lock is simply taken over.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
