//! The daemon's hold on the configuration: a copy for every reader, one change at a time,
//! each change written before it becomes the configuration.

use std::sync::Arc;

use gnt_core::clock::unix_now;
use tokio::sync::Mutex;

use super::{ClusterConfig, ConfigError, ConfigStore};

/// The daemon's configuration: read by anyone at any time, changed one change at a time.
///
/// Readers take a copy of the current configuration without waiting for a change in
/// progress (a node add holds the writer's lock only for its commit, but a token creation
/// and a job's commit must still not interleave); writers queue on their own lock.
#[derive(Debug)]
pub struct ConfigHandle {
    store: ConfigStore,
    writer: Mutex<()>,
    current: std::sync::RwLock<Arc<ClusterConfig>>,
}

impl ConfigHandle {
    /// Wraps a loaded configuration.
    pub fn new(store: ConfigStore, config: ClusterConfig) -> Self {
        Self {
            store,
            writer: Mutex::new(()),
            current: std::sync::RwLock::new(Arc::new(config)),
        }
    }

    /// The current configuration; never waits for a change in progress.
    pub async fn snapshot(&self) -> ClusterConfig {
        self.current().as_ref().clone()
    }

    fn current(&self) -> Arc<ClusterConfig> {
        // A poisoned lock only means a panic elsewhere while swapping an `Arc`: the value
        // inside is whole either way.
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Holds the right to change the configuration: no other change can start until the
    /// returned guard is dropped.
    pub async fn lock(&self) -> ConfigGuard<'_> {
        let writer = self.writer.lock().await;
        ConfigGuard {
            handle: self,
            _writer: writer,
            current: self.current(),
        }
    }

    /// Applies `change` to a copy; writes the copy with the next serial; then makes it the
    /// configuration. A failed change or write changes nothing.
    pub async fn update<T, E>(
        &self,
        change: impl FnOnce(&mut ClusterConfig) -> Result<T, E>,
    ) -> Result<(T, ClusterConfig), E>
    where
        E: From<ConfigError>,
    {
        self.lock().await.commit(change)
    }
}

/// The right to change the configuration.
#[derive(Debug)]
pub struct ConfigGuard<'a> {
    handle: &'a ConfigHandle,
    _writer: tokio::sync::MutexGuard<'a, ()>,
    current: Arc<ClusterConfig>,
}

impl ConfigGuard<'_> {
    /// The configuration as it is.
    pub fn config(&self) -> &ClusterConfig {
        &self.current
    }

    /// See [`ConfigHandle::update`].
    pub fn commit<T, E>(
        &mut self,
        change: impl FnOnce(&mut ClusterConfig) -> Result<T, E>,
    ) -> Result<(T, ClusterConfig), E>
    where
        E: From<ConfigError>,
    {
        let mut next = self.current.as_ref().clone();
        let value = change(&mut next)?;
        next.serial += 1;
        next.modified_at = unix_now();
        let now = next.modified_at;
        // Unused tokens stay listed a while after they expire (`gnt node token list` then
        // says why an add was refused), used ones for good (the record of a join).
        next.join_tokens.retain(|t| {
            t.used_by.is_some()
                || t.expires_at + crate::operations::token::EXPIRED_TOKEN_GRACE > now
        });
        self.handle.store.save(&next)?;
        let next = Arc::new(next);
        *self
            .handle
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = next.clone();
        self.current = next.clone();
        Ok((value, next.as_ref().clone()))
    }
}
