//! Durable [`Store`] backends and the one place a store URL becomes a store.
//!
//! | URL | store |
//! | --- | --- |
//! | `memory` | in process memory (default) |
//! | `sqlite://PATH[?synchronous=full]` | one SQLite file, WAL mode |
//! | `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (or `postgresql://`) | PostgreSQL, shareable by several hub nodes |

pub mod postgres;
pub mod sqlite;
mod sqlite_tasks;
pub mod testing;

use std::sync::Arc;

use clawnet_core::error::{Error, Result};
use clawnet_core::store::{MemoryStore, Store};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A parsed store URL. Its `Debug` hides a PostgreSQL password.
#[derive(Clone, PartialEq, Eq)]
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
    /// `postgres://…` or `postgresql://…`, passed to the driver as given.
    Postgres {
        /// The connection URL (may hold a password).
        url: String,
    },
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Sqlite { path, full_sync } => f
                .debug_struct("Sqlite")
                .field("path", path)
                .field("full_sync", full_sync)
                .finish(),
            Self::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &redact_password(url))
                .finish(),
        }
    }
}

/// `scheme://user:***@host…` for `scheme://user:password@host…`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
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
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres {
                url: url.to_owned(),
            });
        }
        Err(format!(
            "'{}' is not a store URL: use memory, sqlite://PATH or postgres://USER@HOST/DB",
            redact_password(url)
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
        StoreUrl::Postgres { url } => Arc::new(PostgresStore::connect(url).await?),
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
        for url in [
            "postgres://cn:secret@db:5432/clawnet",
            "postgresql://cn@db/clawnet",
        ] {
            assert_eq!(
                StoreUrl::parse(url),
                Ok(StoreUrl::Postgres { url: url.into() })
            );
        }
        let shown = format!(
            "{:?}",
            StoreUrl::parse("postgres://cn:secret@db/c?sslmode=disable").expect("url")
        );
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("postgres://cn:***@db/c"), "{shown}");
    }
}
