//! The `streamhouse` command: parses flags and hands over to the server,
//! the bench or the client.

mod cli;

use std::process::ExitCode;

use cli::{Command, parse_cli};
use tracing_subscriber::EnvFilter;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    #[cfg(all(unix, feature = "mimalloc"))]
    with_purge_delay();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(EVENT_INTERVAL)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("streamhouse: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How long, in milliseconds, the allocator keeps memory it freed before
/// giving it back to the kernel, for the agent and the bench (mimalloc's
/// default is 1,000). Reads pass each S3 GET's body through a buffer of
/// its own; memory given back and taken again is faulted in and zeroed
/// by the kernel once more, which was a fifth of a reading agent's time
/// (README, Performance).
#[cfg(all(unix, feature = "mimalloc"))]
const PURGE_DELAY_MS: &str = "10000";

/// Runs `serve` and `bench` again as they were asked for, with
/// `MIMALLOC_PURGE_DELAY` set to [`PURGE_DELAY_MS`], unless the
/// environment sets it already (any value, the default included, is left
/// alone). mimalloc reads its options from the environment as the process
/// starts, and the workspace forbids the `unsafe` call that would set one
/// from inside. The process keeps its id; a failure to run again is
/// reported and the command goes on as it is.
#[cfg(all(unix, feature = "mimalloc"))]
fn with_purge_delay() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let args: Vec<_> = args.collect();
    if !matches!(
        args.first().and_then(|a| a.to_str()),
        Some("serve" | "bench")
    ) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .arg0(argv0)
        .args(args)
        .env("MIMALLOC_PURGE_DELAY", PURGE_DELAY_MS)
        .exec();
    eprintln!(
        "streamhouse: could not run again with MIMALLOC_PURGE_DELAY={PURGE_DELAY_MS} ({error}); going on without it"
    );
}

/// Tasks a runtime worker runs between looks at the sockets (tokio's
/// default is 61). An agent under many small requests has hundreds of
/// tasks ready; a metadata store's answer waited behind them to be
/// noticed, which lengthened the tail of flush commits (README,
/// Performance).
const EVENT_INTERVAL: u32 = 16;

async fn run() -> ExitCode {
    let cli = match parse_cli(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let client = match &cli.command {
        Command::Ready(t) => Some(streamhouse_cli::ready(t).await),
        Command::Topics(a) => Some(streamhouse_cli::topics(a).await),
        Command::Produce(a) => Some(streamhouse_cli::produce(a).await),
        Command::Consume(a) => Some(streamhouse_cli::consume(a).await),
        Command::Groups(a) => Some(streamhouse_cli::groups(a).await),
        Command::Subscriptions(a) => Some(streamhouse_cli::subscriptions(a).await),
        _ => None,
    };
    if let Some(result) = client {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("streamhouse: {e}");
                e.exit_code()
            }
        };
    }
    let result: anyhow::Result<()> = match cli.command {
        Command::Serve(args) => {
            init_logging(&args.log);
            streamhouse_server::server::run(*args)
                .await
                .map_err(Into::into)
        }
        Command::Migrate(args) => {
            init_logging(&args.log);
            streamhouse_server::server::migrate(*args)
                .await
                .map_err(Into::into)
        }
        Command::Openapi => {
            print!("{}", streamhouse_server::api::openapi_json());
            Ok(())
        }
        Command::Token(args) => args
            .mint()
            .map(|t| println!("{t}"))
            .map_err(|e| anyhow::anyhow!(e)),
        Command::Bench(args) => {
            init_logging("warn");
            streamhouse_bench::run(args).await
        }
        Command::Ready(_)
        | Command::Topics(_)
        | Command::Produce(_)
        | Command::Consume(_)
        | Command::Groups(_)
        | Command::Subscriptions(_) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamhouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}
