//! `streamhouse bench`: measures a running agent from outside, over HTTP.

use clap::{Args, Subcommand};

/// `streamhouse bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub kind: BenchKind,
}

/// Which measurement to run.
#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// Placeholder.
    Http,
}

/// Runs a bench and prints one JSON line.
pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    Ok(())
}
