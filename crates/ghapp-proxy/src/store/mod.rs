//! The proxy's state store: the sandboxes added through the admin API, their
//! disconnections and the webhook deliveries acted on (`sandboxes`), the pull requests held for
//! a human (`approvals`), observe mode's proposals (`proposals`). SQLite in a file by default
//! (nothing to run), PostgreSQL for several replicas; one schema (`migrations/`), the same
//! queries (sqlx's `Any` driver), the same tests against both.
//!
//! Every change bumps a generation number; each replica polls it (every second) and reloads
//! its sandboxes when it moves, so a change made through one replica is seen by all.

mod approvals;
mod budget;
mod proposals;
mod sandboxes;

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyPoolOptions;

pub use approvals::Approval;
pub(crate) use budget::Table;
pub use proposals::Proposal;

/// The migrations, in order: `(version, SQL)`. Applied once each, in a transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_control_plane.sql")),
    (2, include_str!("../../migrations/0002_approvals.sql")),
    (3, include_str!("../../migrations/0003_proposals.sql")),
    (
        4,
        include_str!("../../migrations/0004_approvals_pinned.sql"),
    ),
    (5, include_str!("../../migrations/0005_ended_sessions.sql")),
    (6, include_str!("../../migrations/0006_budget.sql")),
    (7, include_str!("../../migrations/0007_budget_points.sql")),
];

/// A store error, worded for the operator (the URL's password never in it).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sandbox {0} exists")]
    Exists(String),
    #[error("no sandbox {0}")]
    Missing(String),
    #[error("the state store: {0}")]
    Db(String),
    /// A sandbox has this many pull requests pending already.
    #[error("{0} pull requests are waiting for approval")]
    Full(i64),
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    pool: AnyPool,
}

fn now() -> i64 {
    ghapp_core::jwt::unix_now()
}

impl Store {
    /// Opens (creating a SQLite file as needed) and migrates the store at `url`:
    /// `sqlite:PATH` or `postgres://…`.
    pub(crate) async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                ghapp_core::fsutil::ensure_private_dir(dir)
                    .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
            }
            format!("sqlite://{path}?mode=rwc")
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.to_owned()
        } else {
            return Err(StoreError::Db(
                "state must be sqlite:PATH or postgres://…".into(),
            ));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .map_err(|e| StoreError::Db(format!("cannot open: {}", redact(&e.to_string()))))?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if done.is_some() {
                continue;
            }
            for stmt in statements(sql) {
                sqlx::query(&stmt).execute(&mut *tx).await.map_err(db)?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(now())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
        }
        Ok(())
    }

    /// The generation: it moves whenever anything changes.
    pub(crate) async fn generation(&self) -> Result<i64, StoreError> {
        sqlx::query("SELECT value FROM generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?
            .try_get::<i64, _>(0)
            .map_err(db)
    }

    /// Commits `tx`, moving the generation first when it `changed` something (every replica
    /// reloads when it moves).
    async fn commit(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        changed: bool,
    ) -> Result<(), StoreError> {
        if changed {
            sqlx::query("UPDATE generation SET value = value + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}

impl Store {
    /// Ends the approvals page's session `id` (by its digest) until `expires_at`; sessions that
    /// expired anyway are forgotten.
    pub(crate) async fn end_session(
        &self,
        digest: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM ended_sessions WHERE expires_at < $1")
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO ended_sessions (session, expires_at) VALUES ($1, $2) ON CONFLICT (session) DO NOTHING",
        )
        .bind(digest)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        self.commit(tx, false).await
    }

    /// Whether the session with this digest was ended.
    pub(crate) async fn session_ended(&self, digest: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM ended_sessions WHERE session = $1")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?
                .is_some(),
        )
    }
}

/// The next id of `table` (ids are numbered in the store so that every replica agrees; a
/// replica that loses the race to insert it tries the next).
async fn next_id(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &'static str,
) -> Result<i64, StoreError> {
    sqlx::query(&format!("SELECT COALESCE(MAX(id), 0) + 1 FROM {table}"))
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)
}

/// The statements of a migration (split on `;` at line ends; comments dropped).
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(";\n")
        .chain(std::iter::once(""))
        .map(|s| s.trim().trim_end_matches(';').trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A database error without the password a URL may carry.
fn redact(s: &str) -> String {
    match (s.find("://"), s.find('@')) {
        (Some(a), Some(b)) if a < b => format!("{}://…{}", &s[..a], &s[b..]),
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_split_into_statements() {
        let st = statements(MIGRATIONS[0].1);
        assert_eq!(st.len(), 4, "{st:#?}");
        assert!(st.iter().all(|s| !s.contains("--")));
        assert_eq!(
            redact("error connecting to postgres://u:pw@h/db"),
            "error connecting to postgres://…@h/db"
        );
    }
}
