//! Process plumbing shared by the adapter and the enforcer.
//!
//! * [`Supervisor`]: the background tasks a process cannot do without (its
//!   servers, its watchers, its streams). They are meant to run until the
//!   process stops; the first one that ends, by returning or by panicking,
//!   is reported with its name and the reason, and the process stops with a
//!   clear message. Its own supervisor (Kubernetes, Compose, systemd) then
//!   starts it again, in a known state, instead of leaving it half alive.
//! * [`shutdown_signal`]: SIGTERM or Ctrl-C.
//! * [`metrics`]: Prometheus metrics on `GET /metrics`.
//! * [`logging`]: text or JSON logs whose level changes at run time.
//! * [`failpoint`]: a named point where a debug build panics on request
//!   (`GATEWAY_FAILPOINT=<name>`), so tests can prove that a dying task
//!   stops the process; [`delay_point`] makes a named step slow
//!   (`GATEWAY_DELAY=<name>=<ms>`). Release builds compile both away.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;

use tokio::task::{Id, JoinSet};

pub mod logging;
pub mod metrics;

/// A supervised task that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDied {
    /// The task's name.
    pub task: &'static str,
    /// Why: the panic message, the error it returned, or that it returned.
    pub reason: String,
}

impl fmt::Display for TaskDied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "background task \"{}\" stopped: {}", self.task, self.reason)
    }
}

impl std::error::Error for TaskDied {}

/// Tasks that must run as long as the process does.
#[derive(Default)]
pub struct Supervisor {
    set: JoinSet<Result<(), String>>,
    names: HashMap<Id, &'static str>,
}

impl Supervisor {
    /// An empty supervisor.
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// Runs `task`, which should never end.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_fallible(name, async move {
            task.await;
            Err::<(), String>("it returned".into())
        });
    }

    /// Runs `task`, which should never end; an `Err` is the reason it stopped.
    /// An `Ok` counts as an end too (it returned).
    pub fn spawn_fallible<F, E>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        let handle = self.set.spawn(async move {
            match task.await {
                Ok(()) => Err("it returned".to_string()),
                Err(e) => Err(e.to_string()),
            }
        });
        self.names.insert(handle.id(), name);
    }

    /// Waits for the first task to end and says which and why. With no tasks
    /// it never resolves.
    pub async fn died(&mut self) -> TaskDied {
        loop {
            let Some(joined) = self.set.join_next_with_id().await else {
                return std::future::pending().await;
            };
            let (id, reason) = match joined {
                Ok((id, Err(reason))) => (id, reason),
                Ok((id, Ok(()))) => (id, "it returned".to_string()),
                Err(e) if e.is_panic() => {
                    let id = e.id();
                    (id, format!("panicked: {}", panic_message(e.into_panic())))
                }
                // Cancelled: only by abort_all, when the process is stopping anyway.
                Err(_) => continue,
            };
            let task = self.names.remove(&id).unwrap_or("unnamed");
            return TaskDied { task, reason };
        }
    }

    /// Stops every task.
    pub fn abort_all(&mut self) {
        self.set.abort_all();
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "(no message)".to_string(),
        },
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

/// Panics when this is a debug build and `GATEWAY_FAILPOINT` names `name`.
/// Integration tests use it to kill a chosen task; release builds ignore it.
#[inline]
pub fn failpoint(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("GATEWAY_FAILPOINT").is_ok_and(|v| v.split(',').any(|p| p.trim() == name)) {
        panic!("failpoint {name} (GATEWAY_FAILPOINT)");
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Sleeps when this is a debug build and `GATEWAY_DELAY` holds `name=<ms>`
/// (entries separated by commas): tests make a step slow (a disk write, say)
/// to prove that nothing else waits for it. Release builds compile it away.
#[inline]
pub fn delay_point(name: &str) {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var("GATEWAY_DELAY") {
        let ms = v
            .split(',')
            .filter_map(|e| e.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .and_then(|(_, ms)| ms.parse::<u64>().ok());
        if let Some(ms) = ms {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_first_task_to_end_is_named_with_its_reason() {
        let mut s = Supervisor::new();
        s.spawn("forever", std::future::pending());
        s.spawn("watcher", async { tokio::time::sleep(Duration::from_millis(10)).await });
        let died = s.died().await;
        assert_eq!(died, TaskDied { task: "watcher", reason: "it returned".into() });
        assert_eq!(died.to_string(), "background task \"watcher\" stopped: it returned");

        s.spawn("loader", async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("bad project");
        });
        assert_eq!(s.died().await, TaskDied { task: "loader", reason: "panicked: bad project".into() });

        s.spawn_fallible("server", async { Err::<(), _>("address in use") });
        assert_eq!(s.died().await, TaskDied { task: "server", reason: "address in use".into() });
        s.abort_all();
    }

    #[tokio::test(start_paused = true)]
    async fn with_only_healthy_tasks_nothing_is_reported() {
        let mut s = Supervisor::new();
        s.spawn("forever", std::future::pending());
        let waited = tokio::time::timeout(Duration::from_secs(3600), s.died()).await;
        assert!(waited.is_err(), "{waited:?}");
    }
}
