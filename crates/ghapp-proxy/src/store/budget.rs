//! The budgets' use, shared by every replica: content-creating requests per sandbox per
//! minute and hour.

use sqlx::Row;

use super::{Store, StoreError, db};

impl Store {
    /// Adds `delta` (1, or -1 to give one back) to `sandbox`'s use in the window `win` of
    /// `span` seconds; returns every sandbox's use in that window. Windows two spans old are
    /// dropped on the way.
    pub(crate) async fn budget_add(
        &self,
        sandbox: &str,
        span: i64,
        win: i64,
        delta: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO budget_use (sandbox, span, win, n) VALUES ($1, $2, $3, $4) ON CONFLICT (sandbox, span, win) DO UPDATE SET n = budget_use.n + excluded.n",
        )
        .bind(sandbox)
        .bind(span)
        .bind(win)
        .bind(delta)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if win % 16 == 0 {
            sqlx::query("DELETE FROM budget_use WHERE span = $1 AND win < $2")
                .bind(span)
                .bind(win - 2)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let rows = sqlx::query("SELECT sandbox, n FROM budget_use WHERE span = $1 AND win = $2")
            .bind(span)
            .bind(win)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?)))
            .collect()
    }

    /// `sandbox`'s use in the window `win` of `span` seconds (read only).
    pub(crate) async fn budget_used(
        &self,
        sandbox: &str,
        span: i64,
        win: i64,
    ) -> Result<i64, StoreError> {
        let n: Option<i64> =
            sqlx::query("SELECT n FROM budget_use WHERE sandbox = $1 AND span = $2 AND win = $3")
                .bind(sandbox)
                .bind(span)
                .bind(win)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(db)?;
        Ok(n.unwrap_or(0).max(0))
    }
}
