//! `streamhouse groups list|describe|members|lag|reset|delete`.

use clap::{Args, Subcommand};
use serde_json::json;

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
    /// A group's state, generation and members, with their partitions.
    Members { group: String },
    /// A group's lag per partition and in total.
    Lag { group: String },
    /// Set a group's offsets on a topic (groups without live members).
    Reset {
        group: String,
        #[arg(long)]
        topic: String,
        /// `earliest`, `latest`, an offset, or `ts:<milliseconds>`.
        #[arg(long)]
        to: String,
        /// One partition (default: every partition).
        #[arg(long)]
        partition: Option<i32>,
    },
    /// Delete a group and its offsets (groups without live members).
    Delete { group: String },
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
        GroupsCommand::Members { group } => {
            let v = c.get(&format!("/v1/groups/{}", escape(group))).await?;
            println!(
                "state={}\tgeneration={}\ttotal_lag={}",
                v["state"].as_str().unwrap_or_default(),
                v["generation"],
                v["total_lag"]
            );
            for m in v["members"].as_array().into_iter().flatten() {
                let parts = |key: &str| {
                    m[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            format!(
                                "{}:{}",
                                a["topic"].as_str().unwrap_or_default(),
                                a["partition"]
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                };
                println!(
                    "{}\texpires_in_ms={}\tpartitions={}\trevoking={}",
                    m["member_id"].as_str().unwrap_or_default(),
                    m["expires_in_ms"],
                    parts("assignment"),
                    parts("revoking")
                );
            }
        }
        GroupsCommand::Reset {
            group,
            topic,
            to,
            partition,
        } => {
            let mut body = json!({"topic": topic, "to": to});
            if let Some(p) = partition {
                body["partitions"] = json!([p]);
            }
            let v = c
                .post(&format!("/v1/groups/{}/reset", escape(group)), &body)
                .await?;
            for o in v["offsets"].as_array().into_iter().flatten() {
                println!("{topic}\t{}\t{}", o["partition"], o["offset"]);
            }
        }
        GroupsCommand::Delete { group } => {
            c.json(c.request(
                reqwest::Method::DELETE,
                &format!("/v1/groups/{}", escape(group)),
            ))
            .await?;
        }
    }
    Ok(())
}
