//! Change records and the lessons-learned log (`change_records`, `lessons`).

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A change record (`CHG-<nnnn>`) of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    /// `CHG-<nnnn>`.
    pub id: String,
    /// The deployment.
    pub deployment: String,
    /// Created.
    pub created_at: Timestamp,
    /// By.
    pub created_by: String,
}

/// A lessons-learned entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonRow {
    /// Id.
    pub id: i64,
    /// The change record.
    pub change_id: String,
    /// The lesson.
    pub text: String,
    /// Who wrote it.
    pub author: String,
    /// When.
    pub at: Timestamp,
}

/// Change records and the lessons-learned log.
#[async_trait]
pub trait ChangeStore {
    /// The deployment's change record, created (with the next `CHG-<nnnn>`)
    /// when it has none; returns it and whether it was created.
    async fn ensure_change_record(
        &mut self,
        deployment: &str,
        at: Timestamp,
        by: &str,
    ) -> Result<(ChangeRow, bool)>;
    /// All change records, by id.
    async fn list_change_records(&mut self) -> Result<Vec<ChangeRow>>;
    /// Appends a lesson; returns its id.
    async fn add_lesson(
        &mut self,
        change_id: &str,
        text: &str,
        author: &str,
        at: Timestamp,
    ) -> Result<i64>;
    /// All lessons, oldest first.
    async fn list_lessons(&mut self) -> Result<Vec<LessonRow>>;
}

#[async_trait]
impl<DB: Engine> ChangeStore for SqlTx<DB> {
    async fn ensure_change_record(
        &mut self,
        deployment: &str,
        at: Timestamp,
        by: &str,
    ) -> Result<(ChangeRow, bool)> {
        let find = "SELECT id, deployment, created_at, created_by FROM change_records WHERE deployment = $1";
        let to_row = |r: &DB::Row| -> Result<ChangeRow> {
            Ok(ChangeRow {
                id: r.col("id")?,
                deployment: r.col("deployment")?,
                created_at: from_millis(r.col("created_at")?)?,
                created_by: r.col("created_by")?,
            })
        };
        if let Some(r) = sqlx::query::<DB>(find)
            .arg(deployment)
            .opt(self.conn())
            .await?
        {
            return Ok((to_row(&r)?, false));
        }
        let n: i64 = sqlx::query::<DB>("SELECT COUNT(*) AS n FROM change_records")
            .one(self.conn())
            .await?
            .col("n")?;
        // Another writer may take a number first: try the next ones.
        for k in 1..=20 {
            let id = format!("CHG-{:04}", n + k);
            let r = sqlx::query::<DB>(
                "INSERT INTO change_records (id, deployment, created_at, created_by) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .arg(&id)
            .arg(deployment)
            .arg(to_millis(at))
            .arg(by)
            .exec(self.conn())
            .await?;
            if let Some(found) = sqlx::query::<DB>(find)
                .arg(deployment)
                .opt(self.conn())
                .await?
            {
                return Ok((to_row(&found)?, r.rows_affected() == 1));
            }
        }
        Err(StoreError::Conflict(
            "could not number the change record; retry".into(),
        ))
    }

    async fn list_change_records(&mut self) -> Result<Vec<ChangeRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, deployment, created_at, created_by FROM change_records ORDER BY id",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ChangeRow {
                    id: r.col("id")?,
                    deployment: r.col("deployment")?,
                    created_at: from_millis(r.col("created_at")?)?,
                    created_by: r.col("created_by")?,
                })
            })
            .collect()
    }

    async fn add_lesson(
        &mut self,
        change_id: &str,
        text: &str,
        author: &str,
        at: Timestamp,
    ) -> Result<i64> {
        let r = sqlx::query::<DB>("INSERT INTO lessons (change_id, text, author, at) VALUES ($1, $2, $3, $4) RETURNING id")
            .arg(change_id)
            .arg(text)
            .arg(author)
            .arg(to_millis(at))
            .one(self.conn())
            .await?;
        r.col("id")
    }

    async fn list_lessons(&mut self) -> Result<Vec<LessonRow>> {
        let rows =
            sqlx::query::<DB>("SELECT id, change_id, text, author, at FROM lessons ORDER BY id")
                .all(self.conn())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(LessonRow {
                    id: r.col("id")?,
                    change_id: r.col("change_id")?,
                    text: r.col("text")?,
                    author: r.col("author")?,
                    at: from_millis(r.col("at")?)?,
                })
            })
            .collect()
    }
}
