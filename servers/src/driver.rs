//! Which kernel interface a server waits on: [`Driver`]. Every model states the driver it uses
//! ([`crate::EchoServer::driver`]), and a running server the one it really got
//! ([`crate::ServerHandle::driver`]): runtimes such as monoio and compio fall back from io_uring
//! to epoll where the kernel refuses io_uring (seccomp in Docker's default profile, some CI
//! runners), and a measurement of "io_uring" that ran on epoll must say so.
//!
//! Also here: whether this process may use io_uring at all ([`io_uring_refused`]), asked once and
//! shared by every io_uring model, with [`DISABLE_IO_URING_ENV`] to exercise the refusal on a
//! machine that allows io_uring.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Set (to anything) to make every io_uring path act as on a kernel that refuses io_uring: the
/// models with a fallback use it, the others report themselves unavailable.
pub const DISABLE_IO_URING_ENV: &str = "ECHO_SERVERS_DISABLE_IO_URING";

/// How a server learns that a socket can make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Driver {
    /// No multiplexing: a thread (or coroutine) blocks in `read`/`write`/`accept` itself.
    Blocking,
    /// `poll(2)` over every descriptor, the whole set passed on every wait.
    Poll,
    /// epoll readiness (directly, or through mio, tokio, polling or a coroutine scheduler).
    Epoll,
    /// io_uring completions: the kernel does the I/O and reports it done.
    IoUring,
}

impl Driver {
    /// Every driver.
    pub const ALL: [Driver; 4] = [
        Driver::Blocking,
        Driver::Poll,
        Driver::Epoll,
        Driver::IoUring,
    ];

    /// The name shown in `--list`, in the second line a server prints and in run.json.
    pub const fn name(self) -> &'static str {
        match self {
            Driver::Blocking => "blocking",
            Driver::Poll => "poll",
            Driver::Epoll => "epoll",
            Driver::IoUring => "io_uring",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no driver's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDriver(pub String);

impl fmt::Display for UnknownDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Driver::ALL.iter().map(|d| d.name()).collect();
        write!(f, "'{}' is not a driver ({})", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownDriver {}

impl FromStr for Driver {
    type Err = UnknownDriver;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Driver::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| UnknownDriver(s.to_owned()))
    }
}

/// Why this process may not use io_uring, or `None` when it may: disabled by
/// [`DISABLE_IO_URING_ENV`], or refused by the kernel (asked once: the answer does not change
/// while the process runs).
pub fn io_uring_refused() -> Option<String> {
    if std::env::var_os(DISABLE_IO_URING_ENV).is_some() {
        return Some(format!("io_uring disabled by {DISABLE_IO_URING_ENV}"));
    }
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            io_uring::IoUring::new(8)
                .err()
                .map(|err| format!("the kernel refuses io_uring: {err}"))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::Driver;

    #[test]
    fn a_driver_reads_back_from_its_name_and_nothing_else_does() {
        for driver in Driver::ALL {
            assert_eq!(driver.name().parse::<Driver>(), Ok(driver));
        }
        let err = "kqueue".parse::<Driver>().unwrap_err().to_string();
        assert!(
            err.contains("'kqueue' is not a driver") && err.contains("io_uring"),
            "{err}"
        );
    }
}
