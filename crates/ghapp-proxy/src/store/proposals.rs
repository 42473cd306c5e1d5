//! What sandboxes in observe mode would have done: proposals, bounded per sandbox.

use sqlx::Row;

use super::{Store, StoreError, db, next_id, now};

/// The proposals kept per sandbox: recording one more drops its oldest.
pub(crate) const MAX_PROPOSALS: i64 = 200;
/// The proposals per sandbox whose bundle is kept (older ones keep their diff).
pub(crate) const KEPT_BUNDLES: i64 = 20;

/// What a sandbox in observe mode would have done, recorded instead (the fleet guide's observe mode).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

impl Store {
    /// Records a proposal (its id given here) with a push's `bundle`; past [`MAX_PROPOSALS`]
    /// for its sandbox the oldest are dropped, past [`KEPT_BUNDLES`] the oldest bundles.
    pub(crate) async fn propose(
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

    pub(crate) async fn proposal(&self, id: i64) -> Result<Option<Proposal>, StoreError> {
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
    pub(crate) async fn proposal_bundle(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
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
    pub(crate) async fn proposals(
        &self,
        sandbox: Option<&str>,
    ) -> Result<Vec<Proposal>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
