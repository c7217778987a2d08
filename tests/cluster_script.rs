//! `scripts/cluster`: `up` starts PostgreSQL, SeaweedFS and three agents
//! that serve records; `down` leaves no process running and every port
//! free; `up` refuses when a port is taken.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A base port whose 14 ports are all free now, below Linux's ephemeral
/// range (32768 and up) so that no outgoing connection of another test
/// takes one of them between this check and the bind.
fn free_base() -> u16 {
    for attempt in 0..200u32 {
        let base = 12_000 + ((std::process::id() * 7919 + attempt * 104_729) % 20_000) as u16;
        let held: Vec<TcpListener> = (base..base + 14)
            .filter_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == 14 {
            return base;
        }
    }
    panic!("no run of 14 free ports");
}

fn script(action: &str, data: &Path, base: u16) -> Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/cluster"))
        .arg(action)
        .env("CLUSTER_DATA", data)
        .env("PORT_BASE", base.to_string())
        .env("STREAMHOUSE_BIN", common::binary())
        .env("PG_BIN", common::postgres::bin_dir())
        .env("WEED", common::seaweed::weed_binary())
        .output()
        .unwrap();
    eprintln!(
        "scripts/cluster {action}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{}", pid.trim())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .unwrap_or_default()
            .contains(") Z ")
}

fn port_open(p: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()
}

#[tokio::test]
async fn up_serves_and_down_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    // PostgreSQL runs as its own user when the tests run as root.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("cluster");
    let base = free_base();
    let up = script("up", &data, base);
    if !up.status.success() {
        script("down", &data, base);
        panic!("up failed");
    }
    let urls: Vec<String> = String::from_utf8_lossy(&up.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(str::to_string))
        .collect();
    assert_eq!(urls.len(), 3, "three agents");

    // A record produced on one agent is read on another.
    let a = common::Api::new(urls[0].clone());
    a.create_topic("t", 1).await.expect(201);
    a.produce("t", serde_json::json!([{"value": "through the cluster"}]))
        .await
        .expect(200);
    let page = common::Api::new(urls[2].clone())
        .read("t", 0, "offset=0")
        .await
        .expect(200);
    assert_eq!(page["records"][0]["value"], "through the cluster");

    // PostgreSQL has WAL segments written ahead for reuse (64 by default).
    let segments = std::fs::read_dir(data.join("pg/pg_wal"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().len() == 24)
        .count();
    assert!(segments >= 60, "{segments} WAL segments");

    // A second `up` refuses: its ports are taken.
    let again = script("up", &data, base);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already in use"));

    let pids: Vec<String> = ["agent1", "agent2", "agent3", "weed"]
        .iter()
        .map(|n| std::fs::read_to_string(data.join(format!("{n}.pid"))).unwrap())
        .collect();
    let pg_pid = std::fs::read_to_string(data.join("pg/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let down = script("down", &data, base);
    assert!(down.status.success(), "down failed");
    let said = String::from_utf8_lossy(&down.stdout);
    for name in ["agent1", "agent2", "agent3", "weed", "postgres"] {
        assert!(said.contains(&format!("stopped {name}")), "{said}");
    }
    for pid in pids.iter().chain([&pg_pid]) {
        assert!(!alive(pid), "process {pid} still running");
    }
    for p in base..base + 14 {
        assert!(!port_open(p), "port {p} still open");
    }
    assert!(script("wipe", &data, base).status.success());
    assert!(!data.exists());
}
