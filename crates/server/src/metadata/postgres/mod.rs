//! PostgreSQL (and CockroachDB): the cluster's metadata store.
//!
//! One pool serves every agent task; statements time out after 15 s. Ids
//! are native UUIDs; a set of rows is bound as one array per column (see
//! `sql`). The SQL stays within what CockroachDB also accepts: no temp
//! tables, no PL/pgSQL, no advisory locks in the commit path. On real
//! PostgreSQL (not CockroachDB) agents also push watermarks to each other
//! with NOTIFY after commits (`feed`). CockroachDB runs every transaction
//! SERIALIZABLE; the skeleton retries its serialization failures.

mod feed;
mod pool;
mod sql;

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{Row, Transaction};
use uuid::Uuid;

use super::sql::{Arg, ColType, Column, Dialect, On, SqlRow, SqlStore, try_get_columns};
use super::{Metadata, MetadataError};
use crate::metrics::Metrics;

/// The PostgreSQL dialect: one connection pool.
#[derive(Debug)]
pub(crate) struct Postgres {
    pool: PgPool,
    /// Lost connections seen, which decide the checks on acquire (`pool`).
    losses: Arc<pool::Losses>,
}

fn unavailable(e: impl std::fmt::Display) -> MetadataError {
    MetadataError::Unavailable(e.to_string().into())
}

/// Connects to `url`, applying migrations unless `migrate` is false.
pub async fn connect(
    url: &str,
    migrate: bool,
    metrics: Arc<Metrics>,
) -> Result<Metadata, MetadataError> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(unavailable)?
        .options([("statement_timeout", "15000")]);
    let losses = pool::Losses::new();
    let pool = pool::open(opts, losses.clone())
        .await
        .map_err(unavailable)?;
    if migrate {
        run_migrations(&pool).await?;
    }
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&pool)
        .await
        .map_err(unavailable)?;
    // CockroachDB has no LISTEN/NOTIFY: there the poll is the only path.
    let feed = (!version.contains("CockroachDB")).then(|| {
        Arc::new(feed::PgFeed {
            pool: pool.clone(),
            losses: losses.clone(),
            metrics: metrics.clone(),
        }) as Arc<dyn super::WatermarkFeed>
    });
    let mut metadata = SqlStore::new(Postgres { pool, losses }, metrics).into_metadata();
    metadata.feed = feed;
    Ok(metadata)
}

/// Applies migrations. On PostgreSQL concurrent agents serialize on an
/// advisory lock; CockroachDB has none, so there `streamhouse migrate` must
/// run once before agents start.
async fn run_migrations(pool: &PgPool) -> Result<(), MetadataError> {
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    let mut migrator = sqlx::migrate!("migrations/postgres");
    if version.contains("CockroachDB") {
        migrator.set_locking(false);
    }
    migrator
        .run(pool)
        .await
        .map_err(|e| unavailable(format!("migration failed: {e}")))
}

type PgQuery<'q> = Query<'q, sqlx::Postgres, PgArguments>;

fn bind<'q>(mut q: PgQuery<'q>, args: &[Arg<'q>]) -> PgQuery<'q> {
    for arg in args {
        q = match *arg {
            Arg::BigInt(v) => q.bind(v),
            Arg::OptBigInt(v) => q.bind(v),
            Arg::OptText(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Uuid(v) => q.bind(v),
            Arg::Rows(r) => {
                for column in &r.columns {
                    q = match column {
                        Column::Uuid(v) => q.bind(v.as_slice()),
                        Column::Int(v) => q.bind(v.as_slice()),
                        Column::BigInt(v) => q.bind(v.as_slice()),
                        Column::Text(v) => q.bind(v.as_slice()),
                        Column::OptText(v) => q.bind(v.as_slice()),
                    };
                }
                q
            }
        };
    }
    q
}

#[async_trait]
impl Dialect for Postgres {
    type Row = PgRow;
    type Tx = Transaction<'static, sqlx::Postgres>;
    type Conn = sqlx::pool::PoolConnection<sqlx::Postgres>;

    const NOW_MS: &'static str = sql::NOW_MS;
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    fn rows_from(first: usize, alias: &str, cols: &[(&str, ColType)]) -> String {
        sql::rows_from(first, alias, cols)
    }

    fn lock_partitions(keys: &str) -> Option<String> {
        Some(sql::lock_partitions(keys))
    }

    fn advance(chunks: &str) -> Vec<String> {
        vec![sql::advance(chunks)]
    }

    fn commit_in_one(insert_object: &str, chunks: &str) -> Option<String> {
        Some(sql::commit_in_one(insert_object, chunks, sql::NOW_MS))
    }

    async fn begin(&self) -> Result<Self::Tx, sqlx::Error> {
        self.losses.note(self.pool.begin().await)
    }

    async fn acquire(&self) -> Result<Self::Conn, sqlx::Error> {
        self.losses.note(self.pool.acquire().await)
    }

    async fn fetch_on(
        &self,
        conn: &mut Self::Conn,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        self.losses
            .note(bind(sqlx::query(sql), args).fetch_all(&mut **conn).await)
    }

    async fn commit(&self, tx: Self::Tx) -> Result<(), sqlx::Error> {
        self.losses.note(tx.commit().await)
    }

    async fn fetch(
        &self,
        on: On<'_, Self::Tx>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let q = bind(sqlx::query(sql), args);
        self.losses.note(match on {
            On::Read | On::Write => q.fetch_all(&self.pool).await,
            On::Tx(tx) => q.fetch_all(&mut **tx).await,
        })
    }

    async fn execute(
        &self,
        on: On<'_, Self::Tx>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error> {
        let q = bind(sqlx::query(sql), args);
        let done = self.losses.note(match on {
            On::Read | On::Write => q.execute(&self.pool).await,
            On::Tx(tx) => q.execute(&mut **tx).await,
        })?;
        Ok(done.rows_affected())
    }
}

impl SqlRow for PgRow {
    try_get_columns!();

    fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error> {
        self.try_get(col)
    }
}
