//! The command-line client against live agents: every subcommand, a
//! 100,000-line round trip byte for byte, binary values, `--follow` across
//! an agent restart, and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::tokens::{JWT_FLAGS, token};
use common::{AgentProcess, TestAgent, binary, free_port};
use serde_json::{Value, json};

/// Runs `streamhouse <args>` against `url`, feeding `stdin`.
fn cli(url: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .env("STREAMHOUSE_URL", url)
        .env_remove("STREAMHOUSE_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test]
async fn a_hundred_thousand_lines_round_trip_byte_for_byte() {
    let a = TestAgent::start(&[]).await;
    let url = a.url.clone();
    let input = tokio::task::spawn_blocking(move || {
        ok(&cli(
            &url,
            &["topics", "create", "lines", "--partitions", "1"],
            b"",
        ));
        // Every kind of line: JSON exactly as written, JSON with spaces
        // around it, text, bytes that are not UTF-8, empty lines.
        let mut input = Vec::new();
        for i in 0..100_000u32 {
            match i % 6 {
                0 => input.extend_from_slice(format!("{{\"n\": {i}, \"f\": 1.50}}").as_bytes()),
                1 => input.extend_from_slice(format!(" {i} ").as_bytes()),
                2 => input.extend_from_slice(format!("plain text {i}\ttab").as_bytes()),
                3 => input.extend_from_slice(&[0xff, 0xfe, (i % 251) as u8 | 0x80, b'\r']),
                4 => {}
                _ => input.extend_from_slice(format!("\"quoted {i}\"").as_bytes()),
            }
            input.push(b'\n');
        }
        let out = cli(&url, &["produce", "lines"], &input);
        ok(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("produced 100000 records"), "{err}");
        let out = cli(&url, &["consume", "lines", "--count", "100000"], b"");
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), input.len());
        assert!(out.stdout == input, "the round trip changed bytes");
        input
    })
    .await
    .unwrap();
    assert_eq!(input.iter().filter(|b| **b == b'\n').count(), 100_000);
    a.stop().await;
}

#[tokio::test]
async fn subcommands_cover_topics_records_and_groups() {
    let a = TestAgent::start(&[]).await;
    let url = a.url.clone();
    tokio::task::spawn_blocking(move || {
        let u = url.as_str();
        ok(&cli(u, &["topics", "create", "t", "--partitions", "2", "--compression", "zstd"], b""));
        ok(&cli(u, &["topics", "create", "other"], b""));
        let list = ok(&cli(u, &["topics", "list"], b""));
        assert_eq!(list, "other\tpartitions=1\tcompression=none\nt\tpartitions=2\tcompression=zstd\n");
        let json_list: Value = serde_json::from_str(&ok(&cli(u, &["topics", "list", "--json"], b""))).unwrap();
        assert_eq!(json_list.as_array().unwrap().len(), 2);

        // Keys with a delimiter, a fixed partition, offsets printed with -v.
        let out = ok(&cli(u, &["produce", "t", "-K", ":", "--partition", "1", "-v"], b"k1:v1\nk2:{\"a\":1}\n"));
        assert_eq!(out, "1\t0\n1\t1\n");
        // Records as JSON objects, binary values as base64 in --format json.
        let recs = b"{\"key\":\"j\",\"value_b64\":\"AAEC/w==\",\"partition\":0,\"headers\":{\"h\":\"x\"}}\n";
        ok(&cli(u, &["produce", "t", "--format", "json"], recs));
        let out = ok(&cli(u, &["consume", "t", "--partition", "0", "--format", "json"], b""));
        let rec: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!((rec["value"].as_str(), rec["value_encoding"].as_str()), (Some("AAEC/w=="), Some("base64")));
        assert_eq!((rec["key"].as_str(), rec["partition"].as_i64()), (Some("j"), Some(0)));
        assert_eq!(rec["headers"][0], json!({"key": "h", "value": "x"}));
        let raw = cli(u, &["consume", "t", "--partition", "0"], b"");
        assert_eq!(raw.stdout, [0, 1, 2, 0xff, b'\n']);
        let out = ok(&cli(u, &["consume", "t", "--partition", "1", "--format", "%p/%o %k=%v\\n"], b""));
        assert_eq!(out, "1/0 k1=v1\n1/1 k2={\"a\":1}\n");
        let out = ok(&cli(u, &["consume", "t", "--partition", "1", "--from", "1"], b""));
        assert_eq!(out, "{\"a\":1}\n");
        let out = ok(&cli(u, &["consume", "t", "--from", "latest"], b""));
        assert_eq!(out, "");
        let described: Value = serde_json::from_str(&ok(&cli(u, &["topics", "describe", "t"], b""))).unwrap();
        assert_eq!(described["partition_details"][1]["high_watermark"], 2);

        // Groups: reset, list, describe, lag.
        ok(&cli(u, &["groups", "reset", "g", "--topic", "t", "--to", "earliest"], b""));
        ok(&cli(u, &["groups", "reset", "g", "--topic", "t", "--to", "latest", "--partition", "1"], b""));
        assert_eq!(ok(&cli(u, &["groups", "list"], b"")), "g\n");
        assert_eq!(ok(&cli(u, &["groups", "describe", "g"], b"")), "t\t0\t0\nt\t1\t2\n");
        let lag = ok(&cli(u, &["groups", "lag", "g"], b""));
        assert!(lag.contains("t\t0\tcommitted=0\thigh_watermark=1\tlag=1"), "{lag}");
        assert!(lag.ends_with("total_lag=1\n"), "{lag}");
        let members = ok(&cli(u, &["groups", "members", "g"], b""));
        assert_eq!(members, "state=empty\tgeneration=0\ttotal_lag=1\n");
        let at_time = ok(&cli(u, &["groups", "reset", "g", "--topic", "t", "--to", "ts:0"], b""));
        assert_eq!(at_time, "t\t0\t0\nt\t1\t0\n");
        ok(&cli(u, &["groups", "delete", "g"], b""));
        assert_eq!(ok(&cli(u, &["groups", "list"], b"")), "");

        // Subscriptions: the agent refuses targets --webhook-allow does not
        // list; a public name is accepted (nothing is delivered here).
        let refused = cli(u, &["subscriptions", "create", "s", "--topic", "t", "--endpoint", "http://10.0.0.1/x"], b"");
        assert_eq!(refused.status.code(), Some(1));
        let made: Value = serde_json::from_str(&ok(&cli(
            u,
            &["subscriptions", "create", "s", "--topic", "t", "--endpoint", "https://hooks.example.com/x", "--max-attempts", "3"],
            b"",
        )))
        .unwrap();
        assert_eq!((made["max_attempts"].as_i64(), made["secret"].as_str().map(str::len)), (Some(3), Some(64)));
        assert_eq!(ok(&cli(u, &["subscriptions", "pause", "s"], b"")), "s\tpaused=true\n");
        let listed = ok(&cli(u, &["subscriptions", "list"], b""));
        assert_eq!(listed, "s\tt\thttps://hooks.example.com/x\tpaused=true\tdelivered=0\n");
        let described: Value = serde_json::from_str(&ok(&cli(u, &["subscriptions", "describe", "s"], b""))).unwrap();
        assert!(described.get("secret").is_none(), "{described}");
        ok(&cli(u, &["subscriptions", "delete", "s"], b""));
        assert_eq!(ok(&cli(u, &["subscriptions", "list"], b"")), "");

        let changed: Value = serde_json::from_str(&ok(&cli(
            u,
            &["topics", "configure", "other", "--retention-ms", "60000", "--compression", "lz4"],
            b"",
        )))
        .unwrap();
        assert_eq!((changed["retention_ms"].as_i64(), changed["compression"].as_str()), (Some(60000), Some("lz4")));
        let changed: Value =
            serde_json::from_str(&ok(&cli(u, &["topics", "configure", "other", "--no-retention"], b""))).unwrap();
        assert_eq!((changed["retention_ms"].is_null(), changed["compression"].as_str()), (true, Some("lz4")));
        assert_eq!(cli(u, &["topics", "configure", "other"], b"").status.code(), Some(2));
        assert_eq!(cli(u, &["topics", "configure", "other", "--retention-ms", "0"], b"").status.code(), Some(1));
        ok(&cli(u, &["topics", "delete", "other"], b""));
        assert!(!ok(&cli(u, &["topics", "list"], b"")).contains("other"));
    })
    .await
    .unwrap();
    a.stop().await;
}

#[tokio::test]
async fn errors_exit_with_their_codes_and_details() {
    let a = TestAgent::start(JWT_FLAGS).await;
    let url = a.url.clone();
    let admin = token("default", &["admin:*", "produce:*", "consume:*"]);
    tokio::task::spawn_blocking(move || {
        let u = url.as_str();
        // No token: 401, exit 1, the detail printed.
        let out = cli(u, &["topics", "list"], b"");
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("401: a bearer token is required"));
        let out = cli(u, &["topics", "list", "--token", "junk"], b"");
        assert_eq!(out.status.code(), Some(1));
        let t = admin.as_str();
        ok(&cli(u, &["topics", "create", "t", "--token", t], b""));
        // An unknown topic: 404, exit 1.
        let out = cli(u, &["consume", "nope", "--token", t], b"");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("404: topic \"nope\" does not exist")
        );
        let out = cli(u, &["produce", "nope", "--token", t], b"x\n");
        assert_eq!(out.status.code(), Some(1));
        // Usage errors: exit 2.
        assert_eq!(
            cli(u, &["consume", "t", "--from", "soon", "--token", t], b"")
                .status
                .code(),
            Some(2)
        );
        assert_eq!(
            cli(u, &["consume", "t", "--format", "%x", "--token", t], b"")
                .status
                .code(),
            Some(2)
        );
        assert_eq!(cli(u, &["consume", "--bogus"], b"").status.code(), Some(2));
        assert_eq!(
            cli(
                u,
                &["produce", "t", "--format", "json", "--token", t],
                b"[1]\n"
            )
            .status
            .code(),
            Some(2)
        );
        // Nobody listening: exit 1.
        let out = cli("http://127.0.0.1:1", &["topics", "list"], b"");
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the agent"));
    })
    .await
    .unwrap();
    a.stop().await;
}

#[tokio::test]
async fn follow_survives_an_agent_restart_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let data = dir.path().to_str().unwrap().to_string();
    let args = ["--listen", listen.as_str(), "--data-dir", data.as_str()];
    let mut agent = AgentProcess::start(&args, &[]);
    let api = agent.api();
    api.create_topic("live", 2).await.expect(201);
    let produce = |api: common::Api, from: u32| async move {
        for i in from..from + 100 {
            api.produce("live", json!([{"value": i, "partition": i % 2}]))
                .await
                .expect(200);
        }
    };

    let follower = Command::new(binary())
        .args([
            "consume", "live", "--follow", "--from", "earliest", "--count", "200",
        ])
        .env("STREAMHOUSE_URL", &agent.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    produce(api.clone(), 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(30)).is_some());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let agent = AgentProcess::start(&args, &[]);
    produce(agent.api(), 100).await;

    let out = tokio::task::spawn_blocking(move || {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(follower.wait_with_output()));
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the follower finished")
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<u32> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(got.len(), 200, "no duplicates: {got:?}");
    got.sort_unstable();
    assert_eq!(got, (0..200).collect::<Vec<_>>(), "no gaps");
    drop(agent);
}

#[tokio::test]
async fn consume_with_a_group_commits_what_it_printed_and_the_next_run_goes_on() {
    let a = TestAgent::start(&[]).await;
    let url = a.url.clone();
    tokio::task::spawn_blocking(move || {
        ok(&cli(
            &url,
            &["topics", "create", "jobs", "--partitions", "3"],
            b"",
        ));
        let lines: String = (0..30).map(|i| format!("{i}\n")).collect();
        ok(&cli(&url, &["produce", "jobs"], lines.as_bytes()));
        let group = ["consume", "jobs", "--group", "readers"];
        // The first run stops after 12 records, having committed those.
        let first = ok(&cli(&url, &[&group[..], &["--count", "12"]].concat(), b""));
        assert_eq!(first.lines().count(), 12, "{first}");
        let rest = ok(&cli(&url, &group, b""));
        let mut all: Vec<i64> = first
            .lines()
            .chain(rest.lines())
            .map(|l| l.parse().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..30).collect::<Vec<_>>(), "{first}\n--\n{rest}");
        // Everything was committed: a third run prints nothing.
        assert_eq!(ok(&cli(&url, &group, b"")), "");
        // A new group starting at the end prints nothing either.
        let latest = ["consume", "jobs", "--group", "late", "--from", "latest"];
        assert_eq!(ok(&cli(&url, &latest, b"")), "");
        for bad in [["--partition", "0"], ["--from", "5"]] {
            let out = cli(&url, &[&group[..], &bad[..]].concat(), b"");
            assert_eq!(
                out.status.code(),
                Some(2),
                "{bad:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    })
    .await
    .unwrap();
    let g = a.api.get("/v1/groups/readers").await.expect(200);
    assert_eq!(g["total_lag"], 0, "{g}");
    assert_eq!(g["members"], json!([]), "each run left the group: {g}");
}

/// The allocator setting `serve` runs with, read from the process.
fn purge_delay_of(agent: &AgentProcess) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{}/environ", agent.pid())).unwrap();
    environ
        .split(|&b| b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("MIMALLOC_PURGE_DELAY="))
        .map(str::to_string)
}

#[test]
fn serve_keeps_freed_memory_ten_seconds_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let agent = AgentProcess::start(&["--data-dir", data], &[]);
    let inherited = std::env::var("MIMALLOC_PURGE_DELAY").ok();
    assert_eq!(
        purge_delay_of(&agent),
        Some(inherited.unwrap_or_else(|| "10000".into())),
        "the same process (pid), run again with the setting"
    );
    drop(agent);
    let agent = AgentProcess::start(&["--data-dir", data], &[("MIMALLOC_PURGE_DELAY", "1000")]);
    assert_eq!(purge_delay_of(&agent).as_deref(), Some("1000"));
}
