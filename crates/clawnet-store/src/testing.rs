//! Test support for code that runs against a real PostgreSQL: the server
//! from `CLAWNET_TEST_POSTGRES_URL` (a failure under `CI=true`, a skip
//! otherwise) and throwaway schemas. Used by this crate's tests and the
//! server's; not part of the store API.
#![allow(clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

/// The server to test against, or `None` (after saying so) to skip.
pub fn server_url() -> Option<String> {
    match std::env::var("CLAWNET_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CLAWNET_TEST_POSTGRES_URL is not set but CI=true: the PostgreSQL store \
                     must be tested in CI; point it at a server, e.g. \
                     postgres://postgres@127.0.0.1:5432/test"
                );
            }
            println!(
                "note: CLAWNET_TEST_POSTGRES_URL is not set; skipping the PostgreSQL tests \
                 (e.g. CLAWNET_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to CLAWNET_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    client
}

/// A fresh, empty schema, dropped (with everything in it) on drop.
#[derive(Debug)]
pub struct Schema {
    server: String,
    name: String,
}

impl Schema {
    pub async fn create(server: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "cn_test_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        admin(server)
            .await
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create a test schema");
        Self {
            server: server.to_owned(),
            name,
        }
    }

    /// The server URL with this schema as the only search path.
    pub fn url(&self) -> String {
        let sep = if self.server.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.server, self.name
        )
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop may run on a runtime thread, maybe while unwinding: use a
        // thread with its own runtime.
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&server, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}
