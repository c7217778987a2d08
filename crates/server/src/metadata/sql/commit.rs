//! The flush commit: one transaction and a constant number of round trips
//! whatever the number of partitions in it. On PostgreSQL a commit without
//! idempotency keys is one statement (one round trip); otherwise, and on
//! SQLite, it is five (seven with idempotency keys), as follows.
//!
//! Insert the object row keyed on its id, refused when the object is older
//! than the commit allows by the store's clock. If the row exists already
//! the commit happened before: read its offsets back instead of writing
//! twice. Otherwise record the idempotency keys (abandoning the whole
//! commit when one is live already), lock the touched partition rows in a
//! fixed order where the store needs it, advance their offsets and insert
//! the index rows, and record each key's answer. An object none of whose
//! chunks landed (every topic in it was deleted meanwhile) is handed to the
//! collector at once.

use std::collections::{HashMap, HashSet};

use super::{Arg, Column, Dialect, Failure, On, RowSet, SqlRow, SqlStore};
use crate::metadata::keys::{Bases, outcomes_from};
use crate::metadata::{ChunkOutcome, FlushCommit, MetadataError, RecordedKey, key_response};
use crate::model::{object_key, uuid_v7_ms};

/// A wait for partition locks after which the object's age is checked
/// again before committing.
const LONG_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The row sets of one commit, built once for every attempt.
struct CommitRows {
    /// One row per chunk, in (topic, partition) order: the order partition
    /// rows are locked and updated in, so concurrent commits cannot deadlock.
    chunks: RowSet,
    /// The chunks' partitions, in the same order.
    partitions: RowSet,
    /// The keys to record.
    keys: RowSet,
    /// The keys by name.
    key_names: RowSet,
}

impl CommitRows {
    fn of(commit: &FlushCommit) -> Self {
        let mut chunks = commit.chunks.clone();
        chunks.sort_by_key(|c| (c.topic_id, c.partition));
        let topics = Column::Uuid(chunks.iter().map(|c| c.topic_id).collect());
        let numbers = Column::Int(chunks.iter().map(|c| c.partition).collect());
        let key_names = vec![
            Column::Text(commit.keys.iter().map(|k| k.tenant.clone()).collect()),
            Column::Uuid(commit.keys.iter().map(|k| k.topic_id).collect()),
            Column::Text(commit.keys.iter().map(|k| k.key.clone()).collect()),
        ];
        let mut keys = key_names.clone();
        keys.extend([
            Column::Text(commit.keys.iter().map(|k| k.fingerprint.clone()).collect()),
            Column::BigInt(commit.keys.iter().map(|k| k.created_at_ms).collect()),
            Column::BigInt(commit.keys.iter().map(|k| k.expires_at_ms).collect()),
        ]);
        CommitRows {
            partitions: RowSet {
                columns: vec![topics.clone(), numbers.clone()],
            },
            chunks: RowSet {
                columns: vec![
                    topics,
                    numbers,
                    Column::BigInt(chunks.iter().map(|c| i64::from(c.record_count)).collect()),
                    Column::BigInt(chunks.iter().map(|c| c.max_timestamp).collect()),
                    Column::BigInt(chunks.iter().map(|c| c.byte_offset as i64).collect()),
                    Column::BigInt(chunks.iter().map(|c| i64::from(c.byte_len)).collect()),
                ],
            },
            keys: RowSet { columns: keys },
            key_names: RowSet { columns: key_names },
        }
    }
}

/// Base offsets and running timestamp maxima by partition, from index rows
/// (`topic_id, partition, base_offset, max_timestamp`).
fn bases_of(rows: &[impl SqlRow]) -> Result<Bases, sqlx::Error> {
    let mut bases = HashMap::with_capacity(rows.len());
    for r in rows {
        bases.insert(
            (r.uuid("topic_id")?, r.int("partition")?),
            (r.big("base_offset")?, r.big("max_timestamp")?),
        );
    }
    Ok(bases)
}

impl<D: Dialect> SqlStore<D> {
    /// See the module header.
    pub(super) async fn commit_flush(
        &self,
        commit: &FlushCommit,
    ) -> Result<Vec<ChunkOutcome>, MetadataError> {
        let rows = CommitRows::of(commit);
        self.counting_commit(self.retrying(|| self.commit_once(commit, &rows)))
            .await
    }

    async fn commit_once(
        &self,
        commit: &FlushCommit,
        rows: &CommitRows,
    ) -> Result<Vec<ChunkOutcome>, Failure> {
        let key = object_key(commit.object_id);
        let object = [
            Arg::Uuid(commit.object_id),
            Arg::Text(&key),
            Arg::BigInt(commit.object_size as i64),
            Arg::Text(&commit.writer),
            Arg::BigInt(commit.created_at_ms),
            Arg::OptBigInt(commit.max_object_age_ms),
            Arg::BigInt(uuid_v7_ms(commit.object_id).unwrap_or(i64::MAX)),
        ];
        if commit.keys.is_empty()
            && let Some(sql) = &self.sql.commit_in_one
            && let Some(outcomes) = self.commit_in_one(sql, commit, &object, rows).await?
        {
            return Ok(outcomes);
        }
        // The object row was there already, or the object is too old: the
        // transaction below tells which.
        let mut tx = self.begin().await?;
        let inserted = self
            .fetch_optional(On::Tx(&mut tx), &self.sql.insert_object, &object)
            .await?;
        if inserted.is_none() {
            let outcomes = self.committed_before(&mut tx, commit).await?;
            self.commit(tx).await?;
            return Ok(outcomes);
        }
        if !commit.keys.is_empty()
            && let Some(existing) = self.record_keys(&mut tx, commit, rows).await?
        {
            // Dropping the transaction rolls it back: nothing applied.
            return Err(Failure::Definite(MetadataError::KeysExist(existing)));
        }
        if let Some(lock) = &self.sql.lock_partitions {
            let locking = std::time::Instant::now();
            self.fetch(On::Tx(&mut tx), lock, &[Arg::Rows(&rows.partitions)])
                .await?;
            let waited = locking.elapsed();
            self.metrics
                .commit_lock_seconds
                .observe(waited.as_secs_f64());
            // The object was young enough when its row went in; a long wait
            // for the locks may have aged it past the limit meanwhile, and
            // the orphan collector must never delete an object that commits.
            if waited > LONG_LOCK_WAIT {
                self.check_age(&mut tx, commit).await?;
            }
        }
        // Chunks whose partitions are gone (topic deleted) match nothing.
        let args = [Arg::Uuid(commit.object_id), Arg::Rows(&rows.chunks)];
        let (last, first) = self.sql.advance.split_last().ok_or_else(|| {
            Failure::Definite(MetadataError::Unavailable("no advance statement".into()))
        })?;
        for sql in first {
            self.execute(On::Tx(&mut tx), sql, &args).await?;
        }
        let indexed = self.fetch(On::Tx(&mut tx), last, &args).await?;
        let outcomes = outcomes_from(&commit.chunks, &bases_of(&indexed)?);
        if indexed.is_empty() {
            self.execute(
                On::Tx(&mut tx),
                &self.sql.abandon_object,
                &[Arg::Uuid(commit.object_id)],
            )
            .await?;
        }
        if !commit.keys.is_empty() {
            self.answer_keys(&mut tx, commit, &outcomes).await?;
        }
        self.commit(tx).await?;
        self.metrics.metadata_commits.inc();
        Ok(outcomes)
    }

    /// The commit as one statement (see `postgres::sql::commit_in_one`).
    /// `None` when the object row did not go in: it existed already, or the
    /// object is too old.
    async fn commit_in_one(
        &self,
        sql: &str,
        commit: &FlushCommit,
        object: &[Arg<'_>],
        rows: &CommitRows,
    ) -> Result<Option<Vec<ChunkOutcome>>, Failure> {
        let mut args = object.to_vec();
        args.push(Arg::Rows(&rows.chunks));
        // Not getting a connection applies nothing; the statement commits on
        // its own, so an answer lost once it is sent leaves it ambiguous, as
        // a lost COMMIT would.
        let mut conn = self.db.acquire().await?;
        self.count(1);
        let mut found = self
            .db
            .fetch_on(&mut conn, sql, &args)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("23502") => {
                    Failure::Definite(MetadataError::Unavailable(
                        "the flush waited too long for its partitions to commit (older than half the orphan grace); retry"
                            .into(),
                    ))
                }
                _ => super::classify(e, true),
            })?;
        // One row marks that the object row went in; the rest are index rows.
        let before = found.len();
        found.retain(|r| !r.text("kind").is_ok_and(|k| k == "object"));
        if found.len() == before {
            return Ok(None);
        }
        let bases = bases_of(&found)?;
        if bases.is_empty() {
            // Every topic in the object was deleted meanwhile.
            self.execute(
                On::Write,
                &self.sql.abandon_object,
                &[Arg::Uuid(commit.object_id)],
            )
            .await?;
        }
        self.metrics.metadata_commits.inc();
        Ok(Some(outcomes_from(&commit.chunks, &bases)))
    }

    /// Refuses the commit when its object is now older than it may be, by
    /// the store's clock.
    async fn check_age(&self, tx: &mut D::Tx, commit: &FlushCommit) -> Result<(), Failure> {
        let (Some(max), Some(born)) = (commit.max_object_age_ms, uuid_v7_ms(commit.object_id))
        else {
            return Ok(());
        };
        let row = self
            .fetch_optional(On::Tx(tx), &self.sql.now_ms, &[])
            .await?;
        let now = match row {
            Some(r) => r.big("now_ms")?,
            None => return Ok(()),
        };
        if now - born > max {
            return Err(Failure::Definite(MetadataError::Unavailable(
                "the flush waited too long for its partitions to commit (older than half the orphan grace); retry"
                    .into(),
            )));
        }
        Ok(())
    }

    /// The object row exists: the commit happened before (the insert waited
    /// for it if it was still running), so answer with the offsets it
    /// assigned. No row at all means the object was too old to commit.
    async fn committed_before(
        &self,
        tx: &mut D::Tx,
        commit: &FlushCommit,
    ) -> Result<Vec<ChunkOutcome>, Failure> {
        let id = [Arg::Uuid(commit.object_id)];
        let found = self
            .fetch(On::Tx(&mut *tx), &self.sql.committed_chunks, &id)
            .await?;
        if found.is_empty()
            && self
                .fetch_optional(On::Tx(&mut *tx), &self.sql.object_exists, &id)
                .await?
                .is_none()
        {
            return Err(Failure::Definite(MetadataError::Unavailable(
                "the flush took too long to commit (older than half the orphan grace); retry"
                    .into(),
            )));
        }
        Ok(outcomes_from(&commit.chunks, &bases_of(&found)?))
    }

    /// Records the commit's keys; returns the ones already live instead
    /// (the caller then abandons the transaction). On PostgreSQL a key
    /// being recorded by a transaction still running elsewhere makes this
    /// wait for it.
    async fn record_keys(
        &self,
        tx: &mut D::Tx,
        commit: &FlushCommit,
        rows: &CommitRows,
    ) -> Result<Option<Vec<RecordedKey>>, Failure> {
        let inserted = self
            .fetch(
                On::Tx(&mut *tx),
                &self.sql.insert_keys,
                &[Arg::Rows(&rows.keys)],
            )
            .await?;
        if inserted.len() == commit.keys.len() {
            return Ok(None);
        }
        let mut fresh = HashSet::with_capacity(inserted.len());
        for r in &inserted {
            fresh.insert((r.text("tenant")?, r.uuid("topic_id")?, r.text("idem_key")?));
        }
        // The keys that were not fresh are live records: read them back in
        // one statement.
        let recorded = self
            .fetch(
                On::Tx(&mut *tx),
                &self.sql.recorded_keys,
                &[Arg::Rows(&rows.key_names)],
            )
            .await?;
        let mut by_name = HashMap::with_capacity(recorded.len());
        for r in &recorded {
            by_name.insert(
                (r.uuid("topic_id")?, r.text("idem_key")?),
                (r.text("fingerprint")?, r.opt_text("response")?),
            );
        }
        let existing = commit
            .keys
            .iter()
            .filter(|k| !fresh.contains(&(k.tenant.clone(), k.topic_id, k.key.clone())))
            .filter_map(|k| {
                let (print, response) = by_name.get(&(k.topic_id, k.key.clone()))?;
                Some(RecordedKey::from_row(
                    k.topic_id,
                    &k.key,
                    print.clone(),
                    response.as_deref(),
                ))
            })
            .collect();
        Ok(Some(existing))
    }

    /// Records each key's answer, now that its records have offsets.
    async fn answer_keys(
        &self,
        tx: &mut D::Tx,
        commit: &FlushCommit,
        outcomes: &[ChunkOutcome],
    ) -> Result<(), Failure> {
        let answered: Vec<_> = commit
            .keys
            .iter()
            .filter_map(|k| Some((k, key_response(k, &commit.chunks, outcomes)?)))
            .collect();
        let set = RowSet {
            columns: vec![
                Column::Text(answered.iter().map(|(k, _)| k.tenant.clone()).collect()),
                Column::Uuid(answered.iter().map(|(k, _)| k.topic_id).collect()),
                Column::Text(answered.iter().map(|(k, _)| k.key.clone()).collect()),
                Column::Text(answered.into_iter().map(|(_, r)| r).collect()),
            ],
        };
        self.execute(On::Tx(tx), &self.sql.answer_keys, &[Arg::Rows(&set)])
            .await?;
        Ok(())
    }
}
