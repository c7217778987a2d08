//! Shared test harness: agents in-process or as processes, fleets of
//! agent processes on a real PostgreSQL and a real S3-API server
//! (SeaweedFS), and typed calls to an agent's API. Missing dependencies
//! fail loudly with what to install; nothing is skipped.
#![allow(dead_code, unreachable_pub)]

pub mod api;
pub mod fleet;
pub mod postgres;
pub mod receiver;
pub mod seaweed;
pub mod tokens;

pub use api::Api;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamhouse_server::config::ServeArgs;
use streamhouse_server::metrics::Metrics;
use tokio::sync::oneshot;

/// Parses `serve` flags the way the binary does.
pub fn serve_args(extra: &[&str]) -> ServeArgs {
    let mut argv = vec!["--listen", "127.0.0.1:0"];
    argv.extend_from_slice(extra);
    ServeArgs::parse_flags(argv).expect("valid flags")
}

/// An agent running inside the test process.
pub struct TestAgent {
    pub url: String,
    pub api: Api,
    pub client: reqwest::Client,
    pub metrics: Arc<Metrics>,
    pub dir: Option<tempfile::TempDir>,
    /// Cancelling it starts shutdown, as a signal would.
    pub draining: tokio_util::sync::CancellationToken,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestAgent {
    /// Starts an embedded agent in a fresh temporary directory.
    pub async fn start(extra: &[&str]) -> TestAgent {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().to_str().expect("utf-8 path").to_string();
        let mut flags = vec!["--data-dir", data.as_str()];
        flags.extend_from_slice(extra);
        let mut agent = Self::start_with(serve_args(&flags)).await;
        agent.dir = Some(dir);
        agent
    }

    /// Starts an agent with exactly these arguments.
    pub async fn start_with(args: ServeArgs) -> TestAgent {
        Self::start_layered(args, streamhouse_server::server::Layers::default()).await
    }

    /// Starts an embedded agent whose stores obey a fault plan.
    pub async fn start_faulty(
        extra: &[&str],
    ) -> (
        TestAgent,
        Arc<streamhouse_server::testing::faults::FaultPlan>,
    ) {
        let plan = Arc::new(streamhouse_server::testing::faults::FaultPlan::default());
        (Self::start_with_plan(extra, plan.clone()).await, plan)
    }

    /// Starts an embedded agent whose stores obey `plan` from the start.
    pub async fn start_with_plan(
        extra: &[&str],
        plan: Arc<streamhouse_server::testing::faults::FaultPlan>,
    ) -> TestAgent {
        use streamhouse_server::testing::faults::{FaultyMetadata, FaultyStore};
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().to_str().expect("utf-8 path").to_string();
        let mut flags = vec!["--data-dir", data.as_str()];
        flags.extend_from_slice(extra);
        let (p1, p2) = (plan.clone(), plan);
        let layers = streamhouse_server::server::Layers {
            store: Some(Box::new(move |s| Arc::new(FaultyStore::new(s, p1)))),
            metadata: Some(Box::new(move |m| FaultyMetadata::wrap(m, p2))),
        };
        let mut agent = Self::start_layered(serve_args(&flags), layers).await;
        agent.dir = Some(dir);
        agent
    }

    async fn start_layered(
        args: ServeArgs,
        layers: streamhouse_server::server::Layers,
    ) -> TestAgent {
        let agent = streamhouse_server::server::build_with(&args, layers)
            .await
            .expect("agent builds");
        let metrics = agent.state.metrics.clone();
        let draining = agent.state.draining.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            streamhouse_server::server::serve(agent, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestAgent {
            url: format!("http://{addr}"),
            api: Api::new(format!("http://{addr}")),
            client: client(),
            metrics,
            draining,
            dir: None,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Shuts the agent down in order and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("agent task");
        }
    }

    pub fn u(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Creates a topic and asserts it was created.
    pub async fn create_topic(&self, name: &str, partitions: u32) {
        self.api.create_topic(name, partitions).await.expect(201);
    }

    /// Produces a JSON body and returns the parsed answer, asserting 200.
    pub async fn produce(&self, topic: &str, body: serde_json::Value) -> serde_json::Value {
        self.api
            .post(&format!("/v1/topics/{topic}/records"), &body)
            .await
            .expect(200)
    }

    /// Reads a partition with `query` and returns the parsed answer, asserting 200.
    pub async fn read(&self, topic: &str, partition: i32, query: &str) -> serde_json::Value {
        self.api
            .read(topic, i64::from(partition), query)
            .await
            .expect(200)
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// The streamhouse binary built for this test run.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_streamhouse"))
}

/// An agent running as its own process (for signals and crashes).
pub struct AgentProcess {
    pub child: Child,
    pub url: String,
    pub addr: SocketAddr,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl AgentProcess {
    /// Starts `streamhouse serve` with `args` and waits for its address line.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> AgentProcess {
        let mut cmd = Command::new(binary());
        cmd.arg("serve");
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .env("STREAMHOUSE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn streamhouse");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let addr = line[i + "listening on http://".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(addr);
                }
                log2.lock().map(|mut l| l.push(line)).ok();
            }
        });
        let addr: SocketAddr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!("agent did not start: {:?}", log.lock().map(|l| l.clone()));
            }
        };
        AgentProcess {
            child,
            url: format!("http://{addr}"),
            addr,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Typed calls to this agent's API.
    pub fn api(&self) -> Api {
        Api::new(self.url.clone())
    }

    /// Sends a signal by name (TERM, KILL) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python 3 with kafka-python, lz4 and zstandard, as the test command
/// installs into `.venv`. Fails with instructions when absent.
pub fn python() -> PathBuf {
    let candidates = [
        std::env::var("STREAMHOUSE_TEST_PYTHON")
            .ok()
            .map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.exists() {
            let ok = Command::new(&c)
                .args(["-c", "import kafka, lz4, zstandard"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                ok,
                "{} lacks kafka-python, lz4 or zstandard: run `{} -m pip install kafka-python lz4 zstandard` (scripts/test does this)",
                c.display(),
                c.display()
            );
            return c;
        }
    }
    panic!(
        "no Python with kafka-python found: run `python3 -m venv .venv && .venv/bin/pip install kafka-python lz4 zstandard` \
         (scripts/test does this), or set STREAMHOUSE_TEST_PYTHON"
    );
}

/// Picks a free TCP port on 127.0.0.1 that this process has not handed
/// out before. It comes from below the kernel's ephemeral range (32768 and
/// up), so an outgoing connection's source port cannot take it between the
/// pick and the server's bind: `weed mini` picks ten ports and opens
/// connections between its parts while it starts them one by one.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, RandomState};
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let seed = RandomState::new();
    for i in 0u32..10_000 {
        let port = 20_000 + (seed.hash_one((std::process::id(), i)) % 12_000) as u16;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 between 20000 and 32000");
}

/// Polls `check` until it returns `Some`, failing the test naming `what`
/// once `within` has passed.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Follows `url` over SSE until `want` records arrived; their offsets and
/// values. Any event but `records` fails the test.
pub async fn follow_sse(url: String, want: usize) -> Vec<(i64, serde_json::Value)> {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;
    let r = client()
        .get(url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("connect");
    assert_eq!(r.status(), 200);
    let mut events = Box::pin(r.bytes_stream().eventsource());
    let mut got = Vec::new();
    while got.len() < want {
        let e = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("well-formed event");
        assert_eq!(e.event, "records", "{}", e.data);
        let data: serde_json::Value = serde_json::from_str(&e.data).expect("JSON data");
        for r in data["records"].as_array().expect("records") {
            got.push((r["offset"].as_i64().expect("offset"), r["value"].clone()));
        }
    }
    got
}
