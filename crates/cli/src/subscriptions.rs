//! `streamhouse subscriptions create|list|describe|pause|resume|delete`:
//! webhook subscriptions, which agents deliver as signed POSTs.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::CliError;
use crate::conn::{Conn, Target, escape};

#[derive(Debug, Args)]
pub struct SubscriptionsArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: SubscriptionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Deliver a topic's records to a URL (prints the subscription; a
    /// generated secret is shown this once).
    Create {
        name: String,
        #[arg(long)]
        topic: String,
        /// The receiver's URL (`http://` or `https://`, allowed by the
        /// agents' --webhook-allow); `--url` names the agent.
        #[arg(long)]
        endpoint: String,
        /// HMAC-SHA256 key of the signature (16 to 256 characters;
        /// generated when absent).
        #[arg(long, env = "STREAMHOUSE_WEBHOOK_SECRET")]
        secret: Option<String>,
        /// Records per delivery, at most (1 to 1000).
        #[arg(long)]
        max_batch_records: Option<i32>,
        /// After a small delivery, how long records gather (ms).
        #[arg(long)]
        max_batch_wait_ms: Option<i64>,
        /// Attempts before a batch goes to `<name>.dlq`.
        #[arg(long)]
        max_attempts: Option<i32>,
        /// `earliest` or `latest` (default).
        #[arg(long)]
        start: Option<String>,
    },
    /// Every subscription: name, topic, url, paused, delivered, one per line.
    List,
    /// One subscription with its counters, last error and lag (JSON).
    Describe { name: String },
    /// Stop delivering (until resumed).
    Pause { name: String },
    /// Deliver again from where it stopped.
    Resume { name: String },
    /// Delete the subscription and its progress.
    Delete { name: String },
}

fn print(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

pub(crate) async fn run(a: &SubscriptionsArgs) -> Result<(), CliError> {
    let c = Conn::new(&a.target)?;
    match &a.command {
        SubscriptionsCommand::Create {
            name,
            topic,
            endpoint,
            secret,
            max_batch_records,
            max_batch_wait_ms,
            max_attempts,
            start,
        } => {
            let mut body = json!({"name": name, "topic": topic, "url": endpoint});
            let optional = [
                ("secret", secret.clone().map(Value::from)),
                ("max_batch_records", max_batch_records.map(Value::from)),
                ("max_batch_wait_ms", max_batch_wait_ms.map(Value::from)),
                ("max_attempts", max_attempts.map(Value::from)),
                ("start", start.clone().map(Value::from)),
            ];
            for (k, v) in optional {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            print(&c.post("/v1/subscriptions", &body).await?);
        }
        SubscriptionsCommand::List => {
            let mut after: Option<String> = None;
            loop {
                let path = match &after {
                    Some(a) => format!("/v1/subscriptions?limit=1000&after={}", escape(a)),
                    None => "/v1/subscriptions?limit=1000".into(),
                };
                let page = c.get(&path).await?;
                for s in page["subscriptions"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}\tpaused={}\tdelivered={}",
                        s["name"].as_str().unwrap_or_default(),
                        s["topic"].as_str().unwrap_or_default(),
                        s["url"].as_str().unwrap_or_default(),
                        s["paused"],
                        s["delivered"]
                    );
                }
                match page["next_after"].as_str() {
                    Some(n) => after = Some(n.to_string()),
                    None => break,
                }
            }
        }
        SubscriptionsCommand::Describe { name } => {
            print(
                &c.get(&format!("/v1/subscriptions/{}", escape(name)))
                    .await?,
            );
        }
        SubscriptionsCommand::Pause { name } | SubscriptionsCommand::Resume { name } => {
            let verb = if matches!(a.command, SubscriptionsCommand::Pause { .. }) {
                "pause"
            } else {
                "resume"
            };
            let v = c
                .post(
                    &format!("/v1/subscriptions/{}/{verb}", escape(name)),
                    &json!({}),
                )
                .await?;
            println!("{name}\tpaused={}", v["paused"]);
        }
        SubscriptionsCommand::Delete { name } => {
            c.json(c.request(
                reqwest::Method::DELETE,
                &format!("/v1/subscriptions/{}", escape(name)),
            ))
            .await?;
        }
    }
    Ok(())
}
