//! SQLite: the embedded mode's metadata store.
//!
//! SQLite allows one writer, so every write goes through a pool of exactly
//! one connection and opens its transaction with `BEGIN IMMEDIATE`: writers
//! queue in the pool instead of failing with a busy snapshot. Reads use a
//! separate pool; WAL lets them run beside the writer. `synchronous=FULL`
//! makes a returned COMMIT durable. Ids are stored as text; a set of rows
//! is bound as one JSON array (see `sql`).

mod sql;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Transaction};
use uuid::Uuid;

use super::sql::{Arg, ColType, Dialect, On, SqlRow, SqlStore, try_get_columns};
use super::{Metadata, MetadataError};
use crate::metrics::Metrics;

/// The SQLite dialect: a writer pool of one connection and a reader pool.
#[derive(Debug)]
pub(crate) struct Sqlite {
    writer: SqlitePool,
    reader: SqlitePool,
}

fn unavailable(e: impl std::fmt::Display) -> MetadataError {
    MetadataError::Unavailable(e.to_string().into())
}

/// Opens (creating) the database at `path` and applies migrations.
pub async fn open(path: &Path, metrics: Arc<Metrics>) -> Result<Metadata, MetadataError> {
    open_with(SqliteConnectOptions::new().filename(path), metrics).await
}

/// Opens a database from a `sqlite:` URL and applies migrations.
pub async fn open_url(url: &str, metrics: Arc<Metrics>) -> Result<Metadata, MetadataError> {
    open_with(
        SqliteConnectOptions::from_str(url).map_err(unavailable)?,
        metrics,
    )
    .await
}

async fn open_with(
    opts: SqliteConnectOptions,
    metrics: Arc<Metrics>,
) -> Result<Metadata, MetadataError> {
    let opts = opts
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(false);
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts.clone())
        .await
        .map_err(unavailable)?;
    sqlx::migrate!("migrations/sqlite")
        .run(&writer)
        .await
        .map_err(|e| unavailable(format!("migration failed: {e}")))?;
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts.read_only(true))
        .await
        .map_err(unavailable)?;
    Ok(SqlStore::new(Sqlite { writer, reader }, metrics).into_metadata())
}

type SqliteQuery<'q> = Query<'q, sqlx::Sqlite, SqliteArguments<'q>>;

fn bind<'q>(mut q: SqliteQuery<'q>, args: &[Arg<'q>]) -> SqliteQuery<'q> {
    for arg in args {
        q = match *arg {
            Arg::BigInt(v) => q.bind(v),
            Arg::OptBigInt(v) => q.bind(v),
            Arg::OptText(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Uuid(v) => q.bind(v.to_string()),
            Arg::Rows(r) => q.bind(r.to_json_rows()),
        };
    }
    q
}

#[async_trait]
impl Dialect for Sqlite {
    type Row = SqliteRow;
    type Tx = Transaction<'static, sqlx::Sqlite>;
    type Conn = sqlx::pool::PoolConnection<sqlx::Sqlite>;

    const NOW_MS: &'static str = sql::NOW_MS;
    // `BEGIN IMMEDIATE` holds the database's one write lock.
    const LOCK_ROWS: &'static str = "";
    const SKIP_LOCKED: &'static str = "";

    fn rows_from(first: usize, alias: &str, cols: &[(&str, ColType)]) -> String {
        sql::rows_from(first, alias, cols)
    }

    fn lock_partitions(_keys: &str) -> Option<String> {
        // `BEGIN IMMEDIATE` took the database's one write lock already.
        None
    }

    fn advance(chunks: &str) -> Vec<String> {
        sql::advance(chunks)
    }

    async fn begin(&self) -> Result<Self::Tx, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    async fn acquire(&self) -> Result<Self::Conn, sqlx::Error> {
        self.writer.acquire().await
    }

    async fn fetch_on(
        &self,
        conn: &mut Self::Conn,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        bind(sqlx::query(sql), args).fetch_all(&mut **conn).await
    }

    async fn commit(&self, tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn fetch(
        &self,
        on: On<'_, Self::Tx>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        let q = bind(sqlx::query(sql), args);
        match on {
            On::Read => q.fetch_all(&self.reader).await,
            On::Write => q.fetch_all(&self.writer).await,
            On::Tx(tx) => q.fetch_all(&mut **tx).await,
        }
    }

    async fn execute(
        &self,
        on: On<'_, Self::Tx>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error> {
        let q = bind(sqlx::query(sql), args);
        let done = match on {
            On::Read => q.execute(&self.reader).await?,
            On::Write => q.execute(&self.writer).await?,
            On::Tx(tx) => q.execute(&mut **tx).await?,
        };
        Ok(done.rows_affected())
    }
}

impl SqlRow for SqliteRow {
    try_get_columns!();

    fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error> {
        let text: String = self.try_get(col)?;
        Uuid::parse_str(&text).map_err(|e| sqlx::Error::ColumnDecode {
            index: col.to_string(),
            source: Box::new(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::TempSqlite;

    crate::metadata_conformance!(TempSqlite::open);
}
