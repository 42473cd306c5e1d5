//! The budgets' use, shared by every replica: content-creating requests per sandbox per
//! minute and hour (`budget_use`), GraphQL points per sandbox per minute (`budget_points`).

use sqlx::Row;

use super::{Store, StoreError, db};

/// Which budget's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    /// Content-creating requests.
    Content,
    /// GraphQL points.
    Points,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Content => "budget_use",
            Table::Points => "budget_points",
        }
    }
}

impl Store {
    /// Adds `delta` (1, or -1 to give one back) to `sandbox`'s use in the window `win` of
    /// `span` seconds; returns every sandbox's use in that window. Windows two spans old are
    /// dropped on the way.
    pub(crate) async fn budget_add(
        &self,
        table: Table,
        sandbox: &str,
        span: i64,
        win: i64,
        delta: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let t = table.name();
        sqlx::query(&format!(
            "INSERT INTO {t} (sandbox, span, win, n) VALUES ($1, $2, $3, $4) ON CONFLICT (sandbox, span, win) DO UPDATE SET n = {t}.n + excluded.n"
        ))
        .bind(sandbox)
        .bind(span)
        .bind(win)
        .bind(delta)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if win % 16 == 0 {
            sqlx::query(&format!("DELETE FROM {t} WHERE span = $1 AND win < $2"))
                .bind(span)
                .bind(win - 2)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let rows = sqlx::query(&format!(
            "SELECT sandbox, n FROM {t} WHERE span = $1 AND win = $2"
        ))
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
        table: Table,
        sandbox: &str,
        span: i64,
        win: i64,
    ) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query(&format!(
            "SELECT n FROM {} WHERE sandbox = $1 AND span = $2 AND win = $3",
            table.name()
        ))
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
