//! Handler work: the CPU a server spends on each message before echoing it.
//!
//! A real server computes something per request; an echo server computes nothing, which hides
//! the first thing that separates the models: an event loop or a runtime worker that computes
//! inline stalls every other connection it serves, while a thread per connection or a separate
//! pool does not. [`Work`] puts a known amount of real CPU into every model's echo path, so the
//! suite can show that. Every model calls [`Work::apply`] once per chunk it reads (one message
//! in the request-response loads, where each read returns one message) and echoes the chunk
//! only after it returns.
//!
//! The work hashes the chunk over and over until the time is spent; it never sleeps, so it
//! costs a core exactly as a computing handler would. The `--handicap-instructions` testing aid
//! adds a fixed number of instructions instead of a time, for the counted comparison (`ab
//! --metric instructions`), which cannot see a busy wait's length but sees every instruction.

use std::time::{Duration, Instant};

/// CPU spent per message; zero (the default) means a plain echo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// CPU time per message.
    pub per_message: Duration,
    /// Extra instructions per message (the `--handicap-instructions` testing aid): exactly this
    /// many more than a build given none on x86-64 (a one-instruction `loop`), the even number
    /// below it on AArch64 (a two-instruction loop), about that many elsewhere.
    pub instructions: u64,
}

/// Bytes hashed between two clock reads: small, so short work (a microsecond or less, as the
/// `--handicap-ns` testing aid asks for) overshoots by little, whatever the payload size.
const ROUND: usize = 64;

impl Work {
    /// Work of `per_message` per message.
    pub const fn new(per_message: Duration) -> Self {
        Self {
            per_message,
            instructions: 0,
        }
    }

    /// This work plus `instructions` more per message.
    pub const fn with_instructions(self, instructions: u64) -> Self {
        Self {
            instructions,
            ..self
        }
    }

    /// Whether there is nothing to do (the echo path then skips the call's clock reads).
    pub fn is_none(&self) -> bool {
        self.per_message.is_zero() && self.instructions == 0
    }

    /// Spends [`Work::per_message`] of CPU hashing `message`, never sleeping, and returns the
    /// hash (so the compiler cannot remove the work).
    pub fn apply(&self, message: &[u8]) -> u64 {
        // The handicap's loop runs on every message, asked for or not: a server given none
        // then takes the same path as one given K but for the loop's K turns, so a counted
        // comparison of the two sees exactly K more per message, not K plus the cost of
        // branching to the loop (at ~600 instructions a message, 0.5% is 3 instructions).
        spend_instructions(self.instructions);
        if self.per_message.is_zero() {
            return 0;
        }
        let deadline = Instant::now() + self.per_message;
        let sample = &message[..message.len().min(ROUND)];
        // FNV-1a over the message's first bytes, folded again each round.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut rounds: u64 = 0;
        loop {
            for &byte in sample {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
            hash ^= rounds;
            rounds += 1;
            if Instant::now() >= deadline {
                return std::hint::black_box(hash);
            }
        }
    }
}

/// Runs `instructions` more user-space instructions than it does for zero, in assembly where
/// it can be, so the optimizer can neither remove nor reshape the loop. On x86-64 that is
/// exactly `instructions`: `jrcxz` skips the loop for zero (one instruction, executed either
/// way), and `loop` decrements and branches in one instruction. AArch64 has no such
/// instruction: there it is a two-instruction count-down over half as many turns.
fn spend_instructions(instructions: u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the loop only counts rcx down to zero; it touches no memory and no flags the
    // compiler relies on (asm! assumes flags are clobbered unless told otherwise).
    unsafe {
        std::arch::asm!(
            "jrcxz 3f",
            "2:",
            "loop 2b",
            "3:",
            inout("rcx") instructions => _,
            options(nomem, nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above: a register counted down to zero, no memory touched.
    unsafe {
        std::arch::asm!(
            "cbz {n}, 3f",
            "2:",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "3:",
            n = inout(reg) instructions / 2 => _,
            options(nomem, nostack),
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let mut n = instructions;
        while std::hint::black_box(n) > 0 {
            n -= 1;
        }
    }
}

/// What every model's per-connection echo needs: its buffer size and the work per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EchoPath {
    /// Bytes of buffer per connection (at least 1).
    pub(crate) buffer_size: usize,
    /// CPU per message before its echo.
    pub(crate) work: Work,
}

impl EchoPath {
    /// The echo path `config` asks for.
    pub(crate) fn of(config: &crate::ServerConfig) -> Self {
        Self {
            buffer_size: config.buffer_size.max(1),
            work: config.work,
        }
    }

    /// Does the per-message work on a chunk just read, before it is echoed.
    pub(crate) fn on_message(&self, message: &[u8]) {
        self.work.apply(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_work_returns_at_once() {
        let started = Instant::now();
        for _ in 0..1000 {
            Work::default().apply(b"hello");
        }
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn work_takes_at_least_its_time_and_never_gives_up_the_core() {
        let work = Work::new(Duration::from_millis(20));
        let before = thread_usage();
        let started = Instant::now();
        work.apply(&[7; 4096]);
        let elapsed = started.elapsed();
        let after = thread_usage();
        assert!(elapsed >= Duration::from_millis(20), "took {elapsed:?}");
        // It computes rather than sleeps. The share of the wall time that is this thread's CPU
        // depends on what else the machine runs (CI runs tests in parallel on two cores), so
        // the test asks the scheduler instead: a thread that sleeps or blocks gives up its
        // core voluntarily at least once; one that computes is only ever preempted.
        assert_eq!(
            after.voluntary_switches - before.voluntary_switches,
            0,
            "the work slept or blocked"
        );
        assert!(after.cpu > before.cpu, "no CPU spent in {elapsed:?}");
    }

    #[test]
    fn instructions_alone_are_work_and_take_no_clock() {
        let work = Work::default().with_instructions(1_000);
        assert!(!work.is_none());
        assert_eq!(work.per_message, Duration::ZERO);
        // A billion instructions take a while even on a fast core; a thousand take nothing.
        let started = Instant::now();
        work.apply(b"hello");
        assert!(started.elapsed() < Duration::from_millis(50));
        let started = Instant::now();
        Work::default()
            .with_instructions(400_000_000)
            .apply(b"hello");
        assert!(
            started.elapsed() >= Duration::from_micros(500),
            "400M instructions in {:?}: the loop was removed",
            started.elapsed()
        );
    }

    #[test]
    fn empty_messages_still_spend_the_time() {
        let started = Instant::now();
        Work::new(Duration::from_millis(5)).apply(&[]);
        assert!(started.elapsed() >= Duration::from_millis(5));
    }

    struct ThreadUsage {
        cpu: Duration,
        voluntary_switches: i64,
    }

    fn thread_usage() -> ThreadUsage {
        // SAFETY: an all-zero rusage is a valid value of the plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes into the struct we own.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
        assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
        let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        ThreadUsage {
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            voluntary_switches: usage.ru_nvcsw,
        }
    }
}
