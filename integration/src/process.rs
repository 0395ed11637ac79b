//! Child processes: logged to a file, killed on drop (also when a test
//! panics, with the end of their log printed).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::wait::patience;

/// The command for `bin`, run under the program the environment variable
/// `wrap_var` names when it is set (a profiler such as heaptrack; `bin` and
/// its arguments follow it), and whether it is so wrapped: stop a wrapped
/// process with [`Proc::graceful`] so the wrapper can write its data.
pub(crate) fn maybe_wrapped(wrap_var: &str, bin: PathBuf) -> (Command, bool) {
    match std::env::var_os(wrap_var) {
        Some(w) => {
            let mut c = Command::new(w);
            c.arg(bin);
            (c, true)
        }
        None => (Command::new(bin), false),
    }
}

/// A child process killed on drop.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    /// Leads its own process group, killed whole (a script and its children).
    group: bool,
    /// Stopped with SIGTERM and a bounded wait before SIGKILL: a profiler
    /// wrapping the program (heaptrack) writes its data only on a clean exit.
    graceful: bool,
}

impl Proc {
    pub(crate) fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { name: name.to_string(), child, log, group: false, graceful: false }
    }

    /// Starts `cmd` as the leader of a new process group: killing it (drop,
    /// [`Proc::kill`]) kills the group, so a script's children go with it.
    pub fn spawn_group(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let mut p = Proc::spawn(name, cmd, log);
        p.group = true;
        p
    }

    /// Makes [`Proc::kill`] (and drop) send SIGTERM first and wait up to
    /// 60 s for the exit.
    pub fn graceful(mut self) -> Proc {
        self.graceful = true;
        self
    }

    /// Sends SIGTERM (to the process only, as an orchestrator does).
    pub fn terminate(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
    }

    /// Waits (bounded) for the exit and returns the exit code.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        wait_exit(self).await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills with SIGKILL (after SIGTERM and a wait when graceful) and waits.
    pub fn kill(&mut self) {
        if self.graceful && self.running() {
            self.terminate();
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if self.group {
            let _ =
                Command::new("kill").args(["-KILL", "--", &format!("-{}", self.pid())]).stderr(Stdio::null()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- last lines of {} ----", self.name);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Waits (bounded) for a process to exit by itself; its exit code.
pub(crate) async fn wait_exit(proc: &mut Proc) -> Option<i32> {
    let deadline = Instant::now() + patience();
    loop {
        match proc.child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => panic!("{} did not exit:\n{}", proc.name, proc.log()),
        }
    }
}
