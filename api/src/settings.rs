//! Caches of honeycomb settings and API keys, so that the ingest path rarely reads them from
//! the database, dropped as soon as the operator or `bichito apply` changes them, in every
//! process (see `Store::settings_version`).

use bichito_core::model::{ApiKeyRecord, Honeycomb};
use bichito_core::store::Store;
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
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

    fn is_fresh<T>(&self, entry: &Entry<T>, version: u64) -> bool {
        entry.version == version && entry.fetched.elapsed() < self.ttl
    }

    fn entry<T>(&self, version: u64, value: T) -> Entry<T> {
        Entry {
            fetched: Instant::now(),
            version,
            value,
        }
    }

    /// `key`'s value in `map` if fresh at `version`; otherwise what `load` reads, kept when
    /// found (stale entries are dropped then, so the map holds one settings version at most).
    async fn cached<K, Q, T, F>(
        &self,
        map: &RwLock<HashMap<K, Entry<T>>>,
        key: &Q,
        version: u64,
        load: impl FnOnce() -> F,
    ) -> bichito_core::Result<Option<T>>
    where
        K: Borrow<Q> + Eq + Hash,
        Q: ToOwned<Owned = K> + Eq + Hash + ?Sized,
        T: Clone,
        F: Future<Output = bichito_core::Result<Option<T>>>,
    {
        if let Some(entry) = read(map)
            .get(key)
            .filter(|entry| self.is_fresh(entry, version))
        {
            return Ok(Some(entry.value.clone()));
        }
        let value = load().await?;
        if let Some(value) = &value {
            let mut map = write(map);
            map.retain(|_, entry| self.is_fresh(entry, version));
            map.insert(key.to_owned(), self.entry(version, value.clone()));
        }
        Ok(value)
    }

    pub async fn api_key(
        &self,
        store: &dyn Store,
        version: u64,
        prefix: &str,
    ) -> bichito_core::Result<Option<ApiKeyRecord>> {
        self.cached(&self.keys, prefix, version, || {
            store.api_key_by_prefix(prefix)
        })
        .await
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
        self.cached(&self.honeycombs, &id, version, || async move {
            Ok(store.honeycomb(id).await?.map(Arc::new))
        })
        .await
    }

    /// Every origin some honeycomb allows (`*` included when one allows any).
    pub async fn known_origins(
        &self,
        store: &dyn Store,
    ) -> bichito_core::Result<Arc<HashSet<String>>> {
        let version = store.settings_version().await?;
        if let Some(entry) = read(&self.origins)
            .as_ref()
            .filter(|entry| self.is_fresh(entry, version))
        {
            return Ok(entry.value.clone());
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
