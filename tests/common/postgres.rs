//! A real PostgreSQL server for tests: a fresh cluster in a temporary
//! directory on a random port, run as the `postgres` OS user when the
//! tests run as root (initdb and postgres refuse root). Stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::free_port;

pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    as_postgres: bool,
    running: bool,
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The PostgreSQL server binaries: `STREAMHOUSE_TEST_PG_BIN`, else
/// `pg_config --bindir`, else the Debian location of version 15.
pub fn bin_dir() -> PathBuf {
    if let Ok(p) = std::env::var("STREAMHOUSE_TEST_PG_BIN") {
        return PathBuf::from(p);
    }
    let debian = Path::new("/usr/lib/postgresql/15/bin");
    if debian.join("initdb").exists() {
        return debian.to_path_buf();
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    panic!(
        "PostgreSQL server binaries not found: install them (`apt-get install postgresql`) \
         or set STREAMHOUSE_TEST_PG_BIN to the directory holding initdb and pg_ctl"
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    /// Creates and starts a fresh server.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown of the test directory to postgres failed");
        }
        let mut pg = Postgres {
            bin,
            dir,
            port: free_port(),
            as_postgres,
            running: false,
        };
        let data = pg.data_dir();
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "streamhouse",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.first_start();
        pg
    }

    /// One server for every test of this test binary, started on first
    /// use. A watchdog process stops it and removes its files once this
    /// process is gone, since statics are never dropped.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(|| {
            let pg = Postgres::start();
            pg.stop_after(std::process::id());
            pg
        })
    }

    // The watchdog outlives this process by design: nothing here waits for it.
    #[allow(clippy::zombie_processes)]
    fn stop_after(&self, pid: u32) {
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let stop = format!("{pg_ctl} stop -D {} -m immediate -w", self.data_dir());
        let stop = if self.as_postgres {
            format!("runuser -u postgres -- {stop}")
        } else {
            stop
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {}",
            self.dir.path().display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the PostgreSQL watchdog");
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).current_dir(self.dir.path());
        cmd.output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"))
    }

    /// Starts (or restarts) the server on the same port and data.
    pub fn start_server(&mut self) {
        if let Err(e) = self.try_start_server() {
            panic!("{e}");
        }
    }

    /// Starts the server for the first time, on another free port when the
    /// one picked was taken meanwhile by another test's server.
    fn first_start(&mut self) {
        for _ in 0..5 {
            match self.try_start_server() {
                Ok(()) => return,
                Err(e) if e.contains("Address already in use") => self.port = free_port(),
                Err(e) => panic!("{e}"),
            }
        }
        self.start_server();
    }

    fn try_start_server(&mut self) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log").display().to_string();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off \
             -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let out = self.run(
            "pg_ctl",
            &[
                "start", "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &opts,
            ],
        );
        if !out.status.success() {
            return Err(format!(
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        self.running = true;
        Ok(())
    }

    /// Stops the server at once (in-flight transactions are lost).
    pub fn stop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let _ = self.run("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w"]);
            self.running = false;
        }
    }

    /// Runs `sql` with psql against the database at `url`, in the
    /// background (to hold locks while a test acts).
    pub fn psql_spawn(&self, url: &str, sql: &str) -> std::process::Child {
        Command::new(self.bin.join("psql"))
            .args([url, "-q", "-c", sql])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run psql")
    }

    fn url_for(&self, db: &str) -> String {
        format!("postgres://streamhouse@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; optionally SERIALIZABLE by default, which is
    /// how CockroachDB runs every transaction.
    pub fn database(&self, serializable: bool) -> String {
        let name = format!("db{}", DATABASES.fetch_add(1, Ordering::SeqCst));
        let mut sql = format!("CREATE DATABASE {name};");
        if serializable {
            sql.push_str(&format!(
                " ALTER DATABASE {name} SET default_transaction_isolation = 'serializable';"
            ));
        }
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let out = Command::new(self.bin.join("psql"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "streamhouse",
                    "-d",
                    "postgres",
                    "-c",
                    stmt,
                ])
                .output()
                .expect("run psql");
            assert!(
                out.status.success(),
                "{stmt}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.url_for(&name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
