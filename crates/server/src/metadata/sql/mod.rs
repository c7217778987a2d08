//! The SQL skeleton both metadata backends share: every statement
//! (`statements`), the control flow of every call (transactions, retries,
//! the flush commit), and the mapping of rows to types (`rows`).
//!
//! A backend is a [`Dialect`]: how it connects, binds values and reads
//! columns, and the few pieces of SQL it spells its own way (a set of rows
//! as a table, its clock, and the flush commit's lock and update). Errors
//! are classified in one place: serialization failures and deadlocks
//! (40001, 40P01) are retried with jittered backoff, unique violations
//! become `AlreadyExists`, and an error while COMMIT is in flight is
//! ambiguous, so the caller re-runs the keyed commit.

mod commit;
mod groups;
mod keys;
mod lifecycle;
mod log;
mod membership;
mod revocations;
mod rows;
mod statements;
mod subscriptions;
mod sweep;
mod topics;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Metadata, MetadataError};
use crate::metrics::Metrics;
use statements::Statements;

pub(crate) use statements::ColType;

/// Transaction attempts before a serialization failure is given up on.
const MAX_ATTEMPTS: u32 = 30;

/// One column of a [`RowSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Column {
    Uuid(Vec<Uuid>),
    Int(Vec<i32>),
    BigInt(Vec<i64>),
    Text(Vec<String>),
    OptText(Vec<Option<String>>),
}

/// A set of rows bound to one statement, given column by column: one
/// array parameter per column on PostgreSQL, one JSON parameter on SQLite.
/// This is how a call stays one statement whatever the number of rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RowSet {
    pub(crate) columns: Vec<Column>,
}

impl RowSet {
    /// Rows in the set.
    pub(crate) fn len(&self) -> usize {
        match self.columns.first() {
            Some(Column::Uuid(v)) => v.len(),
            Some(Column::Int(v)) => v.len(),
            Some(Column::BigInt(v)) => v.len(),
            Some(Column::Text(v)) => v.len(),
            Some(Column::OptText(v)) => v.len(),
            None => 0,
        }
    }

    /// The rows as one JSON array of arrays, row by row.
    pub(crate) fn to_json_rows(&self) -> String {
        let rows: Vec<serde_json::Value> = (0..self.len())
            .map(|i| {
                self.columns
                    .iter()
                    .map(|c| match c {
                        Column::Uuid(v) => serde_json::Value::from(v[i].to_string()),
                        Column::Int(v) => v[i].into(),
                        Column::BigInt(v) => v[i].into(),
                        Column::Text(v) => v[i].as_str().into(),
                        Column::OptText(v) => v[i].as_deref().into(),
                    })
                    .collect()
            })
            .collect();
        serde_json::Value::Array(rows).to_string()
    }
}

/// A value bound to a statement parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    BigInt(i64),
    OptBigInt(Option<i64>),
    Int(i32),
    Text(&'a str),
    OptText(Option<&'a str>),
    Uuid(Uuid),
    /// A row set; always the last parameters of a statement.
    Rows(&'a RowSet),
}

/// Where a statement runs: outside a transaction (reading, or writing
/// alone), or inside one.
#[derive(Debug)]
pub(crate) enum On<'a, T> {
    Read,
    Write,
    Tx(&'a mut T),
}

/// Columns of a result row, by name.
pub(crate) trait SqlRow: Send + Sync {
    fn big(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_big(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i32, sqlx::Error>;
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error>;
}

/// The [`SqlRow`] getters a sqlx row type answers with `try_get` as they
/// are (all but `uuid`, whose storage differs by backend).
macro_rules! try_get_columns {
    () => {
        fn big(&self, col: &str) -> Result<i64, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
        fn opt_big(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
        fn int(&self, col: &str) -> Result<i32, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
        fn text(&self, col: &str) -> Result<String, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
        fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
    };
}
pub(crate) use try_get_columns;

/// What a backend brings to the skeleton. See the module header.
#[async_trait]
pub(crate) trait Dialect: Send + Sync + Debug + 'static {
    type Row: SqlRow;
    type Tx: Send;
    /// A connection taken from the pool for one statement.
    type Conn: Send;

    /// An SQL expression for the store's clock: milliseconds since the epoch.
    const NOW_MS: &'static str;

    /// What a SELECT ends with to lock the rows it returns until the
    /// transaction ends (empty where the transaction holds the store's one
    /// write lock already).
    const LOCK_ROWS: &'static str;

    /// What a SELECT ends with to lock its rows and pass over rows another
    /// transaction holds (job claims).
    const SKIP_LOCKED: &'static str;

    /// A FROM item named `alias` over a bound row set whose columns are
    /// `cols`, taking parameters from `$first`.
    fn rows_from(first: usize, alias: &str, cols: &[(&str, ColType)]) -> String;

    /// A statement that locks the partition rows named by `keys` (a FROM
    /// item with columns `t`, `n`) in a fixed order, when the store needs
    /// one to keep concurrent commits from deadlocking.
    fn lock_partitions(keys: &str) -> Option<String>;

    /// The statements that advance each chunk's partition by its record
    /// count and insert its index row for object `$1`, `chunks` being a FROM
    /// item over the chunk rows (`statements::CHUNK_COLS`). The last one
    /// returns `topic_id, partition, base_offset, max_timestamp` of every
    /// row it indexed.
    fn advance(chunks: &str) -> Vec<String>;

    /// The flush commit without idempotency keys as one statement, where
    /// the store can: `insert_object` (taking `$1..$7`) and the chunk rows
    /// (from `$8`); see `postgres::sql::commit_in_one` for what it returns.
    fn commit_in_one(_insert_object: &str, _chunks: &str) -> Option<String> {
        None
    }

    async fn begin(&self) -> Result<Self::Tx, sqlx::Error>;
    /// A writing connection, for a statement that is its own transaction.
    async fn acquire(&self) -> Result<Self::Conn, sqlx::Error>;
    /// Runs one statement on `conn`.
    async fn fetch_on(
        &self,
        conn: &mut Self::Conn,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Self::Row>, sqlx::Error>;
    async fn commit(&self, tx: Self::Tx) -> Result<(), sqlx::Error>;
    async fn fetch(
        &self,
        on: On<'_, Self::Tx>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Self::Row>, sqlx::Error>;
    async fn execute(
        &self,
        on: On<'_, Self::Tx>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error>;
}

/// How one attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Serialization failure or deadlock: run the transaction again.
    Retry(String),
    /// Certainly not applied.
    Definite(MetadataError),
    /// COMMIT was sent and no answer came back.
    Ambiguous(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        classify(e, false)
    }
}

impl From<MetadataError> for Failure {
    fn from(e: MetadataError) -> Self {
        Failure::Definite(e)
    }
}

/// The one place store errors get their meaning.
fn classify(e: sqlx::Error, at_commit: bool) -> Failure {
    if let sqlx::Error::Database(db) = &e {
        // CockroachDB: "result is ambiguous" (the commit may have applied).
        if at_commit && db.code().as_deref() == Some("40003") {
            return Failure::Ambiguous(db.message().to_string());
        }
        if matches!(db.code().as_deref(), Some("40001" | "40P01")) {
            return Failure::Retry(db.message().to_string());
        }
        if db.is_unique_violation() {
            return Failure::Definite(MetadataError::AlreadyExists(db.message().to_string()));
        }
        return Failure::Definite(MetadataError::Unavailable(e.to_string().into()));
    }
    if at_commit {
        Failure::Ambiguous(e.to_string())
    } else {
        Failure::Definite(MetadataError::Unavailable(e.to_string().into()))
    }
}

impl From<Failure> for MetadataError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Definite(m) => m,
            Failure::Retry(m) => MetadataError::Unavailable(m.into()),
            Failure::Ambiguous(m) => MetadataError::Ambiguous(m.into()),
        }
    }
}

tokio::task_local! {
    static COMMIT_STATEMENTS: std::cell::Cell<u64>;
}

/// A metadata store speaking SQL through a [`Dialect`].
#[derive(Debug)]
pub(crate) struct SqlStore<D> {
    db: D,
    sql: Statements,
    life: lifecycle::LifecycleSql,
    sweep: sweep::SweepSql,
    metrics: Arc<Metrics>,
}

impl<D: Dialect> SqlStore<D> {
    pub(crate) fn new(db: D, metrics: Arc<Metrics>) -> Self {
        SqlStore {
            sql: Statements::new::<D>(),
            life: lifecycle::LifecycleSql::new::<D>(),
            sweep: sweep::SweepSql::new::<D>(),
            db,
            metrics,
        }
    }

    /// Every concern of this store, as shared trait objects.
    pub(crate) fn into_metadata(self) -> Metadata {
        Metadata::of(Arc::new(self))
    }

    /// Counts `n` statements (round trips) sent to the store, and
    /// attributes them to the flush commit running on this task, if any.
    fn count(&self, n: u64) {
        self.metrics.metadata_statements.inc_by(n);
        let _ = COMMIT_STATEMENTS.try_with(|c| c.set(c.get() + n));
    }

    async fn fetch(
        &self,
        on: On<'_, D::Tx>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<D::Row>, Failure> {
        self.count(1);
        Ok(self.db.fetch(on, sql, args).await?)
    }

    async fn fetch_optional(
        &self,
        on: On<'_, D::Tx>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<D::Row>, Failure> {
        Ok(self.fetch(on, sql, args).await?.into_iter().next())
    }

    async fn execute(
        &self,
        on: On<'_, D::Tx>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<u64, Failure> {
        self.count(1);
        Ok(self.db.execute(on, sql, args).await?)
    }

    async fn begin(&self) -> Result<D::Tx, Failure> {
        self.count(1);
        Ok(self.db.begin().await?)
    }

    async fn commit(&self, tx: D::Tx) -> Result<(), Failure> {
        self.count(1);
        self.db.commit(tx).await.map_err(|e| classify(e, true))
    }

    /// Runs a read: not retried, failures reported as they are.
    async fn read<T>(
        &self,
        body: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, MetadataError> {
        body.await.map_err(|f| {
            self.metrics.metadata_errors.inc();
            f.into()
        })
    }

    /// Runs `attempt` until it succeeds or fails for a reason other than a
    /// serialization conflict, backing off with jitter between tries.
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, MetadataError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut backoff = Duration::from_millis(2);
        for n in 1..=MAX_ATTEMPTS {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(Failure::Retry(m)) => {
                    self.metrics.metadata_retries.inc();
                    if n == MAX_ATTEMPTS {
                        return Err(MetadataError::Unavailable(
                            format!("gave up after {MAX_ATTEMPTS} serialization conflicts: {m}")
                                .into(),
                        ));
                    }
                    let jitter = rand::random::<u64>() % (backoff.as_micros() as u64 + 1);
                    tokio::time::sleep(backoff / 2 + Duration::from_micros(jitter)).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Err(other) => {
                    if !matches!(other, Failure::Definite(MetadataError::KeysExist(_))) {
                        self.metrics.metadata_errors.inc();
                    }
                    return Err(other.into());
                }
            }
        }
        Err(MetadataError::Unavailable("retries exhausted".into()))
    }

    /// Runs one `commit_flush`, adding the statements it sent (retries
    /// included) to `streamhouse_metadata_commit_statements_total`.
    async fn counting_commit<T>(&self, body: impl Future<Output = T>) -> T {
        let (out, n) = COMMIT_STATEMENTS
            .scope(std::cell::Cell::new(0), async {
                let out = body.await;
                (out, COMMIT_STATEMENTS.with(std::cell::Cell::get))
            })
            .await;
        self.metrics.commit_statements.inc_by(n);
        out
    }
}
