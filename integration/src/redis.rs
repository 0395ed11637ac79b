//! A real `redis-server` for tests on an ephemeral port (no persistence),
//! killed on drop. `.ci/run` installs it (Debian's `redis-server`).

use std::path::Path;
use std::process::Command;

use crate::ports::free_port;
use crate::process::Proc;
use crate::wait::eventually;

/// A running `redis-server`.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    proc: Option<Proc>,
    log_dir: std::path::PathBuf,
    starts: u32,
}

impl RedisServer {
    /// Starts one on a free port; logs go to `log_dir`.
    pub async fn start(log_dir: &Path) -> RedisServer {
        let mut r = RedisServer { port: free_port(), proc: None, log_dir: log_dir.to_path_buf(), starts: 0 };
        r.restart().await;
        r
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub async fn restart(&mut self) {
        self.starts += 1;
        let log = self.log_dir.join(format!("redis-{}-{}.log", self.port, self.starts));
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        self.proc = Some(Proc::spawn_group("redis-server", &mut cmd, log));
        let port = self.port;
        eventually("redis-server to answer PING", || async move {
            let out = cli_at(port, &["PING"]);
            if out.trim() == "PONG" { Ok(()) } else { Err(out) }
        })
        .await;
    }

    /// Kills it (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Runs `redis-cli` against it; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        cli_at(self.port, args)
    }
}

fn cli_at(port: u16, args: &[&str]) -> String {
    match Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        Err(e) => panic!("cannot run redis-cli (apt-get install redis-server): {e}"),
    }
}
