//! Pull requests held for a human (learning and assisted modes), and their decisions.

use sqlx::Row;

use super::{Store, StoreError, db, next_id, now};

/// The most pull requests one sandbox may have waiting for approval.
pub(crate) const MAX_PENDING: i64 = 100;

/// A pull request held for a human (learning mode).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Approval {
    pub id: i64,
    pub sandbox: String,
    pub repo: String,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    /// The head and base commits the person was shown (the pull request opens only while its
    /// head is still at `head_sha`).
    pub head_sha: String,
    pub base_sha: String,
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
    #[expect(clippy::too_many_arguments, reason = "one pull request's fields, once")]
    pub fn asked(
        sandbox: &str,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
        draft: bool,
        (head_sha, base_sha): (&str, &str),
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
            head_sha: head_sha.into(),
            base_sha: base_sha.into(),
            status: String::new(),
            reason: String::new(),
            decided_by: String::new(),
            pr_url: String::new(),
            created_at: 0,
            decided_at: None,
        }
    }
}

const APPROVAL_COLUMNS: &str = "id, sandbox, repo, head, base, title, body, draft, status, reason, decided_by, pr_url, created_at, decided_at, head_sha, base_sha";

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
        head_sha: r.try_get(14).map_err(db)?,
        base_sha: r.try_get(15).map_err(db)?,
    })
}

impl Store {
    /// Holds a pull request for approval: the latest request of this sandbox for the same
    /// repository, head and base if there is one for the same head commit (pending, or
    /// decided: asking again gets the same answer), else a new pending one. New commits are a
    /// new request, and so, after a denial, is a new title or body: a denial is of what the
    /// person was shown. With it, whether it is new.
    pub(crate) async fn hold(&self, a: &Approval) -> Result<(Approval, bool), StoreError> {
        if let Some(existing) = self.latest(&a.sandbox, &a.repo, &a.head, &a.base).await?
            && existing.status != "closed"
            && existing.head_sha == a.head_sha
            && !(existing.status == "denied"
                && (existing.title != a.title || existing.body != a.body))
        {
            return Ok((existing, false));
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
                "INSERT INTO approvals (id, sandbox, repo, head, base, title, body, draft, status, reason, decided_by, pr_url, created_at, decided_at, head_sha, base_sha) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', '', '', '', $9, NULL, $10, $11)",
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
            .bind(&a.head_sha)
            .bind(&a.base_sha)
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
                .map(|a| (a, true))
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

    pub(crate) async fn approval(&self, id: i64) -> Result<Option<Approval>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(approval).transpose()
    }

    /// The pending approval whose head is branch `head` of `repo`, if there is one.
    pub(crate) async fn pending_for_head(
        &self,
        repo: &str,
        head: &str,
    ) -> Result<Option<Approval>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE status = 'pending' AND LOWER(repo) = LOWER($1) AND head = $2 ORDER BY id DESC LIMIT 1"
        ))
        .bind(repo)
        .bind(head)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(approval).transpose()
    }

    /// Approvals, newest first; only `status` ones when given.
    pub(crate) async fn approvals(
        &self,
        status: Option<&str>,
    ) -> Result<Vec<Approval>, StoreError> {
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
    pub(crate) async fn close_pending(
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
    pub(crate) async fn decide(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pull_requests_are_held_once_and_decided_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&format!("sqlite:{}", dir.path().join("s.db").display()))
            .await
            .unwrap();
        let ask = Approval::asked("a", "o/r", "agent/x", "main", "T", "B", false, ("c1", "b1"));
        let (first, new) = s.hold(&ask).await.unwrap();
        assert_eq!((first.id, first.status.as_str(), new), (1, "pending", true));
        let (again, new) = s.hold(&ask).await.unwrap();
        assert_eq!((again.id, new), (1, false), "asking again: the same");
        let (other, _) = s
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
        let (again, _) = s.hold(&ask).await.unwrap();
        assert_eq!(
            (again.id, again.status.as_str(), again.reason.as_str()),
            (1, "denied", "too big")
        );
        assert_eq!(s.approvals(Some("pending")).await.unwrap().len(), 1);
        // New commits on the head are a new request; the pending one is found by its head.
        let (newer, _) = s
            .hold(&Approval {
                head_sha: "c2".into(),
                ..ask.clone()
            })
            .await
            .unwrap();
        assert_eq!((newer.id, newer.status.as_str()), (3, "pending"));
        let held = s.pending_for_head("O/R", "agent/x").await.unwrap().unwrap();
        assert_eq!((held.id, held.head_sha.as_str()), (3, "c2"));
        assert!(
            s.pending_for_head("o/r", "agent/z")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(s.approvals(None).await.unwrap().len(), 3);
        // A sandbox cannot fill the store: past MAX_PENDING waiting, no more are held.
        for i in 2..MAX_PENDING {
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
}
