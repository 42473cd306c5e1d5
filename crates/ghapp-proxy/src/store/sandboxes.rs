//! Sandboxes added through the admin API, their disconnections, and the webhook deliveries
//! acted on.

use sqlx::Row;

use super::{Store, StoreError, db, now};

/// One stored sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub name: String,
    /// The `[[sandbox]]` keys as JSON, the secret as `{"sha256": HEX}`.
    pub spec: serde_json::Value,
    pub created_at: i64,
    pub disconnected_at: Option<i64>,
}

impl Store {
    /// Every stored sandbox, disconnected ones included.
    pub(crate) async fn all(&self) -> Result<Vec<Stored>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, spec, created_at, disconnected_at FROM sandboxes ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(stored).collect()
    }

    pub(crate) async fn get(&self, name: &str) -> Result<Option<Stored>, StoreError> {
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
    pub(crate) async fn add(&self, name: &str, spec: &serde_json::Value) -> Result<(), StoreError> {
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
    pub(crate) async fn set(&self, name: &str, spec: &serde_json::Value) -> Result<(), StoreError> {
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
    pub(crate) async fn disconnect(&self, name: &str) -> Result<(), StoreError> {
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
    pub(crate) async fn first_delivery(
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
    pub(crate) async fn deliveries_since(
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
}
