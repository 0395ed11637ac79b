//! Ports for the gateway's listeners.

use std::net::TcpListener as StdListener;

/// A port for a listener of the gateway under test. Taken below the
/// kernel's ephemeral range (`ip_local_port_range`, 32768+ by default), so
/// that no outgoing connection of a parallel test can be given it between
/// this check and the bind; never the same twice in one process; free when
/// checked.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static TAKEN: Mutex<Option<std::collections::HashSet<u16>>> = Mutex::new(None);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (low, high) = if ephemeral_start > 12000 { (10000u16, ephemeral_start - 1) } else { (ephemeral_start, 65000) };
    let span = u64::from(high - low);
    // A process-specific start, then a walk: cheap, and spread across test binaries.
    let seed = u64::from(std::process::id()).wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(Default::default);
    for i in 0..span {
        let port = low + ((seed.wrapping_add(i.wrapping_mul(7919))) % span) as u16;
        if taken.contains(&port) {
            continue;
        }
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    let l = StdListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

/// Ports of one gateway.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Adapter ADS.
    pub xds: u16,
    /// Adapter management API.
    pub mgmt: u16,
    /// Envoy HTTP listener.
    pub http: u16,
    /// Envoy HTTPS listener.
    pub https: u16,
    /// Enforcer ext_authz (nothing listens unless the enforcer is started).
    pub enforcer: u16,
    /// Enforcer access-log service.
    pub als: u16,
    /// Enforcer HTTPS (/testkey, /jwks, admin API).
    pub enforcer_https: u16,
    /// Adapter metrics (`GET /metrics`).
    pub adapter_metrics: u16,
    /// Enforcer metrics (`GET /metrics`).
    pub enforcer_metrics: u16,
    /// The enforcer's metrics as its dynamic module in Envoy serves them
    /// (`ENFORCER_MODULE_METRICS_ADDRESS`; module mode only).
    pub module_metrics: u16,
    /// Envoy admin (loopback).
    pub router_admin: u16,
    /// Envoy stats listener (`/stats/prometheus`, `/ready`).
    pub router_stats: u16,
}
