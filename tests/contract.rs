//! Contract test: a property-based client generated from the checked-in
//! OpenAPI description (schemathesis) drives a real agent. Every answer
//! must be documented (status, content type, schema, headers), nothing may
//! answer 5xx, and requests outside the description must be refused.
//! The WebSocket route is left out: it is a protocol, not a request. A run
//! that fails with no check failing (the tool crashed) is run once more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::AgentProcess;

/// Generated cases per operation and phase; `STREAMHOUSE_CONTRACT_EXAMPLES` raises it.
const EXAMPLES: &str = "40";

fn schemathesis() -> PathBuf {
    let st = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/schemathesis");
    assert!(
        st.exists(),
        "schemathesis is missing: run `python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt` \
         (scripts/test does this)"
    );
    st
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_its_openapi_contract() {
    let st = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    // A short --max-wait keeps generated long polls brief; longer ones get
    // the documented 400.
    let agent = AgentProcess::start(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--max-wait",
            "2s",
        ],
        &[],
    );
    agent.api().create_topic("t", 2).await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples =
        std::env::var("STREAMHOUSE_CONTRACT_EXAMPLES").unwrap_or_else(|_| EXAMPLES.to_string());
    let run = |workers: &str| {
        Command::new(&st)
            .current_dir(dir.path())
            .arg("--config-file")
            .arg(root.join("tests/schemathesis.toml"))
            .arg("run")
            .arg(root.join("openapi/openapi.json"))
            .args(["--url", &agent.url])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance,response_headers_conformance,negative_data_rejection",
            ])
            .args([
                "--max-examples",
                &examples,
                "--workers",
                workers,
                "--seed",
                "1",
            ])
            .args(["--request-timeout", "5", "--exclude-path", "/v1/ws"])
            .env("NO_COLOR", "1")
            .output()
            .expect("run schemathesis")
    };
    let mut out = run("2");
    // A failed check is reported under FAILURES and fails the test at once.
    // A run that failed with no check failing crashed inside the tool: the
    // one seen is Python 3.11's `ast.parse` racing in two worker threads
    // ("AST constructor recursion depth mismatch", when the property-based
    // generator first describes its filters). It runs once more on one
    // worker, which cannot race, and that run's verdict stands.
    if !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("FAILURES") {
        println!(
            "schemathesis failed with no failed check; running it once more:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out = run("1");
    }
    let report = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("generated") || l.contains("passed") || l.contains("failed"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        out.status.success(),
        "schemathesis found contract failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
