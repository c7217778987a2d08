//! `streamhouse topics list|create|describe|configure|delete`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::CliError;
use crate::conn::{Conn, Target, escape};

#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: TopicsCommand,
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Every topic (name, partitions, compression), one per line.
    List {
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Records older than this many milliseconds may be deleted.
        #[arg(long)]
        retention_ms: Option<i64>,
        /// none, lz4 or zstd.
        #[arg(long)]
        compression: Option<String>,
        #[command(flatten)]
        lifecycle: LifecycleFlags,
    },
    /// A topic and every partition's log start, high watermark, bytes, objects and index rows (JSON).
    Describe { name: String },
    /// Change a topic's settings (retention, compression of new chunks).
    Configure {
        name: String,
        /// Keep records at least this many milliseconds.
        #[arg(long, conflicts_with = "no_retention")]
        retention_ms: Option<i64>,
        /// Keep records forever.
        #[arg(long)]
        no_retention: bool,
        /// none, lz4 or zstd, for chunks flushed from now on.
        #[arg(long)]
        compression: Option<String>,
        #[command(flatten)]
        lifecycle: LifecycleFlags,
    },
    /// Move a partition's log start to an offset: records below it go.
    Trim {
        name: String,
        #[arg(long, default_value_t = 0)]
        partition: u32,
        /// The new log start.
        #[arg(long)]
        before: i64,
    },
    /// Delete a topic.
    Delete { name: String },
}

/// Retention by size and the cleanup policy.
#[derive(Debug, Args)]
pub struct LifecycleFlags {
    /// Each partition keeps at most this many bytes.
    #[arg(long)]
    retention_bytes: Option<i64>,
    /// delete, compact, or compact,delete.
    #[arg(long)]
    cleanup_policy: Option<String>,
    /// How long tombstones survive key compaction (ms).
    #[arg(long)]
    delete_retention_ms: Option<i64>,
}

impl LifecycleFlags {
    /// Adds the flags given to a request body.
    fn add_to(&self, body: &mut Value) {
        if let Some(b) = self.retention_bytes {
            body["retention_bytes"] = json!(b);
        }
        if let Some(p) = &self.cleanup_policy {
            body["cleanup_policy"] = json!(p);
        }
        if let Some(d) = self.delete_retention_ms {
            body["delete_retention_ms"] = json!(d);
        }
    }
}

pub(crate) async fn run(a: &TopicsArgs) -> Result<(), CliError> {
    let c = Conn::new(&a.target)?;
    match &a.command {
        TopicsCommand::List { json } => {
            let mut after: Option<String> = None;
            let mut all = Vec::new();
            loop {
                let path = match &after {
                    Some(a) => format!("/v1/topics?limit=1000&after={}", escape(a)),
                    None => "/v1/topics?limit=1000".into(),
                };
                let page = c.get(&path).await?;
                all.extend(page["topics"].as_array().cloned().unwrap_or_default());
                match page["next_after"].as_str() {
                    Some(n) => after = Some(n.to_string()),
                    None => break,
                }
            }
            if *json {
                println!("{}", Value::Array(all));
            } else {
                for t in all {
                    println!(
                        "{}\tpartitions={}\tcompression={}",
                        t["name"].as_str().unwrap_or_default(),
                        t["partitions"],
                        t["compression"].as_str().unwrap_or("none")
                    );
                }
            }
        }
        TopicsCommand::Create {
            name,
            partitions,
            retention_ms,
            compression,
            lifecycle,
        } => {
            let mut body = json!({"name": name, "partitions": partitions});
            if let Some(r) = retention_ms {
                body["retention_ms"] = json!(r);
            }
            if let Some(z) = compression {
                body["compression"] = json!(z);
            }
            lifecycle.add_to(&mut body);
            c.post("/v1/topics", &body).await?;
            eprintln!("created {name} ({partitions} partitions)");
        }
        TopicsCommand::Describe { name } => {
            let mut detail = c.get(&format!("/v1/topics/{}", escape(name))).await?;
            // Every page of partitions, as one document.
            while let Some(next) = detail["next_partition"].as_i64() {
                let more = c
                    .get(&format!(
                        "/v1/topics/{}?partition_from={next}",
                        escape(name)
                    ))
                    .await?;
                let extra = more["partition_details"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if let Some(list) = detail["partition_details"].as_array_mut() {
                    list.extend(extra);
                }
                detail["next_partition"] = more["next_partition"].clone();
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&detail).unwrap_or_default()
            );
        }
        TopicsCommand::Configure {
            name,
            retention_ms,
            no_retention,
            compression,
            lifecycle,
        } => {
            let mut body = json!({});
            if let Some(r) = retention_ms {
                body["retention_ms"] = json!(r);
            }
            if *no_retention {
                body["retention_ms"] = Value::Null;
            }
            if let Some(z) = compression {
                body["compression"] = json!(z);
            }
            lifecycle.add_to(&mut body);
            if body.as_object().is_some_and(|o| o.is_empty()) {
                return Err(CliError::Usage(
                    "name a setting: --retention-ms, --no-retention, --retention-bytes, \
                     --cleanup-policy, --delete-retention-ms or --compression"
                        .into(),
                ));
            }
            let req = c
                .request(Method::PATCH, &format!("/v1/topics/{}", escape(name)))
                .json(&body);
            println!("{}", c.json(req).await?);
        }
        TopicsCommand::Trim {
            name,
            partition,
            before,
        } => {
            let path = format!("/v1/topics/{}/partitions/{partition}/trim", escape(name));
            println!("{}", c.post(&path, &json!({ "before": before })).await?);
        }
        TopicsCommand::Delete { name } => {
            c.json(c.request(Method::DELETE, &format!("/v1/topics/{}", escape(name))))
                .await?;
            eprintln!("deleted {name}");
        }
    }
    Ok(())
}
