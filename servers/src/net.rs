//! Socket plumbing every model shares: binding the listener the same way, and telling accept
//! errors apart, so that the models differ only in their concurrency model.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::server::ServerConfig;

/// Binds a listening socket with `SO_REUSEADDR` and the configured backlog, in blocking mode.
pub(crate) fn bind(config: &ServerConfig) -> io::Result<TcpListener> {
    bind_with(config, false)
}

/// [`bind`] in non-blocking mode, for the async runtimes, with the bound address.
pub(crate) fn bind_nonblocking(config: &ServerConfig) -> io::Result<(TcpListener, SocketAddr)> {
    let listener = bind(config)?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    Ok((listener, local_addr))
}

/// `count` listeners sharing one port through `SO_REUSEPORT`, so the kernel spreads incoming
/// connections over them (one per event loop or runtime). With port 0 the first picks the port.
pub(crate) fn bind_reuse_port(config: &ServerConfig, count: usize) -> io::Result<Vec<TcpListener>> {
    let first = bind_with(config, true)?;
    let shared = ServerConfig {
        listen: first.local_addr()?,
        ..config.clone()
    };
    let mut listeners = vec![first];
    for _ in 1..count.max(1) {
        listeners.push(bind_with(&shared, true)?);
    }
    Ok(listeners)
}

/// Like [`bind`], optionally with `SO_REUSEPORT` so several listeners share one port.
pub(crate) fn bind_with(config: &ServerConfig, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(config.listen),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if config.listen.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&config.listen.into())?;
    // The kernel silently caps the backlog at net.core.somaxconn.
    let backlog = i32::try_from(config.backlog).unwrap_or(i32::MAX);
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// What a failed `accept` means for the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// Nothing to accept right now (non-blocking listeners only).
    WouldBlock,
    /// The one connection failed (it was aborted or reset while queued): accept the next at once.
    Connection,
    /// The process or system ran out of something (descriptors, buffers, memory): back off and
    /// retry on a timer; the queued clients are still waiting in the backlog.
    Resource,
    /// The listener itself failed (shut down, closed, or an error accept should never give):
    /// stop accepting.
    Fatal,
}

impl AcceptError {
    /// Classifies an error returned by `accept(2)`.
    pub(crate) fn classify(err: &io::Error) -> Self {
        if err.kind() == io::ErrorKind::WouldBlock {
            return Self::WouldBlock;
        }
        match err.raw_os_error() {
            Some(
                libc::EINTR | libc::ECONNABORTED | libc::ECONNRESET | libc::EPROTO | libc::EPERM,
            )
            | Some(libc::ENETDOWN | libc::ENOPROTOOPT | libc::EHOSTDOWN | libc::ENONET)
            | Some(libc::EHOSTUNREACH | libc::EOPNOTSUPP | libc::ENETUNREACH | libc::ETIMEDOUT) => {
                Self::Connection
            }
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Self::Resource,
            _ => Self::Fatal,
        }
    }
}

/// What an accept loop does after a failed `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptAction {
    /// Nothing is queued on a non-blocking listener: wait for readiness.
    WaitReady,
    /// That one connection failed: accept the next at once.
    Next,
    /// The process or system ran out of something: accept again after this pause. The queued
    /// clients wait in the backlog meanwhile.
    BackOff(Duration),
    /// The listener is unusable: stop accepting. Connections already accepted go on.
    Stop,
}

/// The accept-error policy of every model: classifies `err`, logs what needs logging (a
/// resource error at most once a second; a listener failure once, unless the server is
/// `stopping`, when the failure is the shutdown itself), and says what to do next. The models
/// differ only in how they wait.
pub(crate) fn after_accept_error(err: &io::Error, stopping: bool) -> AcceptAction {
    match AcceptError::classify(err) {
        AcceptError::WouldBlock => AcceptAction::WaitReady,
        AcceptError::Connection => AcceptAction::Next,
        AcceptError::Resource => AcceptAction::BackOff(resource_pause(err)),
        AcceptError::Fatal => {
            if !stopping {
                eprintln!("echo-server: accept: {err}; no longer accepting connections");
            }
            AcceptAction::Stop
        }
    }
}

/// The response to running out of something while accepting (or, for a model that spawns a
/// thread per connection, while spawning one): logs it at most once a second and returns the
/// pause before accepting again.
pub(crate) fn resource_pause(err: &io::Error) -> Duration {
    ACCEPT_LOG.accept_error(err, ACCEPT_BACKOFF);
    ACCEPT_BACKOFF
}

/// The pause after a resource error before accepting again.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Logs a resource error at most once a second, counting what it held back, so a server out of
/// descriptors neither floods its log nor blocks on a full stderr pipe.
#[derive(Debug)]
pub(crate) struct RateLimitedLog {
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedLog {
    pub(crate) const fn new() -> Self {
        Self {
            state: Mutex::new((None, 0)),
        }
    }

    pub(crate) fn accept_error(&self, err: &io::Error, backoff: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < Duration::from_secs(1) => state.1 += 1,
            _ => {
                let held = std::mem::take(&mut state.1);
                let more = if held > 0 {
                    format!(" ({held} more since the last report)")
                } else {
                    String::new()
                };
                eprintln!("echo-server: accept: {err}; retrying in {backoff:?}{more}");
                state.0 = Some(now);
            }
        }
    }
}

/// The process-wide accept-error log.
pub(crate) static ACCEPT_LOG: RateLimitedLog = RateLimitedLog::new();

/// Wakes a thread blocked in `accept(2)` on `listener`: on Linux, shutting down a listening
/// socket makes a blocked or later `accept` fail with `EINVAL`.
pub(crate) fn wake_acceptor(listener: &TcpListener) {
    let _ = socket2::SockRef::from(listener).shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_accept_error_gets_the_one_policys_action() {
        let e = |code| io::Error::from_raw_os_error(code);
        let would_block = io::Error::from(io::ErrorKind::WouldBlock);
        assert_eq!(
            after_accept_error(&would_block, false),
            AcceptAction::WaitReady
        );
        assert_eq!(
            after_accept_error(&e(libc::ECONNABORTED), false),
            AcceptAction::Next
        );
        assert_eq!(
            after_accept_error(&e(libc::EMFILE), false),
            AcceptAction::BackOff(ACCEPT_BACKOFF)
        );
        // A failed listener stops accepting, whether or not the server is stopping.
        assert_eq!(
            after_accept_error(&e(libc::EINVAL), true),
            AcceptAction::Stop
        );
        assert_eq!(
            after_accept_error(&e(libc::EBADF), false),
            AcceptAction::Stop
        );
    }

    #[test]
    fn classifies_accept_errors() {
        let e = |code| io::Error::from_raw_os_error(code);
        assert_eq!(
            AcceptError::classify(&e(libc::EMFILE)),
            AcceptError::Resource
        );
        assert_eq!(
            AcceptError::classify(&e(libc::ENOBUFS)),
            AcceptError::Resource
        );
        assert_eq!(
            AcceptError::classify(&e(libc::ECONNABORTED)),
            AcceptError::Connection
        );
        assert_eq!(
            AcceptError::classify(&e(libc::EAGAIN)),
            AcceptError::WouldBlock
        );
        assert_eq!(AcceptError::classify(&e(libc::EINVAL)), AcceptError::Fatal);
        assert_eq!(AcceptError::classify(&e(libc::EBADF)), AcceptError::Fatal);
    }
}
