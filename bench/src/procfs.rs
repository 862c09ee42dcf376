//! Reading a process's resource use from /proc: CPU time, memory, threads, context switches and
//! syscall counts. Linux only, like the rest of the suite.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A snapshot of a process's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
    /// Peak resident memory (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Threads.
    pub threads: u64,
    /// Voluntary context switches, summed over the threads alive now.
    pub voluntary_switches: u64,
    /// Involuntary context switches, summed over the threads alive now.
    pub involuntary_switches: u64,
    /// read-like syscalls (`syscr` in /proc/PID/io; needs permission to read it).
    pub syscalls_read: u64,
    /// write-like syscalls (`syscw`).
    pub syscalls_write: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

impl ProcSample {
    /// Reads process `pid`; `None` if it is gone.
    pub fn read(pid: u32) -> Option<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let mut sample = ProcSample {
            // /proc's figure counts in clock ticks (10 ms): too coarse for a short window, so
            // the process CPU clock (nanoseconds, exited threads included) is preferred.
            cpu: process_cpu_clock(pid)
                .unwrap_or_else(|| Duration::from_secs_f64(ticks / clock_ticks())),
            rss_kib: status_field(&status, "VmRSS:").unwrap_or(0),
            peak_rss_kib: status_field(&status, "VmHWM:").unwrap_or(0),
            threads: status_field(&status, "Threads:").unwrap_or(0),
            ..ProcSample::default()
        };
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                if let Ok(s) = std::fs::read_to_string(task.path().join("status")) {
                    sample.voluntary_switches +=
                        status_field(&s, "voluntary_ctxt_switches:").unwrap_or(0);
                    sample.involuntary_switches +=
                        status_field(&s, "nonvoluntary_ctxt_switches:").unwrap_or(0);
                }
            }
        }
        if let Ok(io) = std::fs::read_to_string(format!("/proc/{pid}/io")) {
            sample.syscalls_read = status_field(&io, "syscr:").unwrap_or(0);
            sample.syscalls_write = status_field(&io, "syscw:").unwrap_or(0);
        }
        Some(sample)
    }
}

/// What a server process used between two samples, as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerUsage {
    /// The server's process id.
    pub pid: u32,
    /// CPU seconds used in the measured window.
    pub cpu_s: f64,
    /// `cpu_s` over the window: 1.0 is one core busy.
    pub cpu_cores: f64,
    /// Peak resident memory over the server's life, KiB.
    pub peak_rss_kib: u64,
    /// Resident memory at the end of the window, KiB.
    pub rss_kib: u64,
    /// Threads at the end of the window.
    pub threads: u64,
    /// Context switches in the window (voluntary + involuntary).
    pub context_switches: u64,
    /// read-like plus write-like syscalls in the window (0 when /proc/PID/io is unreadable).
    pub syscalls: u64,
}

impl ServerUsage {
    /// The usage between `before` and `after` over `window`.
    pub fn between(pid: u32, before: &ProcSample, after: &ProcSample, window: Duration) -> Self {
        let cpu_s = after.cpu.saturating_sub(before.cpu).as_secs_f64();
        let switches = |s: &ProcSample| s.voluntary_switches + s.involuntary_switches;
        Self {
            pid,
            cpu_s,
            cpu_cores: cpu_s / window.as_secs_f64().max(1e-9),
            peak_rss_kib: after.peak_rss_kib,
            rss_kib: after.rss_kib,
            threads: after.threads,
            context_switches: switches(after).saturating_sub(switches(before)),
            syscalls: (after.syscalls_read + after.syscalls_write)
                .saturating_sub(before.syscalls_read + before.syscalls_write),
        }
    }
}

/// Process `pid`'s CPU time (every thread, those that exited included) in nanoseconds, from its
/// POSIX CPU-time clock; `None` if the clock cannot be read.
pub fn process_cpu_clock(pid: u32) -> Option<Duration> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: both calls write only into the locals they are given.
    unsafe {
        let mut clock: libc::clockid_t = 0;
        if libc::clock_getcpuclockid(pid, &mut clock) != 0 {
            return None;
        }
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(clock, &mut ts) != 0 {
            return None;
        }
        Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
}

/// The calling process's total CPU time (all threads), from getrusage.
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed local struct.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec * 1000) as u32);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The CPUs the calling thread may run on (its affinity mask), in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data, filled by sched_getaffinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..crate::config::default_threads()).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// Pins the calling thread (and the threads it spawns afterwards) to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET indexes within its fixed size (checked below).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            if cpu >= libc::CPU_SETSIZE as usize {
                return Err(std::io::Error::other(format!("CPU {cpu} is out of range")));
            }
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let sample = ProcSample::read(std::process::id()).expect("own /proc entry");
        assert!(sample.rss_kib > 0);
        assert!(sample.peak_rss_kib >= sample.rss_kib);
        assert!(sample.threads >= 1);
        assert!(ProcSample::read(u32::MAX).is_none());
    }

    #[test]
    fn reads_another_process_cpu_clock_in_nanoseconds() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .spawn()
            .expect("sh runs");
        let pid = child.id();
        let first = process_cpu_clock(pid).expect("a child's CPU clock is readable");
        let _ = child.wait();
        assert!(first < Duration::from_secs(30));
        assert!(process_cpu_clock(u32::MAX).is_none());
        // Not a multiple of a 10 ms tick, as /proc/PID/stat's figure would be.
        let own = process_cpu_clock(std::process::id()).expect("own clock");
        assert!(!own.subsec_nanos().is_multiple_of(10_000_000));
    }
}
