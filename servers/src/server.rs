//! The contract every model implements: [`EchoServer`], its [`ServerConfig`], the
//! [`ServerHandle`] a running server is controlled through, and the [`Model`] registry.
//!
//! Everything outside this crate (the `echo-server` binary, the load generator's suite, the
//! criterion benches, the conformance tests) goes through these types and never names a model's
//! own type, so a model can be added or rewritten without touching any tool.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use echo_cli::{Endpoint, Transport};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use crate::config::ServerConfig;
use crate::driver::Driver;
pub use crate::health::{Ended, Health};
pub use crate::models::{Family, Model};

/// An echo server built on one concurrency model, serving TCP and Unix stream sockets, and UDP
/// datagrams where [`EchoServer::transports`] says so.
///
/// # What every implementation guarantees
///
/// The models differ only in how they schedule work; their observable behaviour is the same,
/// and the conformance suite (`servers/tests/conformance.rs`) checks each point for every model:
///
/// 1. **Listener.** Bound with `SO_REUSEADDR` and the configured listen backlog (default 4096,
///    not the 128 of `std`/`mio`/`tokio`'s plain `bind`, which stalls connect bursts). The same
///    for a Unix socket (`unix:PATH`), whose file is removed at shutdown, and at bind only when
///    it is a stale one no server listens on. Every point below holds on both stream transports.
/// 2. **Byte-exact echo.** Every byte read is written back, in order, whatever the segmentation;
///    partial writes are completed.
/// 3. **Half-close.** A client that shuts down its write side gets everything it sent echoed,
///    then the server closes the connection.
/// 4. **Misbehaving clients end only their own connection.** A reset, a vanished peer or garbage
///    never makes the server exit, panic, or stop serving others.
/// 5. **Bounded memory.** A client that sends but never reads costs at most one fixed buffer of
///    [`ServerConfig::buffer_size`] bytes in the server; the server then stops reading it.
/// 6. **Accept errors.** Per-connection errors (`ECONNABORTED`, `EPROTO`, ...) are retried at
///    once; resource errors (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) are logged at most once a
///    second and retried after a short backoff, on a timer: no busy spin, no exit, and the
///    clients already in the backlog are served as soon as descriptors free up.
/// 7. **Idle connections** do not stop other clients from being served, except where the model
///    by design cannot ([`Model::serves_concurrently`] says which).
/// 8. **Shutdown.** [`ServerHandle::shutdown`] stops accepting, closes every connection and
///    joins every thread the server started, within a few seconds, even with clients connected.
///    Threads a server starts are named `es<id>-<role>` (see [`ServerHandle::id`]); a runtime's
///    process-wide threads (async-std's global executor) are shared, not the server's own.
/// 9. **Datagrams** (the models whose [`EchoServer::transports`] include UDP). Each datagram is
///    sent back to its sender unchanged, whatever its size up to 65,507 bytes; what the kernel
///    drops when its buffer overflows is lost, never a crash; shutdown as in point 8. The other
///    models refuse a `udp:` address with an error naming those that serve it.
/// 10. **A peer costs only itself; a loop that dies says so.** An error caused by one peer (a
///     datagram from port 0, a reset, a refused send) drops that datagram or connection, and a
///     connection that writes as fast as it can is read at most `READS_PER_TURN` times before
///     the others served by the same thread get theirs. A thread or task that serves every
///     client (an event loop, an accept loop, a ring, a datagram loop) and ends for any reason
///     but shutdown reports it through [`ServerHandle::health`]; the `echo-server` binary then
///     exits 1, so it never goes on saying that it listens while nothing serves. `start`
///     returns only once everything the server serves with runs (its pool, its runtimes).
pub trait EchoServer: Send + Sync {
    /// Which model this is.
    fn model(&self) -> Model;

    /// The driver a server of this model started now waits on: its first choice, or its
    /// fallback where the first is refused (monoio and compio on epoll where io_uring is), so
    /// that a measurement says what really ran. [`ServerHandle::driver`] keeps it per server.
    fn driver(&self) -> Driver;

    /// The driver the model waits on where nothing is refused: [`EchoServer::driver`] but for
    /// a model with a fallback, so a report can mark a run that fell back.
    fn first_choice(&self) -> Driver {
        self.driver()
    }

    /// Binds the listener and starts serving in the background. Returns once the listener is
    /// bound, so a client may connect as soon as this returns.
    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle>;

    /// Whether the model can run on this machine; `Err` says why not, in a short phrase (only
    /// the io_uring models, where the kernel refuses io_uring). Every tool skips an unavailable model
    /// and says so, rather than failing.
    fn available(&self) -> Result<(), String> {
        Ok(())
    }

    /// How many connections the model serves at once under `config`, where it is bounded by
    /// design (`blocking`: one; `thread-pool`: its workers); `None` for any number. Connections
    /// beyond the limit wait, starved, until one ends.
    fn concurrency_limit(&self, config: &ServerConfig) -> Option<usize> {
        let _ = config;
        None
    }

    /// The transports the model serves: both stream transports always (they share one code
    /// path, see `net.rs`); UDP only where a datagram server means something for the model.
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Unix]
    }
}

/// The number of cores this process may run on (its affinity mask), at least 1.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What a model does to stop; implemented privately by each model.
pub(crate) trait StopServer: Send {
    /// Stops accepting, closes every connection, joins every thread.
    fn stop(self: Box<Self>) -> io::Result<()>;
}

/// A running server. Dropping it shuts the server down too, ignoring errors.
pub struct ServerHandle {
    model: Model,
    id: u64,
    endpoint: Endpoint,
    stop: Option<Box<dyn StopServer>>,
    /// A Unix listener's socket file, removed after the server has stopped (declared after
    /// `stop`, so dropping the handle stops the server first).
    socket_file: Option<crate::net::SocketFile>,
    /// Where the server's loops report their death (shared with them through [`ServerId`]).
    health: Health,
    /// The driver the server really waits on (the model's first choice unless it fell back).
    driver: Driver,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("model", &self.model)
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    pub(crate) fn new(
        model: Model,
        id: ServerId,
        endpoint: Endpoint,
        stop: Box<dyn StopServer>,
    ) -> Self {
        Self {
            model,
            id: id.number,
            socket_file: crate::net::SocketFile::of(&endpoint),
            endpoint,
            stop: Some(stop),
            health: id.health,
            driver: model.server().driver(),
        }
    }

    /// The driver the server really waits on ([`EchoServer::driver`] when it started).
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The server's health: whether one of its loops has died, and a way to wait for that or
    /// for an interrupt ([`Health::wait`]).
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Where the server listens, in the tools' address syntax (with the real port when port 0
    /// was asked for): what `listening on` prints and `--target` takes.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The IP address and port the server listens on (TCP or UDP).
    ///
    /// # Panics
    /// If the server listens on a Unix socket, which has no IP address: use
    /// [`ServerHandle::endpoint`] where the transport is not known to be TCP or UDP.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .socket_addr()
            .expect("local_addr() of a server on a Unix socket; use endpoint()")
    }

    /// The model serving.
    pub fn model(&self) -> Model {
        self.model
    }

    /// A number unique to this server within the process. Every thread the server starts is
    /// named `es<id>-<role>`, so `top -H`, profilers and the tests can attribute threads.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name prefix of this server's threads: `es<id>-`.
    pub fn thread_prefix(&self) -> String {
        format!("es{}-", self.id)
    }

    /// Stops accepting, closes every connection and joins every thread the server started;
    /// then removes a Unix socket's file.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.health.interrupt();
        let result = match self.stop.take() {
            Some(stop) => stop.stop(),
            None => Ok(()),
        };
        drop(self.socket_file.take());
        result
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            self.health.interrupt();
            let _ = stop.stop();
        }
    }
}

/// A server instance's process-unique id, from which its thread names are made, and the
/// [`Health`] its loops report to. Cloned into every thread and task that serves.
#[derive(Debug, Clone)]
pub(crate) struct ServerId {
    number: u64,
    health: Health,
}

impl ServerId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            number: NEXT.fetch_add(1, Ordering::Relaxed),
            health: Health::default(),
        }
    }

    /// `es<id>-<role>`, the name of a thread the server starts (Linux keeps 15 bytes of it).
    pub(crate) fn thread_name(&self, role: &str) -> String {
        format!("es{}-{role}", self.number)
    }

    /// A thread builder named `es<id>-<role>`.
    pub(crate) fn thread(&self, role: &str) -> std::thread::Builder {
        std::thread::Builder::new().name(self.thread_name(role))
    }

    /// Starts a thread (`es<id>-<role>`) that serves every client of the server, or a share of
    /// them (an event loop, a ring, a runtime): if `body` returns an error or panics before
    /// the server stops, the server's [`Health`] says the loop died and why.
    pub(crate) fn spawn_loop(
        &self,
        role: &str,
        body: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> io::Result<std::thread::JoinHandle<()>> {
        let health = self.health.clone();
        let name = self.thread_name(role);
        self.thread(role).spawn(move || {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
                Ok(Ok(())) => {}
                Ok(Err(err)) => health.died(format_args!("{name}: {err}")),
                Err(panic) => health.died(format_args!("{name} panicked: {}", panic_text(&panic))),
            }
        })
    }

    /// The server's health, for a loop that reports its own death ([`Health::died`]).
    pub(crate) fn health(&self) -> &Health {
        &self.health
    }
}

pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Reads one connection gets per turn before the others served by the same thread have theirs
/// (the `mio` loops, and the coroutine and futures runtimes, which do not preempt; tokio's own
/// budget does this for its models, and threads are preempted by the kernel). 16 reads of the
/// buffer (256 KiB at the default 16 KiB) keep a bulk transfer's system calls large while
/// bounding how long one client that writes as fast as it can holds the others up.
pub(crate) const READS_PER_TURN: usize = 16;

/// How long a server's handlers get to finish once shutdown begins, and how long a server waits
/// for threads that have nothing else to wait for.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// How long `stop` waits to join threads that first drain their handlers (each waits up to
/// [`SHUTDOWN_GRACE`] for them) and then exit: the grace and half a grace of slack.
pub(crate) const JOIN_AFTER_DRAIN: Duration = Duration::from_millis(SHUTDOWN_GRACE_MS * 3 / 2);

/// How long `stop` waits to join threads that drain their handlers and then shut down a tokio
/// runtime (`shutdown_timeout`, a grace of its own): two graces and half a grace of slack.
pub(crate) const JOIN_AFTER_DRAIN_AND_RUNTIME: Duration =
    Duration::from_millis(SHUTDOWN_GRACE_MS * 5 / 2);

const SHUTDOWN_GRACE_MS: u64 = SHUTDOWN_GRACE.as_millis() as u64;

/// Starts one unit of a server per item (a listener per core, or a thread per core) with
/// `start_one`, which records what it started in `stop`. If one fails, the units already
/// started are stopped before the error is returned, so a failed `start` leaves nothing
/// running: the one place the per-core models say so.
pub(crate) fn start_each<T, S: StopServer + 'static>(
    mut stop: S,
    items: impl IntoIterator<Item = T>,
    mut start_one: impl FnMut(&mut S, T) -> io::Result<()>,
) -> io::Result<S> {
    for item in items {
        if let Err(err) = start_one(&mut stop, item) {
            let _ = Box::new(stop).stop();
            return Err(err);
        }
    }
    Ok(stop)
}

impl Model {
    /// The driver a server of the model started now waits on ([`EchoServer::driver`]).
    pub fn driver(self) -> Driver {
        self.server().driver()
    }

    /// The driver the model waits on where nothing is refused ([`EchoServer::first_choice`]).
    pub fn first_choice(self) -> Driver {
        self.server().first_choice()
    }

    /// Whether the model can run here ([`EchoServer::available`]).
    pub fn available(self) -> Result<(), String> {
        self.server().available()
    }

    /// Those of `models` this machine can run, with a line on stderr for each one left out and
    /// why: what test and bench harnesses use to skip rather than fail.
    pub fn runnable(models: impl IntoIterator<Item = Model>) -> Vec<Model> {
        models
            .into_iter()
            .filter(|model| match model.available() {
                Ok(()) => true,
                Err(why) => {
                    eprintln!("skipping {model}: {why}");
                    false
                }
            })
            .collect()
    }

    /// Whether the model serves any number of connections at once. `false` for `blocking`
    /// (one at a time) and `thread-pool` (as many as it has workers): for them an idle
    /// connection, or more connections than workers, starves the rest by design.
    pub fn serves_concurrently(self) -> bool {
        self.concurrency_limit(&ServerConfig::default()).is_none()
    }

    /// How many connections the model serves at once under `config`, where it is bounded
    /// ([`EchoServer::concurrency_limit`]).
    pub fn concurrency_limit(self, config: &ServerConfig) -> Option<usize> {
        self.server().concurrency_limit(config)
    }

    /// The transports the model serves ([`EchoServer::transports`]).
    pub fn transports(self) -> &'static [Transport] {
        self.server().transports()
    }

    /// Whether the model serves `transport`.
    pub fn serves(self, transport: Transport) -> bool {
        self.transports().contains(&transport)
    }

    /// The names of the models that serve `transport`, comma-separated, for error messages.
    pub fn serving(transport: Transport) -> String {
        Self::ALL
            .iter()
            .filter(|m| m.serves(transport))
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The valid names, comma-separated, for error messages.
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a name that is not a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModel(pub String);

impl fmt::Display for UnknownModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown model '{}' (valid: {})", self.0, Model::names())
    }
}

impl std::error::Error for UnknownModel {}

impl FromStr for Model {
    type Err = UnknownModel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownModel(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_fails_or_panics_is_reported_and_wakes_the_waiter() {
        for body in [
            Box::new(|| Err(io::Error::other("broken")))
                as Box<dyn FnOnce() -> io::Result<()> + Send>,
            Box::new(|| panic!("lost")),
        ] {
            let id = ServerId::next();
            let health = id.health().clone();
            let waiter = std::thread::spawn({
                let health = health.clone();
                move || health.wait_for(Duration::from_secs(10))
            });
            id.spawn_loop("test", body).unwrap().join().unwrap();
            match waiter.join().unwrap() {
                Some(Ended::Died(why)) => assert!(why.contains("test"), "{why}"),
                other => panic!("expected a death, got {other:?}"),
            }
            assert!(health.failure().is_some());
        }
    }

    #[test]
    fn a_loop_that_ends_after_an_interrupt_is_not_a_death() {
        let id = ServerId::next();
        let health = id.health().clone();
        health.interrupt();
        id.spawn_loop("test", || Err(io::Error::other("shut down")))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(health.failure(), None);
        assert_eq!(health.wait_for(Duration::ZERO), Some(Ended::Interrupted));
    }

    #[test]
    fn a_healthy_server_waits_out_its_timeout() {
        let health = Health::default();
        assert_eq!(health.wait_for(Duration::from_millis(20)), None);
    }
}
