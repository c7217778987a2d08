//! A fleet: agent processes sharing one PostgreSQL database and one
//! S3-API bucket (SeaweedFS), as a cluster runs, all started by the test
//! on 127.0.0.1 with random ports. Agents can be killed, restarted (on the
//! same port, so clients keep their URLs) and added; the servers can be
//! stopped and started for outages.

use super::postgres::Postgres;
use super::seaweed::Seaweed;
use super::{AgentProcess, Api, free_port};

pub struct Fleet {
    pub pg: Postgres,
    pub s3: Seaweed,
    /// The metadata URL every agent uses.
    pub metadata_url: String,
    prefix: String,
    extra: Vec<String>,
    agents: Vec<Option<AgentProcess>>,
    dirs: Vec<tempfile::TempDir>,
    ports: Vec<u16>,
}

impl Fleet {
    /// Starts the servers and `n` agents, each with the `extra` flags too;
    /// objects go under `prefix` in the bucket.
    pub async fn start(n: usize, prefix: &str, extra: &[&str]) -> Fleet {
        let pg = Postgres::start();
        let metadata_url = pg.database(false);
        let s3 = Seaweed::start("fleet").await;
        let mut fleet = Fleet {
            pg,
            s3,
            metadata_url,
            prefix: prefix.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            agents: Vec::new(),
            dirs: Vec::new(),
            ports: Vec::new(),
        };
        for _ in 0..n {
            fleet.add();
        }
        fleet
    }

    /// The flags of agent `i`.
    fn flags(&self, i: usize) -> Vec<String> {
        let mut flags = vec![
            "--listen".to_string(),
            format!("127.0.0.1:{}", self.ports[i]),
            "--data-dir".to_string(),
            self.dirs[i].path().display().to_string(),
            "--metadata-url".to_string(),
            self.metadata_url.clone(),
        ];
        flags.extend(self.s3.agent_flags(&self.prefix));
        flags.extend(self.extra.iter().cloned());
        // Agents that share a peer secret each advertise their own URL.
        if self.extra.iter().any(|f| f == "--peer-secret") {
            flags.push("--advertise-url".to_string());
            flags.push(format!("http://127.0.0.1:{}", self.ports[i]));
        }
        flags
    }

    fn spawn(&self, i: usize) -> AgentProcess {
        let flags = self.flags(i);
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        AgentProcess::start(&refs, &[])
    }

    /// Starts one more agent; returns its index.
    pub fn add(&mut self) -> usize {
        self.dirs.push(tempfile::tempdir().expect("tempdir"));
        self.ports.push(free_port());
        let i = self.dirs.len() - 1;
        let agent = self.spawn(i);
        self.agents.push(Some(agent));
        i
    }

    /// Agent `i`, which must be running.
    pub fn agent(&self, i: usize) -> &AgentProcess {
        self.agents[i].as_ref().expect("agent is running")
    }

    /// Typed calls to agent `i`.
    pub fn api(&self, i: usize) -> Api {
        self.agent(i).api()
    }

    /// Waits until every running agent listens to the others'
    /// announcements (its `streamhouse_watermark_feed_up` is 1): before
    /// that, a commit wakes it only at its next poll.
    pub async fn listening(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        for (i, agent) in self.agents.iter().enumerate() {
            let Some(agent) = agent else { continue };
            let api = agent.api();
            while api.metric("streamhouse_watermark_feed_up").await != 1.0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "agent {i} did not start listening for announcements within 30 s"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }

    /// The URL of every agent, running or not: an agent keeps its URL
    /// across restarts.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect()
    }

    /// Kills agent `i` with SIGKILL and waits for it to exit.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut a) = self.agents[i].take() {
            a.signal("KILL");
            let _ = a.wait_exit(std::time::Duration::from_secs(10));
        }
    }

    /// Starts agent `i` again with its flags and port.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.agents[i] = Some(self.spawn(i));
    }
}
