//! Hot metadata cached in each process: API keys by secret hash, models by name,
//! deployments and model versions (what every model call reads). A replica then answers
//! most requests without a round trip to the database.
//!
//! Every write through [`Metadata`] drops the family it touched here and, on PostgreSQL,
//! tells every replica with `NOTIFY aiaas_cache, '<family>'` (delivered once the write is
//! committed). Each replica LISTENs on its own connection and drops the same family, so a
//! revoked key is refused everywhere within the time a notification takes. A listener
//! that lost its connection drops everything (notifications sent meanwhile are lost), and
//! every entry also expires after [`TTL`]: a bound for whatever is missed.
//!
//! A read that raced an invalidation does not store its (possibly older) answer: each
//! family counts its invalidations, and an answer is kept only if the count did not move
//! while it was read.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{ApiKeyRecord, DeploymentRecord, Metadata, ModelRecord, ModelVersionRecord};

/// The longest an entry is served without being read again.
pub const TTL: Duration = Duration::from_secs(10);
/// The PostgreSQL channel of invalidations.
pub(crate) const CHANNEL: &str = "aiaas_cache";
/// Entries per family; past it the family starts over (bounded memory whatever callers do).
const MAX_ENTRIES: usize = 50_000;

/// The families, each invalidated as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topic {
    /// API keys (created, changed, revoked).
    Keys,
    /// Models, their versions, aliases and deployments.
    Models,
}

impl Topic {
    fn as_str(self) -> &'static str {
        match self {
            Topic::Keys => "keys",
            Topic::Models => "models",
        }
    }

    fn parse(text: &str) -> Option<Topic> {
        match text {
            "keys" => Some(Topic::Keys),
            "models" => Some(Topic::Models),
            _ => None,
        }
    }
}

/// One family of cached answers.
pub(crate) struct Family<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    /// Invalidations so far; a read stores its answer only if this did not move.
    generation: AtomicU64,
}

impl<K: Eq + Hash, V: Clone> Family<K, V> {
    fn new() -> Self {
        Family {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Where a read starts: pass it to `put` with the answer.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(v, _)| v.clone())
    }

    pub(crate) fn put(&self, read_at: u64, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock `clear` takes: no invalidation slips in between.
        if self.generation.load(Ordering::Acquire) != read_at {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (value, Instant::now()));
    }

    fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

/// The cached families of one [`Metadata`] (shared by its clones).
pub(crate) struct MetaCache {
    pub(crate) keys: Family<String, ApiKeyRecord>,
    pub(crate) models: Family<(String, String), ModelRecord>,
    pub(crate) deployments: Family<String, Option<DeploymentRecord>>,
    pub(crate) versions: Family<(String, i64), ModelVersionRecord>,
}

impl MetaCache {
    pub(crate) fn new() -> MetaCache {
        MetaCache {
            keys: Family::new(),
            models: Family::new(),
            deployments: Family::new(),
            versions: Family::new(),
        }
    }

    pub(crate) fn clear(&self, topic: Topic) {
        match topic {
            Topic::Keys => self.keys.clear(),
            Topic::Models => {
                self.models.clear();
                self.deployments.clear();
                self.versions.clear();
            }
        }
    }

    pub(crate) fn clear_all(&self) {
        self.clear(Topic::Keys);
        self.clear(Topic::Models);
    }
}

impl Metadata {
    /// After a write of `topic`'s tables: drop this process's copies and, on PostgreSQL,
    /// everyone else's. A failed notification is logged: the write itself succeeded, and
    /// other replicas' copies expire within [`TTL`].
    pub(crate) async fn invalidate(&self, topic: Topic) {
        self.cache.clear(topic);
        if self.backend == crate::Backend::Postgres {
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(topic.as_str())
                .execute(&self.pool)
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, topic = topic.as_str(), "cannot tell other replicas to drop cached metadata");
            }
        }
    }
}

/// Follows other replicas' invalidations on PostgreSQL until dropped.
pub(crate) struct Listener(tokio::task::JoinHandle<()>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Listener {
    pub(crate) fn spawn(url: String, cache: std::sync::Arc<MetaCache>) -> Listener {
        Listener(tokio::spawn(async move { listen(&url, &cache).await }))
    }
}

async fn listen(url: &str, cache: &MetaCache) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect(url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for metadata changes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for metadata changes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Whatever changed while nobody listened is unknown: start from nothing.
        cache.clear_all();
        loop {
            match listener.try_recv().await {
                Ok(Some(note)) => match Topic::parse(note.payload()) {
                    Some(topic) => cache.clear(topic),
                    None => cache.clear_all(),
                },
                // The connection was lost (and is re-made on the next call): notifications
                // may have been missed.
                Ok(None) => cache.clear_all(),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the metadata change listener; reconnecting");
                    cache.clear_all();
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let family: Family<String, u32> = Family::new();
        let before = family.generation();
        family.clear();
        family.put(before, "k".into(), 1);
        assert_eq!(family.get(&"k".into()), None, "older than the invalidation");
        let now = family.generation();
        family.put(now, "k".into(), 2);
        assert_eq!(family.get(&"k".into()), Some(2));
        family.clear();
        assert_eq!(family.get(&"k".into()), None);
    }

    #[test]
    fn topics_round_trip_and_clear_their_families() {
        for topic in [Topic::Keys, Topic::Models] {
            assert_eq!(Topic::parse(topic.as_str()), Some(topic));
        }
        let cache = MetaCache::new();
        let g = cache.deployments.generation();
        cache.deployments.put(g, "m".into(), None);
        assert_eq!(cache.deployments.get(&"m".into()), Some(None));
        cache.clear(Topic::Keys);
        assert_eq!(
            cache.deployments.get(&"m".into()),
            Some(None),
            "another family"
        );
        cache.clear(Topic::Models);
        assert_eq!(cache.deployments.get(&"m".into()), None);
    }
}
