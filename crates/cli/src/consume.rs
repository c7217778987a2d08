//! `streamhouse consume TOPIC`: records printed one per line. Without
//! `--follow` it reads every partition (or one) up to its high watermark
//! over REST; with `--follow` it stays on the topic's Server-Sent Events,
//! reconnecting after errors and agent restarts with `Last-Event-ID`, so
//! nothing is missed or printed twice. With `--group` it reads as a member
//! of a consumer group instead (`group_consume`).

use std::io::Write;
use std::time::Duration;

use clap::Args;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::CliError;
use crate::conn::{Conn, Target, escape, problem};
use crate::template::{Output, Rec};

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub target: Target,
    pub topic: String,
    /// One partition (default: every partition).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Where to start: `earliest`, `latest`, an offset, or `ts:<millis>`.
    #[arg(long, default_value = "earliest")]
    pub from: String,
    /// Stop after this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Keep following new records (Server-Sent Events) instead of stopping at the end.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// `value` (default), `json` (the whole record), or a template such as `'%k\t%v\n'`
    /// (%t topic, %p partition, %o offset, %T timestamp, %k key, %v value, %h headers).
    #[arg(long, default_value = "value")]
    pub format: String,
    /// Read as a member of this consumer group: the group assigns the
    /// partitions, and what is printed is committed (`--from` is where a
    /// partition without a committed offset starts).
    #[arg(long)]
    pub group: Option<String>,
}

/// A read answer (REST) or a `records` event (SSE).
#[derive(Debug, Deserialize)]
pub(crate) struct Page<'a> {
    pub(crate) partition: i32,
    #[serde(borrow)]
    pub(crate) records: Vec<Rec<'a>>,
    pub(crate) next_offset: i64,
    high_watermark: i64,
}

/// Prints records until the count is reached; on a terminal, a progress
/// line on stderr every second.
pub(crate) struct Printer {
    output: Output,
    topic: String,
    left: Option<u64>,
    buf: Vec<u8>,
    pub(crate) printed: u64,
    progress: Option<std::time::Instant>,
}

impl Printer {
    /// Prints the page's records; false once the count is reached.
    pub(crate) fn page(&mut self, page: &Page<'_>) -> Result<bool, CliError> {
        self.buf.clear();
        for r in &page.records {
            if self.left == Some(0) {
                break;
            }
            self.output
                .write(&mut self.buf, &self.topic, page.partition, r);
            self.printed += 1;
            if let Some(n) = &mut self.left {
                *n -= 1;
            }
        }
        if let Some(last) = &mut self.progress
            && last.elapsed() >= Duration::from_secs(1)
        {
            *last = std::time::Instant::now();
            eprint!("\r{} records", self.printed);
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buf)
            .and_then(|()| out.flush())
            .map_err(|e| CliError::Other(e.into()))?;
        Ok(self.left != Some(0))
    }
}

fn check_from(from: &str) -> Result<(), CliError> {
    let ok = matches!(from, "earliest" | "latest")
        || from.parse::<u64>().is_ok()
        || from
            .strip_prefix("ts:")
            .is_some_and(|t| t.parse::<u64>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "--from {from:?} must be earliest, latest, an offset, or ts:<millis>"
        )))
    }
}

pub(crate) async fn run(a: &ConsumeArgs) -> Result<(), CliError> {
    check_from(&a.from)?;
    let output = Output::parse(&a.format).map_err(CliError::Usage)?;
    let c = Conn::new(&a.target)?;
    let mut printer = Printer {
        output,
        topic: a.topic.clone(),
        left: a.count,
        buf: Vec::new(),
        printed: 0,
        progress: crate::progress_enabled().then(std::time::Instant::now),
    };
    if a.count == Some(0) {
        return Ok(());
    }
    if let Some(group) = &a.group {
        crate::group_consume::run(&c, a, group, &mut printer).await
    } else if a.follow {
        follow(&c, a, &mut printer).await
    } else {
        read_to_end(&c, a, &mut printer).await
    }
}

/// Reads each partition from its start to its high watermark.
async fn read_to_end(c: &Conn, a: &ConsumeArgs, printer: &mut Printer) -> Result<(), CliError> {
    let topic = escape(&a.topic);
    let partitions: Vec<i32> = match a.partition {
        Some(p) => vec![p],
        None => {
            let d = c
                .get(&format!("/v1/topics/{topic}?partition_limit=1"))
                .await?;
            (0..d["partitions"].as_i64().unwrap_or(0) as i32).collect()
        }
    };
    for p in partitions {
        let bounds_path = format!("/v1/topics/{topic}/partitions/{p}/offsets");
        let mut offset = match a.from.as_str() {
            "earliest" => c.get(&bounds_path).await?["log_start_offset"]
                .as_i64()
                .unwrap_or(0),
            "latest" => continue,
            f => match f.strip_prefix("ts:") {
                Some(ts) => c.get(&format!("{bounds_path}?timestamp={ts}")).await?["offset"]
                    .as_i64()
                    .unwrap_or(0),
                None => f.parse().unwrap_or(0),
            },
        };
        loop {
            let resp = crate::conn::send(c.request(
                Method::GET,
                &format!("/v1/topics/{topic}/partitions/{p}/records?offset={offset}&limit=1000"),
            ))
            .await?;
            let text = resp.text().await.map_err(|e| CliError::Other(e.into()))?;
            let page: Page<'_> =
                serde_json::from_str(&text).map_err(|e| CliError::Other(e.into()))?;
            if !printer.page(&page)? {
                return Ok(());
            }
            let done = page.next_offset >= page.high_watermark || page.next_offset <= offset;
            offset = page.next_offset;
            if done {
                break;
            }
        }
    }
    Ok(())
}

/// Follows the topic (or one partition) over SSE until the count is reached.
async fn follow(c: &Conn, a: &ConsumeArgs, printer: &mut Printer) -> Result<(), CliError> {
    let topic = escape(&a.topic);
    let path = match a.partition {
        Some(p) => format!("/v1/topics/{topic}/partitions/{p}/records?from={}", a.from),
        None => format!("/v1/topics/{topic}/stream?from={}", a.from),
    };
    let mut last_id: Option<String> = None;
    let mut delay = Duration::from_millis(100);
    loop {
        let mut req = c
            .request(Method::GET, &path)
            .header("accept", "text/event-stream");
        if let Some(id) = &last_id {
            req = req.header("last-event-id", id);
        }
        let resp = match req.send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let e = problem(r).await;
                if !e.is_transient() {
                    return Err(e);
                }
                reconnect_wait(&mut delay, &e).await;
                continue;
            }
            Err(e) => {
                reconnect_wait(&mut delay, &CliError::Unreachable(e.to_string())).await;
                continue;
            }
        };
        delay = Duration::from_millis(100);
        let mut events = resp.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let Ok(event) = event else {
                break;
            };
            match event.event.as_str() {
                "records" => {
                    let page: Page<'_> =
                        serde_json::from_str(&event.data).map_err(|e| CliError::Other(e.into()))?;
                    if !printer.page(&page)? {
                        return Ok(());
                    }
                    last_id = Some(event.id.clone());
                }
                "error" => {
                    let p: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                    let status = p["status"].as_u64().unwrap_or(500) as u16;
                    let e = CliError::Server {
                        status,
                        detail: p["detail"].as_str().unwrap_or_default().to_string(),
                        retry_after: None,
                    };
                    if !e.is_transient() {
                        return Err(e);
                    }
                    break;
                }
                _ => {}
            }
        }
        // The stream ended (agent restarting, connection lost): resume.
        reconnect_wait(&mut delay, &CliError::Unreachable("stream ended".into())).await;
    }
}

async fn reconnect_wait(delay: &mut Duration, why: &CliError) {
    if crate::progress_enabled() {
        eprintln!("reconnecting in {delay:?}: {why}");
    }
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(Duration::from_secs(2));
}
