//! The StreamHouse command-line client: `topics`, `produce`, `consume`,
//! `groups` and `subscriptions`, talking to any agent over its public HTTP API (no private
//! paths). Every subcommand takes `--url` (`STREAMHOUSE_URL`) and
//! `--token` (`STREAMHOUSE_TOKEN`). Exit codes: 0 on success, 1 when the
//! agent answers with an error (its problem+json `detail` is printed) or
//! cannot be reached, 2 on usage errors.

mod conn;
mod consume;
mod group_consume;
mod groups;
mod produce;
mod subscriptions;
mod template;
mod topics;

use std::process::ExitCode;

pub use conn::Target;
pub use consume::ConsumeArgs;
pub use groups::{GroupsArgs, GroupsCommand};
pub use produce::{LineFormat, ProduceArgs};
pub use subscriptions::{SubscriptionsArgs, SubscriptionsCommand};
pub use topics::{TopicsArgs, TopicsCommand};

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub enum CliError {
    /// The agent answered with an error.
    Server {
        status: u16,
        detail: String,
        retry_after: Option<u64>,
    },
    /// No answer came.
    Unreachable(String),
    /// The command line asks for something impossible.
    Usage(String),
    Other(anyhow::Error),
}

impl std::error::Error for CliError {}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Server { status, detail, .. } => write!(f, "{status}: {detail}"),
            CliError::Unreachable(e) => write!(f, "cannot reach the agent: {e}"),
            CliError::Usage(e) => write!(f, "{e}"),
            CliError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }

    /// Whether retrying the same request may succeed (429, 503, no answer).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CliError::Server {
                status: 429 | 503,
                ..
            } | CliError::Unreachable(_)
        )
    }
}

/// `streamhouse ready`: the agent answers `/readyz` with 200.
pub async fn ready(t: &Target) -> Result<(), CliError> {
    let c = conn::Conn::new(t)?;
    c.get("/readyz").await.map(|_| ())
}

/// `streamhouse topics …`
pub async fn topics(a: &TopicsArgs) -> Result<(), CliError> {
    topics::run(a).await
}

/// `streamhouse produce …`
pub async fn produce(a: &ProduceArgs) -> Result<(), CliError> {
    produce::run(a).await
}

/// `streamhouse consume …`
pub async fn consume(a: &ConsumeArgs) -> Result<(), CliError> {
    consume::run(a).await
}

/// `streamhouse groups …`
pub async fn groups(a: &GroupsArgs) -> Result<(), CliError> {
    groups::run(a).await
}

/// `streamhouse subscriptions …`
pub async fn subscriptions(a: &SubscriptionsArgs) -> Result<(), CliError> {
    subscriptions::run(a).await
}

/// Whether progress lines go to stderr (it is a terminal).
pub(crate) fn progress_enabled() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}
