//! `streamhouse produce TOPIC`: records from stdin, one per line, batched
//! into requests. A raw line is kept byte for byte: sent as a JSON value
//! when it is exactly one (so JSON stays readable as JSON), otherwise as
//! bytes. `--format json` takes each line as a record object
//! (`{"key","value","headers",…}` as the API takes them).

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use base64::Engine;
use clap::{Args, ValueEnum};
use reqwest::Method;
use serde_json::Value;

use crate::CliError;
use crate::conn::{Conn, Target, escape, send};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LineFormat {
    /// The line is the value (and the key, with --key-delimiter).
    Raw,
    /// The line is a record object: {"key","value","headers","partition"}.
    Json,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub target: Target,
    pub topic: String,
    #[arg(long, value_enum, default_value_t = LineFormat::Raw)]
    pub format: LineFormat,
    /// Split each raw line at the first occurrence into key and value (like kcat -K).
    #[arg(long, short = 'K')]
    pub key_delimiter: Option<String>,
    /// Send every record to this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Most records in one request.
    #[arg(long, default_value_t = 1000)]
    pub batch_records: usize,
    /// Most bytes of lines in one request.
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// Send `Idempotency-Key: <prefix>-<n>` with the n-th request, so a retry
    /// after a lost answer appends nothing twice (use a fresh prefix per run).
    #[arg(long)]
    pub idempotency_key_prefix: Option<String>,
    /// Print each record's partition and offset.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// One batch on its way: the request body and how many records it holds.
struct Batch {
    body: Vec<u8>,
    records: usize,
}

impl Batch {
    fn new() -> Batch {
        let mut body = Vec::with_capacity(64 * 1024);
        body.extend_from_slice(b"{\"records\":[");
        Batch { body, records: 0 }
    }

    fn push(&mut self, record: &[u8]) {
        if self.records > 0 {
            self.body.push(b',');
        }
        self.body.extend_from_slice(record);
        self.records += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        self.body.extend_from_slice(b"]}");
        self.body
    }
}

/// Whether `bytes` is exactly one JSON value, with nothing around it.
fn is_exact_json(bytes: &[u8]) -> bool {
    match (bytes.first(), bytes.last()) {
        (Some(a), Some(b)) if !a.is_ascii_whitespace() && !b.is_ascii_whitespace() => {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
        }
        _ => false,
    }
}

/// A raw line as a record object.
fn raw_record(line: &[u8], delimiter: Option<&[u8]>, partition: Option<i32>) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (key, value) = match delimiter.and_then(|d| find(line, d).map(|i| (i, d.len()))) {
        Some((i, n)) => (Some(&line[..i]), &line[i + n..]),
        None => (None, line),
    };
    let mut out = Vec::with_capacity(value.len() + 32);
    out.push(b'{');
    if let Some(k) = key {
        match std::str::from_utf8(k) {
            Ok(text) => {
                out.extend_from_slice(b"\"key\":");
                out.extend_from_slice(Value::String(text.into()).to_string().as_bytes());
            }
            Err(_) => {
                out.extend_from_slice(b"\"key_b64\":\"");
                out.extend_from_slice(b64.encode(k).as_bytes());
                out.push(b'"');
            }
        }
        out.push(b',');
    }
    if let Some(p) = partition {
        out.extend_from_slice(format!("\"partition\":{p},").as_bytes());
    }
    if is_exact_json(value) {
        out.extend_from_slice(b"\"value\":");
        out.extend_from_slice(value);
    } else {
        out.extend_from_slice(b"\"value_b64\":\"");
        out.extend_from_slice(b64.encode(value).as_bytes());
        out.push(b'"');
    }
    out.push(b'}');
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A `--format json` line as a record object (checked to be one).
fn json_record(line: &[u8], number: u64, partition: Option<i32>) -> Result<Vec<u8>, CliError> {
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| CliError::Usage(format!("line {number}: not JSON: {e}")))?;
    if !v.is_object() {
        return Err(CliError::Usage(format!(
            "line {number}: a record must be a JSON object like {{\"key\":\"k\",\"value\":1}}"
        )));
    }
    match partition {
        // The line's own bytes, so values stay exactly as written.
        None => Ok(line.to_vec()),
        Some(p) => {
            let mut v = v;
            v["partition"] = Value::from(p);
            Ok(v.to_string().into_bytes())
        }
    }
}

pub(crate) async fn run(a: &ProduceArgs) -> Result<(), CliError> {
    let c = Conn::new(&a.target)?;
    let path = format!("/v1/topics/{}/records", escape(&a.topic));
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    let mut batch = Batch::new();
    let (mut number, mut sent, mut requests) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let progress = crate::progress_enabled();
    let delimiter = a.key_delimiter.as_deref().map(str::as_bytes);
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| CliError::Other(e.into()))?;
        let done = n == 0;
        if !done {
            number += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let record = match a.format {
                LineFormat::Raw => raw_record(&line, delimiter, a.partition),
                LineFormat::Json => json_record(&line, number, a.partition)?,
            };
            batch.push(&record);
        }
        let full = batch.records >= a.batch_records.max(1) || batch.body.len() >= a.batch_bytes;
        if (full || done) && batch.records > 0 {
            let records = batch.records;
            let body = std::mem::replace(&mut batch, Batch::new()).finish();
            let key = a
                .idempotency_key_prefix
                .as_ref()
                .map(|p| format!("{p}-{requests}"));
            let answer = post_with_retries(&c, &path, body, key.as_deref()).await?;
            requests += 1;
            sent += records as u64;
            if a.verbose {
                let mut out = std::io::stdout().lock();
                for o in answer["offsets"].as_array().into_iter().flatten() {
                    let _ = writeln!(out, "{}\t{}", o["partition"], o["offset"]);
                }
            }
            if progress && last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                eprint!(
                    "\r{sent} records in {requests} requests, {:.0} records/s",
                    sent as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        if done {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    eprintln!(
        "produced {sent} records to {} in {requests} requests",
        a.topic
    );
    Ok(())
}

/// Posts one batch; retries what is safe to retry: 429 and 503 (nothing
/// was appended), and a lost answer when the request carries a key.
async fn post_with_retries(
    c: &Conn,
    path: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> Result<Value, CliError> {
    let mut delay = Duration::from_millis(100);
    for attempt in 1.. {
        let mut req = c
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let err = match send(req).await {
            Ok(resp) => {
                return resp
                    .json::<Value>()
                    .await
                    .map_err(|e| CliError::Other(e.into()));
            }
            Err(e) => e,
        };
        let retry = match &err {
            CliError::Unreachable(_) => key.is_some(),
            e => e.is_transient(),
        };
        if !retry || attempt >= 10 {
            return Err(err);
        }
        if let CliError::Server {
            retry_after: Some(s),
            ..
        } = err
        {
            delay = delay.max(Duration::from_secs(s));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_lines_stay_exact() {
        let r = raw_record(b"{\"a\": 1.50}", None, None);
        assert_eq!(r, b"{\"value\":{\"a\": 1.50}}");
        let r = raw_record(b" 1", None, None);
        assert_eq!(r, b"{\"value_b64\":\"IDE=\"}");
        let r = raw_record(b"k:v:w", Some(b":"), Some(2));
        assert_eq!(r, b"{\"key\":\"k\",\"partition\":2,\"value_b64\":\"djp3\"}");
        let r = raw_record(&[0xff, b':', b'1'], Some(b":"), None);
        assert_eq!(r, b"{\"key_b64\":\"/w==\",\"value\":1}");
    }
}
