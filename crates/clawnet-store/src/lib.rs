//! Durable [`Store`] backends and the one place a store URL becomes a store.
//!
//! | URL | store |
//! | --- | --- |
//! | `memory` | in process memory (default) |
//! | `sqlite://PATH[?synchronous=full]` | one SQLite file, WAL mode |

pub mod sqlite;

use std::sync::Arc;

use clawnet_core::error::{Error, Result};
use clawnet_core::store::{MemoryStore, Store};

pub use sqlite::SqliteStore;

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory`.
    Memory,
    /// `sqlite://PATH`, with the durability of commits.
    Sqlite {
        /// The database file.
        path: String,
        /// `synchronous=full` was asked for.
        full_sync: bool,
    },
}

impl StoreUrl {
    /// Parse a store URL, saying what is wrong if it is not one.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        if url == "memory" || url == "memory://" {
            return Ok(Self::Memory);
        }
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://clawnet.db".into());
            }
            let mut full_sync = false;
            for kv in query.split('&').filter(|s| !s.is_empty()) {
                match kv {
                    "synchronous=full" => full_sync = true,
                    "synchronous=normal" => full_sync = false,
                    other => {
                        return Err(format!(
                            "unknown sqlite option '{other}' (synchronous=normal|full)"
                        ))
                    }
                }
            }
            return Ok(Self::Sqlite {
                path: path.to_owned(),
                full_sync,
            });
        }
        Err(format!(
            "'{url}' is not a store URL: use memory or sqlite://PATH"
        ))
    }
}

/// Open the store a URL names.
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Sqlite { path, full_sync } => {
            let sync = if *full_sync {
                sqlite::Sync::Full
            } else {
                sqlite::Sync::Normal
            };
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(path, sync))
                .await
                .map_err(Error::unavailable)??;
            Arc::new(store)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_why_not() {
        assert_eq!(StoreUrl::parse("memory"), Ok(StoreUrl::Memory));
        assert_eq!(
            StoreUrl::parse("sqlite://data/c.db?synchronous=full"),
            Ok(StoreUrl::Sqlite {
                path: "data/c.db".into(),
                full_sync: true
            })
        );
        assert!(StoreUrl::parse("sqlite://").is_err());
        assert!(StoreUrl::parse("sqlite://x.db?journal=off").is_err());
        assert!(StoreUrl::parse("redis://x").is_err());
    }
}
