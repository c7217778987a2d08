//! `streamhouse groups list|describe|lag|reset`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::CliError;
use crate::conn::{Conn, Target, escape};

#[derive(Debug, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: GroupsCommand,
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Every group with committed offsets, one per line.
    List,
    /// A group's committed offsets, one partition per line.
    Describe { group: String },
    /// A group's lag per partition and in total.
    Lag { group: String },
    /// Set a group's offsets on a topic (groups without members).
    Reset {
        group: String,
        #[arg(long)]
        topic: String,
        /// `earliest`, `latest`, or an offset.
        #[arg(long)]
        to: String,
        /// One partition (default: every partition).
        #[arg(long)]
        partition: Option<i32>,
    },
}

pub(crate) async fn run(a: &GroupsArgs) -> Result<(), CliError> {
    let c = Conn::new(&a.target)?;
    match &a.command {
        GroupsCommand::List => {
            let mut after: Option<String> = None;
            loop {
                let path = match &after {
                    Some(a) => format!("/v1/groups?limit=1000&after={}", escape(a)),
                    None => "/v1/groups?limit=1000".into(),
                };
                let page = c.get(&path).await?;
                for g in page["groups"].as_array().into_iter().flatten() {
                    println!("{}", g.as_str().unwrap_or_default());
                }
                match page["next_after"].as_str() {
                    Some(n) => after = Some(n.to_string()),
                    None => break,
                }
            }
        }
        GroupsCommand::Describe { group } => {
            let v = c
                .get(&format!("/v1/groups/{}/offsets", escape(group)))
                .await?;
            for o in v["offsets"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}",
                    o["topic"].as_str().unwrap_or_default(),
                    o["partition"],
                    o["offset"]
                );
            }
        }
        GroupsCommand::Lag { group } => {
            let v = c.get(&format!("/v1/groups/{}/lag", escape(group))).await?;
            for p in v["partitions"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\tcommitted={}\thigh_watermark={}\tlag={}",
                    p["topic"].as_str().unwrap_or_default(),
                    p["partition"],
                    p["committed_offset"],
                    p["high_watermark"],
                    p["lag"]
                );
            }
            println!("total_lag={}", v["total_lag"]);
        }
        GroupsCommand::Reset {
            group,
            topic,
            to,
            partition,
        } => {
            let detail = c.get(&format!("/v1/topics/{}", escape(topic))).await?;
            let count = detail["partitions"].as_i64().unwrap_or(0) as i32;
            let parts: Vec<i32> = match partition {
                Some(p) => vec![*p],
                None => (0..count).collect(),
            };
            let fixed = match to.as_str() {
                "earliest" | "latest" => None,
                n => Some(n.parse::<i64>().map_err(|_| {
                    CliError::Usage(format!("--to {n:?} must be earliest, latest or an offset"))
                })?),
            };
            let mut offsets = Vec::new();
            for p in parts {
                let offset = match fixed {
                    Some(o) => o,
                    None => {
                        let b = c
                            .get(&format!(
                                "/v1/topics/{}/partitions/{p}/offsets",
                                escape(topic)
                            ))
                            .await?;
                        let key = if to == "earliest" {
                            "log_start_offset"
                        } else {
                            "high_watermark"
                        };
                        b[key].as_i64().unwrap_or(0)
                    }
                };
                offsets.push(json!({"topic": topic, "partition": p, "offset": offset}));
                println!("{topic}\t{p}\t{offset}");
            }
            c.post(
                &format!("/v1/groups/{}/offsets", escape(group)),
                &json!({"offsets": Value::Array(offsets)}),
            )
            .await?;
        }
    }
    Ok(())
}
