//! The proxy's state store (design section 14): the sandboxes added through the admin API, their
//! disconnections, the webhook deliveries acted on. SQLite in a file by default (nothing to
//! run), PostgreSQL for several replicas; one schema (`migrations/`), the same queries (sqlx's
//! `Any` driver), the same tests against both.
//!
//! Every change bumps a generation number; each replica polls it (every second) and reloads
//! its sandboxes when it moves, so a change made through one replica is seen by all.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyPoolOptions;

/// The migrations, in order: `(version, SQL)`. Applied once each, in a transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_control_plane.sql")),
    (2, include_str!("../migrations/0002_approvals.sql")),
    (3, include_str!("../migrations/0003_proposals.sql")),
];

/// A pull request held for a human (learning mode).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Approval {
    pub id: i64,
    pub sandbox: String,
    pub repo: String,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    /// `pending`, `approved`, `denied` or `closed`.
    pub status: String,
    pub reason: String,
    pub decided_by: String,
    pub pr_url: String,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

impl Approval {
    /// A pull request asked for, not yet held (the store gives it its id and status).
    pub fn asked(
        sandbox: &str,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
        draft: bool,
    ) -> Approval {
        Approval {
            id: 0,
            sandbox: sandbox.into(),
            repo: repo.into(),
            head: head.into(),
            base: base.into(),
            title: title.into(),
            body: body.into(),
            draft,
            status: String::new(),
            reason: String::new(),
            decided_by: String::new(),
            pr_url: String::new(),
            created_at: 0,
            decided_at: None,
        }
    }
}

const APPROVAL_COLUMNS: &str = "id, sandbox, repo, head, base, title, body, draft, status, reason, decided_by, pr_url, created_at, decided_at";

fn approval(r: &sqlx::any::AnyRow) -> Result<Approval, StoreError> {
    Ok(Approval {
        id: r.try_get(0).map_err(db)?,
        sandbox: r.try_get(1).map_err(db)?,
        repo: r.try_get(2).map_err(db)?,
        head: r.try_get(3).map_err(db)?,
        base: r.try_get(4).map_err(db)?,
        title: r.try_get(5).map_err(db)?,
        body: r.try_get(6).map_err(db)?,
        draft: r.try_get::<i64, _>(7).map_err(db)? != 0,
        status: r.try_get(8).map_err(db)?,
        reason: r.try_get(9).map_err(db)?,
        decided_by: r.try_get(10).map_err(db)?,
        pr_url: r.try_get(11).map_err(db)?,
        created_at: r.try_get(12).map_err(db)?,
        decided_at: r.try_get(13).map_err(db)?,
    })
}

/// One stored sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub name: String,
    /// The `[[sandbox]]` keys as JSON, the secret as `{"sha256": HEX}`.
    pub spec: serde_json::Value,
    pub created_at: i64,
    pub disconnected_at: Option<i64>,
}

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

/// The most pull requests one sandbox may have waiting for approval.
pub const MAX_PENDING: i64 = 100;
/// The proposals kept per sandbox: recording one more drops its oldest.
pub const MAX_PROPOSALS: i64 = 200;
/// The proposals per sandbox whose bundle is kept (older ones keep their diff).
pub const KEPT_BUNDLES: i64 = 20;

/// What a sandbox in observe mode would have done, recorded instead (design section 15).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Proposal {
    pub id: i64,
    pub sandbox: String,
    pub repo: String,
    /// `push` or `pull_request`.
    pub kind: String,
    /// A push: `refs`, `commits`, `paths`; a pull request: `title`, `body`, `head`, `base`.
    pub detail: serde_json::Value,
    /// A push's diff (bounded; `detail.diff_truncated` says when cut).
    pub diff: String,
    /// The size of the push's bundle, when it is kept.
    pub bundle_bytes: Option<i64>,
    pub created_at: i64,
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

fn now() -> i64 {
    ghapp_core::jwt::unix_now()
}

impl Store {
    /// Opens (creating a SQLite file as needed) and migrates the store at `url`:
    /// `sqlite:PATH` or `postgres://…`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
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
    pub async fn generation(&self) -> Result<i64, StoreError> {
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

    /// Every stored sandbox, disconnected ones included.
    pub async fn all(&self) -> Result<Vec<Stored>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, spec, created_at, disconnected_at FROM sandboxes ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(stored).collect()
    }

    pub async fn get(&self, name: &str) -> Result<Option<Stored>, StoreError> {
        let row = sqlx::query(
            "SELECT name, spec, created_at, disconnected_at FROM sandboxes WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(stored).transpose()
    }

    /// Adds a sandbox; one that was disconnected under this name is replaced.
    pub async fn add(&self, name: &str, spec: &serde_json::Value) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let existing = sqlx::query("SELECT disconnected_at FROM sandboxes WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if let Some(row) = existing {
            let gone: Option<i64> = row.try_get(0).map_err(db)?;
            if gone.is_none() {
                return Err(StoreError::Exists(name.into()));
            }
            sqlx::query("DELETE FROM sandboxes WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query(
            "INSERT INTO sandboxes (name, spec, created_at, updated_at, disconnected_at) VALUES ($1, $2, $3, $3, NULL)",
        )
        .bind(name)
        .bind(spec.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        self.commit(tx, true).await
    }

    /// Replaces an active sandbox's spec.
    pub async fn set(&self, name: &str, spec: &serde_json::Value) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let n = sqlx::query(
            "UPDATE sandboxes SET spec = $1, updated_at = $2 WHERE name = $3 AND disconnected_at IS NULL",
        )
        .bind(spec.to_string())
        .bind(now())
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Missing(name.into()));
        }
        self.commit(tx, true).await
    }

    /// Marks a sandbox disconnected (its spec kept for the record).
    pub async fn disconnect(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let n = sqlx::query(
            "UPDATE sandboxes SET disconnected_at = $1, updated_at = $1 WHERE name = $2 AND disconnected_at IS NULL",
        )
        .bind(now())
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Missing(name.into()));
        }
        self.commit(tx, true).await
    }

    /// Records a webhook delivery and what it does; false when it was recorded before (a
    /// redelivery).
    pub async fn first_delivery(
        &self,
        id: &str,
        event: &str,
        summary: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let r = sqlx::query(
            "INSERT INTO deliveries (id, event, received_at, summary) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(event)
        .bind(now())
        .bind(summary.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let first = r.rows_affected() == 1;
        self.commit(tx, first).await?;
        Ok(first)
    }

    /// Deliveries received since `since` (unix seconds): `(id, summary)`, oldest first.
    pub async fn deliveries_since(
        &self,
        since: i64,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, summary FROM deliveries WHERE received_at >= $1 ORDER BY received_at, id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0).map_err(db)?;
                let s: String = r.try_get(1).map_err(db)?;
                Ok((
                    id,
                    serde_json::from_str(&s).unwrap_or(serde_json::Value::Null),
                ))
            })
            .collect()
    }
}

impl Store {
    /// Records a proposal (its id given here) with a push's `bundle`; past [`MAX_PROPOSALS`]
    /// for its sandbox the oldest are dropped, past [`KEPT_BUNDLES`] the oldest bundles.
    pub async fn propose(
        &self,
        p: &Proposal,
        bundle: Option<&[u8]>,
    ) -> Result<Proposal, StoreError> {
        for _ in 0..3 {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let id = next_id(&mut tx, "proposals").await?;
            let inserted = sqlx::query(
                "INSERT INTO proposals (id, sandbox, repo, kind, detail, diff, bundle, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(&p.sandbox)
            .bind(&p.repo)
            .bind(&p.kind)
            .bind(p.detail.to_string())
            .bind(&p.diff)
            .bind(bundle.map(<[u8]>::to_vec))
            .bind(now())
            .execute(&mut *tx)
            .await;
            // Another replica took the id: try the next.
            if inserted.is_err() {
                continue;
            }
            sqlx::query(
                "DELETE FROM proposals WHERE sandbox = $1 AND id NOT IN (SELECT id FROM proposals WHERE sandbox = $1 ORDER BY id DESC LIMIT $2)",
            )
            .bind(&p.sandbox)
            .bind(MAX_PROPOSALS)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            sqlx::query(
                "UPDATE proposals SET bundle = NULL WHERE sandbox = $1 AND bundle IS NOT NULL AND id NOT IN (SELECT id FROM proposals WHERE sandbox = $1 ORDER BY id DESC LIMIT $2)",
            )
            .bind(&p.sandbox)
            .bind(KEPT_BUNDLES)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            self.commit(tx, false).await?;
            return self
                .proposal(id)
                .await?
                .ok_or_else(|| StoreError::Missing(format!("proposal {id}")));
        }
        Err(StoreError::Db("cannot record the proposal".into()))
    }

    pub async fn proposal(&self, id: i64) -> Result<Option<Proposal>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(proposal).transpose()
    }

    /// A proposal's bundle, if it is kept.
    pub async fn proposal_bundle(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT bundle FROM proposals WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row {
            Some(r) => r.try_get::<Option<Vec<u8>>, _>(0).map_err(db),
            None => Ok(None),
        }
    }

    /// Proposals, newest first, without their diffs; only `sandbox`'s when given.
    pub async fn proposals(&self, sandbox: Option<&str>) -> Result<Vec<Proposal>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, sandbox, repo, kind, detail, '', CAST(LENGTH(bundle) AS BIGINT), created_at FROM proposals WHERE $1 = '' OR sandbox = $1 ORDER BY id DESC LIMIT 1000",
        )
        .bind(sandbox.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(proposal).collect()
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

const PROPOSAL_COLUMNS: &str =
    "id, sandbox, repo, kind, detail, diff, CAST(LENGTH(bundle) AS BIGINT), created_at";

fn proposal(r: &sqlx::any::AnyRow) -> Result<Proposal, StoreError> {
    let detail: String = r.try_get(4).map_err(db)?;
    Ok(Proposal {
        id: r.try_get(0).map_err(db)?,
        sandbox: r.try_get(1).map_err(db)?,
        repo: r.try_get(2).map_err(db)?,
        kind: r.try_get(3).map_err(db)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        diff: r.try_get(5).map_err(db)?,
        bundle_bytes: r.try_get::<Option<i64>, _>(6).map_err(db)?,
        created_at: r.try_get(7).map_err(db)?,
    })
}

impl Store {
    /// Holds a pull request for approval: the latest request of this sandbox for the same
    /// repository, head and base if there is one (pending, or decided: asking again gets the
    /// same answer), else a new pending one.
    pub async fn hold(&self, a: &Approval) -> Result<Approval, StoreError> {
        if let Some(existing) = self.latest(&a.sandbox, &a.repo, &a.head, &a.base).await?
            && existing.status != "closed"
        {
            return Ok(existing);
        }
        let pending: i64 =
            sqlx::query("SELECT COUNT(*) FROM approvals WHERE sandbox = $1 AND status = 'pending'")
                .bind(&a.sandbox)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?
                .try_get(0)
                .map_err(db)?;
        if pending >= MAX_PENDING {
            return Err(StoreError::Full(pending));
        }
        for _ in 0..3 {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let id = next_id(&mut tx, "approvals").await?;
            let inserted = sqlx::query(
                "INSERT INTO approvals (id, sandbox, repo, head, base, title, body, draft, status, reason, decided_by, pr_url, created_at, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', '', '', '', $9, NULL)",
            )
            .bind(id)
            .bind(&a.sandbox)
            .bind(&a.repo)
            .bind(&a.head)
            .bind(&a.base)
            .bind(&a.title)
            .bind(&a.body)
            .bind(i64::from(a.draft))
            .bind(now())
            .execute(&mut *tx)
            .await;
            // Another replica took the id: try the next.
            if inserted.is_err() {
                continue;
            }
            self.commit(tx, true).await?;
            return self
                .approval(id)
                .await?
                .ok_or_else(|| StoreError::Missing(format!("approval {id}")));
        }
        Err(StoreError::Db("cannot record the approval".into()))
    }

    async fn latest(
        &self,
        sandbox: &str,
        repo: &str,
        head: &str,
        base: &str,
    ) -> Result<Option<Approval>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE sandbox = $1 AND repo = $2 AND head = $3 AND base = $4 ORDER BY id DESC LIMIT 1"
        ))
        .bind(sandbox)
        .bind(repo)
        .bind(head)
        .bind(base)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(approval).transpose()
    }

    pub async fn approval(&self, id: i64) -> Result<Option<Approval>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(approval).transpose()
    }

    /// Approvals, newest first; only `status` ones when given.
    pub async fn approvals(&self, status: Option<&str>) -> Result<Vec<Approval>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE $1 = '' OR status = $1 ORDER BY id DESC"
        ))
        .bind(status.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(approval).collect()
    }

    /// Closes the pending approvals for `head` in `repo` with `reason` (GitHub deleted the
    /// branch, or someone opened the pull request meanwhile). Returns how many.
    pub async fn close_pending(
        &self,
        repo: &str,
        head: &str,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let n = sqlx::query(
            "UPDATE approvals SET status = 'closed', decided_by = 'GitHub', reason = $1, decided_at = $2 WHERE status = 'pending' AND LOWER(repo) = LOWER($3) AND head = $4",
        )
        .bind(reason)
        .bind(now())
        .bind(repo)
        .bind(head)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        self.commit(tx, n > 0).await?;
        Ok(n)
    }

    /// Decides a pending approval: `approved` (with the pull request's URL), `denied` or
    /// `closed` (with the reason). False when it was not pending.
    pub async fn decide(
        &self,
        id: i64,
        status: &str,
        by: &str,
        reason: &str,
        pr_url: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let n = sqlx::query(
            "UPDATE approvals SET status = $1, decided_by = $2, reason = $3, pr_url = $4, decided_at = $5 WHERE id = $6 AND status = 'pending'",
        )
        .bind(status)
        .bind(by)
        .bind(reason)
        .bind(pr_url)
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        self.commit(tx, n == 1).await?;
        Ok(n == 1)
    }
}

fn stored(row: &sqlx::any::AnyRow) -> Result<Stored, StoreError> {
    let spec: String = row.try_get(1).map_err(db)?;
    Ok(Stored {
        name: row.try_get(0).map_err(db)?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| StoreError::Db(format!("a stored spec: {e}")))?,
        created_at: row.try_get(2).map_err(db)?,
        disconnected_at: row.try_get(3).map_err(db)?,
    })
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

    #[tokio::test]
    async fn sandboxes_are_added_changed_and_disconnected() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("state/proxy.db").display());
        let s = Store::open(&url).await.unwrap();
        let g0 = s.generation().await.unwrap();
        let spec = serde_json::json!({"repos": ["o/r"], "secret": {"sha256": "00"}});
        s.add("a", &spec).await.unwrap();
        assert!(matches!(
            s.add("a", &spec).await,
            Err(StoreError::Exists(_))
        ));
        let mut changed = spec.clone();
        changed["repos"] = serde_json::json!(["o/other"]);
        s.set("a", &changed).await.unwrap();
        assert_eq!(s.get("a").await.unwrap().unwrap().spec, changed);
        s.disconnect("a").await.unwrap();
        assert!(s.get("a").await.unwrap().unwrap().disconnected_at.is_some());
        assert!(matches!(
            s.set("a", &spec).await,
            Err(StoreError::Missing(_))
        ));
        assert!(s.generation().await.unwrap() >= g0 + 3);
        // Added again after a disconnect; a reopened store keeps everything.
        s.add("a", &spec).await.unwrap();
        drop(s);
        let s = Store::open(&url).await.unwrap();
        let all = s.all().await.unwrap();
        assert_eq!((all.len(), all[0].disconnected_at), (1, None));
        let ping = serde_json::json!({"event": "ping"});
        assert!(s.first_delivery("d-1", "ping", &ping).await.unwrap());
        assert!(!s.first_delivery("d-1", "ping", &ping).await.unwrap());
        assert_eq!(
            s.deliveries_since(0).await.unwrap(),
            vec![("d-1".into(), ping)]
        );
        assert!(Store::open("mysql://x").await.is_err());
    }

    #[tokio::test]
    async fn proposals_are_recorded_and_bounded_per_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&format!("sqlite:{}", dir.path().join("s.db").display()))
            .await
            .unwrap();
        let p = |sandbox: &str, n: i64| Proposal {
            id: 0,
            sandbox: sandbox.into(),
            repo: "o/r".into(),
            kind: "push".into(),
            detail: serde_json::json!({ "n": n }),
            diff: format!("diff {n}"),
            bundle_bytes: None,
            created_at: 0,
        };
        let first = s.propose(&p("a", 0), Some(b"bundle")).await.unwrap();
        assert_eq!(first.bundle_bytes, Some(6));
        assert_eq!((first.id, first.diff.as_str()), (1, "diff 0"));
        s.propose(&p("b", 0), Some(b"b")).await.unwrap();
        for n in 1..=MAX_PROPOSALS {
            s.propose(&p("a", n), Some(b"bundle")).await.unwrap();
        }
        let a = s.proposals(Some("a")).await.unwrap();
        assert_eq!(a.len() as i64, MAX_PROPOSALS, "the oldest of a dropped");
        assert_eq!(a[0].detail["n"], MAX_PROPOSALS);
        assert!(a.iter().all(|p| p.diff.is_empty()), "lists carry no diff");
        let kept = a.iter().filter(|p| p.bundle_bytes.is_some()).count();
        assert_eq!(
            kept as i64, KEPT_BUNDLES,
            "only the newest keep their bundle"
        );
        assert_eq!(
            s.proposal_bundle(a[0].id).await.unwrap().as_deref(),
            Some(&b"bundle"[..])
        );
        assert_eq!(s.proposal_bundle(a[199].id).await.unwrap(), None);
        assert!(s.proposal(1).await.unwrap().is_none());
        assert_eq!(
            s.proposals(Some("b")).await.unwrap().len(),
            1,
            "b untouched"
        );
        let last = s.proposal(a[0].id).await.unwrap().unwrap();
        assert_eq!(last.diff, format!("diff {MAX_PROPOSALS}"));
    }

    #[tokio::test]
    async fn pull_requests_are_held_once_and_decided_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&format!("sqlite:{}", dir.path().join("s.db").display()))
            .await
            .unwrap();
        let ask = Approval::asked("a", "o/r", "agent/x", "main", "T", "B", false);
        let first = s.hold(&ask).await.unwrap();
        assert_eq!((first.id, first.status.as_str()), (1, "pending"));
        assert_eq!(s.hold(&ask).await.unwrap().id, 1, "asking again: the same");
        let other = s
            .hold(&Approval {
                head: "agent/y".into(),
                ..ask.clone()
            })
            .await
            .unwrap();
        assert_eq!(other.id, 2);
        assert!(s.decide(1, "denied", "admin", "too big", "").await.unwrap());
        assert!(
            !s.decide(1, "approved", "admin", "", "u").await.unwrap(),
            "decided once"
        );
        let again = s.hold(&ask).await.unwrap();
        assert_eq!(
            (again.id, again.status.as_str(), again.reason.as_str()),
            (1, "denied", "too big")
        );
        assert_eq!(s.approvals(Some("pending")).await.unwrap().len(), 1);
        assert_eq!(s.approvals(None).await.unwrap().len(), 2);
        // A sandbox cannot fill the store: past MAX_PENDING waiting, no more are held.
        for i in 1..MAX_PENDING {
            let head = format!("agent/{i}");
            s.hold(&Approval {
                head,
                ..ask.clone()
            })
            .await
            .unwrap();
        }
        let full = s
            .hold(&Approval {
                head: "agent/one-more".into(),
                ..ask.clone()
            })
            .await;
        assert!(
            matches!(full, Err(StoreError::Full(n)) if n == MAX_PENDING),
            "{full:?}"
        );
    }

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
