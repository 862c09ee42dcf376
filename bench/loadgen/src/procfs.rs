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

/// CPU time the machine spent on a set of CPUs, from /proc/stat (clock ticks, 10 ms).
///
/// Busy time includes interrupt and softirq time: on loopback that is mostly the traffic being
/// measured, and the kernel also charges it to the task it interrupted (measured here: a
/// 2-second ping-pong run spent a quarter of its CPU time in softirq, yet the two processes'
/// own clocks covered it). Minus the server's and the client's own time, the rest is what other
/// tasks took from the run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    /// User, nice, system, irq and softirq time on the CPUs.
    pub busy: Duration,
    /// Time the hypervisor gave the CPUs to someone else.
    pub steal: Duration,
    /// How many CPUs were counted.
    pub cpus: usize,
}

impl CpuTimes {
    /// Reads the CPUs in `cpus` (every CPU when `None`); `None` if /proc/stat is unreadable.
    pub fn read(cpus: Option<&[usize]>) -> Option<CpuTimes> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?, cpus)
    }

    /// Parses the text of /proc/stat.
    pub fn parse(stat: &str, cpus: Option<&[usize]>) -> Option<CpuTimes> {
        let tick = 1.0 / clock_ticks();
        let mut times = CpuTimes::default();
        for line in stat.lines() {
            let mut fields = line.split_whitespace();
            let Some(cpu) = fields.next().and_then(|name| name.strip_prefix("cpu")) else {
                continue;
            };
            let Ok(index) = cpu.parse::<usize>() else {
                continue;
            };
            if cpus.is_some_and(|set| !set.contains(&index)) {
                continue;
            }
            // user nice system idle iowait irq softirq steal
            let values: Vec<f64> = fields.take(8).filter_map(|v| v.parse().ok()).collect();
            if values.len() < 8 {
                return None;
            }
            let busy = values[0] + values[1] + values[2] + values[5] + values[6];
            times.busy += Duration::from_secs_f64(busy * tick);
            times.steal += Duration::from_secs_f64(values[7] * tick);
            times.cpus += 1;
        }
        (times.cpus > 0).then_some(times)
    }
}

/// What the machine's CPUs did during a measured window, beyond the server and the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineUsage {
    /// CPUs counted: those the server and the client may run on.
    pub cpus: usize,
    /// Cores busy on them in the window (user, nice, system, irq, softirq), all tasks.
    pub busy_cores: f64,
    /// Cores taken by the hypervisor (steal) in the window.
    pub steal_cores: f64,
    /// Cores used by anything but the server and the client, plus steal: the interference.
    pub other_cores: f64,
}

impl MachineUsage {
    /// The usage between two readings over `window`, given the CPU time the client and the
    /// server used in it. /proc/stat counts in 10 ms ticks, so `other_cores` carries an error of
    /// about one tick per CPU over the window; it is never below zero.
    pub fn between(
        before: &CpuTimes,
        after: &CpuTimes,
        own: Duration,
        window: Duration,
    ) -> MachineUsage {
        let secs = window.as_secs_f64().max(1e-9);
        let busy = after.busy.saturating_sub(before.busy).as_secs_f64();
        let steal = after.steal.saturating_sub(before.steal).as_secs_f64();
        MachineUsage {
            cpus: after.cpus,
            busy_cores: busy / secs,
            steal_cores: steal / secs,
            other_cores: ((busy - own.as_secs_f64()).max(0.0) + steal) / secs,
        }
    }
}

/// The CPUs process `pid` may run on (its affinity mask); `None` if it cannot be read.
pub fn cpus_of(pid: u32) -> Option<Vec<usize>> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: cpu_set_t is plain data, filled by sched_getaffinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
                .collect(),
        )
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

/// A set of CPUs, checked against the kernel's set size when built.
#[derive(Clone, Copy)]
pub struct CpuSet(libc::cpu_set_t);

impl std::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CpuSet")
    }
}

impl CpuSet {
    /// The set of `cpus`; an error names a CPU beyond what the kernel's set can hold.
    pub fn of(cpus: &[usize]) -> std::io::Result<CpuSet> {
        // SAFETY: cpu_set_t is plain data; CPU_SET indexes within its fixed size (checked).
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in cpus {
                if cpu >= libc::CPU_SETSIZE as usize {
                    return Err(std::io::Error::other(format!("CPU {cpu} is out of range")));
                }
                libc::CPU_SET(cpu, &mut set);
            }
            Ok(CpuSet(set))
        }
    }

    /// Pins the calling thread (and the threads and processes it starts afterwards) to the set.
    /// Only `sched_setaffinity`: safe between `fork` and `exec`.
    pub fn apply(&self) -> std::io::Result<()> {
        // SAFETY: the set is a valid cpu_set_t of the size given.
        let status =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) };
        if status != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Pins the calling thread (and the threads it spawns afterwards) to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    CpuSet::of(cpus)?.apply()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_count_only_the_cpus_asked_for() {
        let stat = "cpu  300 0 60 9000 5 7 9 4 0 0\n\
                    cpu0 100 0 20 4500 2 3 4 1 0 0\n\
                    cpu1 200 0 40 4500 3 4 5 3 0 0\nintr 1 2 3\n";
        let tick = |n: f64| Duration::from_secs_f64(n / clock_ticks());
        let all = CpuTimes::parse(stat, None).unwrap();
        assert_eq!((all.busy, all.steal, all.cpus), (tick(376.0), tick(4.0), 2));
        let one = CpuTimes::parse(stat, Some(&[1])).unwrap();
        assert_eq!((one.busy, one.steal, one.cpus), (tick(249.0), tick(3.0), 1));
        assert!(CpuTimes::parse(stat, Some(&[7])).is_none());
        let later = CpuTimes {
            busy: one.busy + Duration::from_millis(900),
            steal: one.steal + Duration::from_millis(100),
            cpus: 1,
        };
        let usage = MachineUsage::between(
            &one,
            &later,
            Duration::from_millis(500),
            Duration::from_secs(1),
        );
        assert!((usage.busy_cores - 0.9).abs() < 1e-9, "{usage:?}");
        assert!((usage.other_cores - 0.5).abs() < 1e-9, "{usage:?}");
        // Tick rounding can make the processes' own time exceed the busy time: never negative.
        let usage =
            MachineUsage::between(&one, &later, Duration::from_secs(2), Duration::from_secs(1));
        assert!((usage.other_cores - 0.1).abs() < 1e-9, "{usage:?}");
    }

    #[test]
    fn a_cpu_beyond_the_kernels_set_is_an_error_not_a_panic() {
        let err = CpuSet::of(&[0, libc::CPU_SETSIZE as usize]).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        assert!(CpuSet::of(&allowed_cpus()).is_ok());
    }

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
