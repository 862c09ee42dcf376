//! The machine and build a result came from, recorded in every report so numbers are never
//! separated from where they were measured.

use serde::{Deserialize, Serialize};

/// Where and with what a run was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// echo-bench's version.
    pub tool_version: String,
    /// The git revision the tool was built from (`-dirty` with local changes).
    pub git_revision: String,
    /// The compiler that built it.
    pub rustc: String,
    /// The CPU model.
    pub cpu_model: String,
    /// Cores online on the machine.
    pub cores: usize,
    /// Cores this process may run on.
    pub cores_available: usize,
    /// Memory on the machine, MiB.
    pub memory_mib: u64,
    /// The kernel release.
    pub kernel: String,
    /// The host name.
    pub host: String,
    /// When the run was made, RFC 3339, UTC.
    pub time: String,
}

impl Meta {
    /// Reads the current machine and build.
    pub fn current() -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(1);
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        Self {
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision: env!("ECHO_BENCH_GIT_REVISION").to_owned(),
            rustc: env!("ECHO_BENCH_RUSTC").to_owned(),
            cpu_model,
            cores,
            cores_available: crate::config::default_threads(),
            memory_mib,
            kernel: read("/proc/sys/kernel/osrelease"),
            host: read("/proc/sys/kernel/hostname"),
            time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}
