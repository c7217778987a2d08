//! The `streamhouse` command line: one subcommand per tool.
//!
//! `serve` and `migrate` take the agent's settings ([`ServeArgs`]: flags,
//! `STREAMHOUSE_*` environment variables, and a TOML file named by
//! `--config`); `bench` measures a running agent from outside; `token`
//! mints a development token; `topics`, `produce`, `consume`, `groups` and
//! `subscriptions` are the client (`streamhouse-cli`).

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use streamhouse_bench::BenchArgs;
use streamhouse_server::config::{ServeArgs, config_file_flags};

/// The `streamhouse` command line.
#[derive(Debug, Parser)]
#[command(name = "streamhouse", version, about = "S3-native HTTP streaming")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run an agent (embedded by default: SQLite and a local directory).
    Serve(Box<ServeArgs>),
    /// Apply metadata migrations and exit.
    Migrate(Box<ServeArgs>),
    /// Print the OpenAPI description as JSON.
    Openapi,
    /// Measure a running agent.
    Bench(BenchArgs),
    /// Print a signed HS256 token for an agent run with --auth jwt --jwt-secret.
    Token(streamhouse_server::auth::TokenArgs),
    /// Exit 0 when the agent at --url (default http://127.0.0.1:8080) answers
    /// /readyz with 200 (container health checks).
    Ready(streamhouse_cli::Target),
    /// List, create, describe and delete topics.
    Topics(streamhouse_cli::TopicsArgs),
    /// Produce stdin to a topic, one record per line.
    Produce(streamhouse_cli::ProduceArgs),
    /// Print a topic's records, one per line; --follow to keep following.
    Consume(streamhouse_cli::ConsumeArgs),
    /// List groups, show their offsets, members and lag, reset or delete them.
    Groups(streamhouse_cli::GroupsArgs),
    /// Create, list, describe, pause, resume and delete webhook subscriptions.
    Subscriptions(streamhouse_cli::SubscriptionsArgs),
}

/// Parses the command line, filling unset `serve`/`migrate` settings from
/// the TOML file named by `--config` (or `STREAMHOUSE_CONFIG`).
pub(crate) fn parse_cli(args: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
    let mut argv: Vec<OsString> = args.into_iter().collect();
    let matches = Cli::command().try_get_matches_from(&argv)?;
    if let Some(("serve" | "migrate", given)) = matches.subcommand()
        && let Some(extra) =
            config_file_flags(given).map_err(|(kind, msg)| Cli::command().error(kind, msg))?
    {
        argv.extend(extra.into_iter().map(OsString::from));
        return Cli::from_arg_matches(&Cli::command().try_get_matches_from(&argv)?);
    }
    Cli::from_arg_matches(&matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_fills_serve_settings_the_command_line_leaves_unset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "linger = \"20ms\"\nlisten = \"127.0.0.1:1\"\n").expect("write");
        let argv = [
            "streamhouse",
            "serve",
            "--config",
            path.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:9",
        ];
        let cli = parse_cli(argv.map(OsString::from)).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.linger.map(|d| d.0.as_millis()), Some(20));
        assert_eq!(args.listen.port(), 9, "the command line wins over the file");
    }
}
