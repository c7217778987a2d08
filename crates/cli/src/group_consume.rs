//! `streamhouse consume TOPIC --group G`: the records of the partitions
//! this client is given as a member of group G, printed one per line and
//! committed once printed, so the next run (or another member) goes on
//! from there. `--from` picks where a partition the group has no offset
//! for starts (`earliest` or `latest`).
//!
//! Without `--follow` it stops at the first fetch that finds nothing new;
//! with it, it waits for more. It leaves the group when it stops (the
//! count reached, the end, ctrl-c), so its partitions move at once. A
//! session that ended meanwhile (the agent unreachable too long) joins
//! again, and a commit that fails transiently is retried a few times.
//! Delivery is at least once: a record printed whose commit was refused
//! (its partition moved meanwhile) comes again to the next owner.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::CliError;
use crate::conn::{Conn, escape, send};
use crate::consume::{ConsumeArgs, Page, Printer};

/// How long a fetch waits for records: with `--follow`, well within the
/// session; without, long enough for a rebalance to hand partitions over.
const FOLLOW_WAIT_MS: u64 = 10_000;
const END_WAIT_MS: u64 = 1_000;
const SESSION_MS: u64 = 30_000;
/// Tries of a commit that fails transiently before the command gives up.
const COMMIT_ATTEMPTS: u32 = 5;

/// A member fetch's answer.
#[derive(Debug, Deserialize)]
struct Fetched<'a> {
    generation: i64,
    #[serde(borrow)]
    batches: Vec<Page<'a>>,
}

struct Member {
    id: String,
    generation: i64,
}

pub(crate) async fn run(
    c: &Conn,
    a: &ConsumeArgs,
    group: &str,
    printer: &mut Printer,
) -> Result<(), CliError> {
    if a.partition.is_some() {
        return Err(CliError::Usage(
            "--partition and --group do not go together: the group assigns partitions".into(),
        ));
    }
    if !matches!(a.from.as_str(), "earliest" | "latest") {
        return Err(CliError::Usage(format!(
            "with --group, --from must be earliest or latest (where a partition without a committed offset starts), not {:?}",
            a.from
        )));
    }
    let g = escape(group);
    let mut member = join(c, &g, a).await?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let outcome = loop {
        let wait = if a.follow {
            FOLLOW_WAIT_MS
        } else {
            END_WAIT_MS
        };
        let path = format!(
            "/v1/groups/{g}/members/{}/records?max_records=1000&wait_ms={wait}",
            escape(&member.id)
        );
        let answer = tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            r = send(c.request(Method::GET, &path)) => r,
        };
        let text = match answer {
            Ok(resp) => resp.text().await.map_err(|e| CliError::Other(e.into()))?,
            Err(CliError::Server { status: 404, .. }) => {
                member = join(c, &g, a).await?;
                continue;
            }
            Err(e) if e.is_transient() => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => break Err(e),
        };
        let fetched: Fetched<'_> =
            serde_json::from_str(&text).map_err(|e| CliError::Other(e.into()))?;
        member.generation = fetched.generation;
        let mut offsets = Vec::new();
        let mut more = true;
        for batch in &fetched.batches {
            let before = printer.printed;
            more = printer.page(batch)?;
            let printed = (printer.printed - before) as usize;
            let next = match printed {
                0 => None,
                n if n == batch.records.len() => Some(batch.next_offset),
                n => Some(batch.records[n - 1].offset + 1),
            };
            if let Some(offset) = next {
                offsets.push(
                    json!({"topic": a.topic, "partition": batch.partition, "offset": offset}),
                );
            }
            if !more {
                break;
            }
        }
        commit(c, &g, &member, offsets).await?;
        if !more || (!a.follow && fetched.batches.is_empty()) {
            break Ok(());
        }
    };
    // Leaving moves the partitions at once; if it fails, the session ends.
    let _ = send(c.request(
        Method::DELETE,
        &format!("/v1/groups/{g}/members/{}", escape(&member.id)),
    ))
    .await;
    outcome
}

async fn join(c: &Conn, g: &str, a: &ConsumeArgs) -> Result<Member, CliError> {
    let v: Value = c
        .post(
            &format!("/v1/groups/{g}/members"),
            &json!({"topics": [a.topic], "session_timeout_ms": SESSION_MS,
                    "auto_offset_reset": a.from}),
        )
        .await?;
    Ok(Member {
        id: v["member_id"].as_str().unwrap_or_default().to_string(),
        generation: v["generation"].as_i64().unwrap_or(0),
    })
}

/// Commits what was printed, retrying a transient failure (an agent
/// restarting, 429, 503) a few times; a commit the group refuses (the
/// partition moved, a newer generation) is left to the next owner.
async fn commit(c: &Conn, g: &str, member: &Member, offsets: Vec<Value>) -> Result<(), CliError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let body = json!({"member_id": member.id, "generation": member.generation, "offsets": offsets});
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match c.post(&format!("/v1/groups/{g}/offsets"), &body).await {
            Ok(_) => return Ok(()),
            Err(e @ CliError::Server { status: 409, .. }) => {
                if crate::progress_enabled() {
                    eprintln!("not committed: {e}");
                }
                return Ok(());
            }
            Err(e) if e.is_transient() && attempt < COMMIT_ATTEMPTS => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
