//! Socket plumbing every model shares: binding the listener the same way whatever the transport,
//! accepting from it, and telling accept errors apart, so that the models differ only in their
//! concurrency model.
//!
//! This is the transport seam. [`bind`] gives a [`StreamListener`] (TCP or a Unix stream socket,
//! as the configured [`Endpoint`] says) and [`bind_datagram`] a UDP socket; each runtime adopts
//! the bound socket into its own types in one small adapter, and every model's accept loop, echo
//! and shutdown are written once over it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use echo_cli::{Endpoint, Transport};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::config::ServerConfig;
use crate::health::Health;
use crate::tls::TlsServer;

/// A bound, listening stream socket of either stream transport, in blocking mode until a model
/// says otherwise.
#[derive(Debug)]
pub(crate) enum StreamListener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix stream socket listener.
    Unix(UnixListener),
}

/// An accepted connection of either stream transport.
#[derive(Debug)]
pub(crate) enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix stream connection.
    Unix(UnixStream),
}

impl StreamListener {
    /// Accepts one connection, with Nagle off for TCP (echo replies are small and latency
    /// matters; a Unix socket has no Nagle).
    pub(crate) fn accept(&self) -> io::Result<Stream> {
        match self {
            StreamListener::Tcp(listener) => {
                let (stream, _) = listener.accept()?;
                let _ = stream.set_nodelay(true);
                Ok(Stream::Tcp(stream))
            }
            StreamListener::Unix(listener) => Ok(Stream::Unix(listener.accept()?.0)),
        }
    }

    /// Accepts one connection that is non-blocking from the start: `accept4` with
    /// `SOCK_NONBLOCK | SOCK_CLOEXEC`, so a readiness loop spends no `fcntl` per connection.
    /// Nagle is off for TCP, as in [`StreamListener::accept`]. An `EINTR` is returned, not
    /// retried: [`after_accept_error`] says to accept again at once.
    pub(crate) fn accept_nonblocking(&self) -> io::Result<Stream> {
        // SAFETY: accept4 on a descriptor this listener owns; no address is asked for.
        let fd = unsafe {
            libc::accept4(
                self.as_fd().as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(match self {
            StreamListener::Tcp(_) => {
                let stream = TcpStream::from(fd);
                let _ = stream.set_nodelay(true);
                Stream::Tcp(stream)
            }
            StreamListener::Unix(_) => Stream::Unix(UnixStream::from(fd)),
        })
    }

    /// Switches between blocking and non-blocking mode.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            StreamListener::Tcp(listener) => listener.set_nonblocking(nonblocking),
            StreamListener::Unix(listener) => listener.set_nonblocking(nonblocking),
        }
    }

    /// Where it listens, in the tools' address syntax (with the real port when 0 was asked for).
    pub(crate) fn endpoint(&self) -> io::Result<Endpoint> {
        match self {
            StreamListener::Tcp(listener) => Ok(Endpoint::Tcp(listener.local_addr()?)),
            StreamListener::Unix(listener) => {
                let addr = listener.local_addr()?;
                let path = addr.as_pathname().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "an unnamed Unix socket")
                })?;
                Ok(Endpoint::Unix(path.to_owned()))
            }
        }
    }

    /// Another descriptor for the same listening socket.
    fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            StreamListener::Tcp(listener) => StreamListener::Tcp(listener.try_clone()?),
            StreamListener::Unix(listener) => StreamListener::Unix(listener.try_clone()?),
        })
    }
}

impl AsFd for StreamListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            StreamListener::Tcp(listener) => listener.as_fd(),
            StreamListener::Unix(listener) => listener.as_fd(),
        }
    }
}

impl Stream {
    /// Shuts down one or both directions.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.shutdown(how),
            Stream::Unix(stream) => stream.shutdown(how),
        }
    }
}

impl Stream {
    /// Sets the read timeout (`None`: reads wait for ever), as a TLS handshake's deadline does.
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_read_timeout(timeout),
            Stream::Unix(stream) => stream.set_read_timeout(timeout),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(stream) => stream.as_raw_fd(),
            Stream::Unix(stream) => stream.as_raw_fd(),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => (&*stream).read(buf),
            Stream::Unix(stream) => (&*stream).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => (&*stream).write(buf),
            Stream::Unix(stream) => (&*stream).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Binds the listening socket `config.listen` names: TCP with `SO_REUSEADDR`, or a Unix stream
/// socket (a stale socket file left by a server that died is removed first), with the
/// configured backlog, in blocking mode. A `udp:` address is refused: the caller serves streams.
/// So is `tls:`: a model that serves TLS binds the plain address [`split_tls`] gives it.
pub(crate) fn bind(config: &ServerConfig) -> io::Result<StreamListener> {
    match &config.listen {
        Endpoint::Tcp(_) => bind_tcp(config, false).map(StreamListener::Tcp),
        Endpoint::Unix(path) => bind_unix(path, config.backlog).map(StreamListener::Unix),
        Endpoint::Udp(_) => Err(not_served(Transport::Udp)),
        Endpoint::Tls(_) => Err(not_served(Transport::Tls)),
    }
}

/// A TLS model's view of `config`: the config its listener binds (a `tls:` address as plain
/// TCP) and the TLS every connection is wrapped in (`None` for TCP and Unix). A `tls:` address
/// without [`ServerConfig::tls`] is an error.
pub(crate) fn split_tls(config: &ServerConfig) -> io::Result<(ServerConfig, Option<TlsServer>)> {
    match (&config.listen, &config.tls) {
        (Endpoint::Tls(addr), Some(tls)) => Ok((
            ServerConfig {
                listen: Endpoint::Tcp(*addr),
                ..config.clone()
            },
            Some(tls.clone()),
        )),
        (Endpoint::Tls(_), None) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "tls: needs a certificate (ServerConfig::tls)",
        )),
        _ => Ok((config.clone(), None)),
    }
}

/// Where a server listens, as the tools write it: the plain endpoint `net` bound, shown as
/// `tls:` when the connections are wrapped in TLS.
pub(crate) fn served(endpoint: Endpoint, tls: &Option<TlsServer>) -> Endpoint {
    match (endpoint, tls) {
        (Endpoint::Tcp(addr), Some(_)) => Endpoint::Tls(addr),
        (endpoint, _) => endpoint,
    }
}

/// The error for a transport a model does not serve. The front ends that take an address from
/// a user name the models that serve it (`Model::serving`, asked before a start): this module is
/// below the registry and does not know the models.
pub(crate) fn not_served(transport: Transport) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{transport}: is not served by this model"),
    )
}

/// [`bind`] in non-blocking mode, for the async runtimes, with where it listens.
pub(crate) fn bind_nonblocking(config: &ServerConfig) -> io::Result<(StreamListener, Endpoint)> {
    let listener = bind(config)?;
    listener.set_nonblocking(true)?;
    let endpoint = listener.endpoint()?;
    Ok((listener, endpoint))
}

/// `count` listeners for one address, one per event loop or runtime. For TCP they are separate
/// sockets sharing the port through `SO_REUSEPORT`, so the kernel spreads incoming connections
/// over them (with port 0 the first picks the port). A Unix socket path can be bound only once,
/// so there they are descriptors of one socket: every loop watches it and whichever accepts
/// first gets the connection.
pub(crate) fn bind_per_core(
    config: &ServerConfig,
    count: usize,
) -> io::Result<Vec<StreamListener>> {
    let first = match &config.listen {
        Endpoint::Tcp(_) => StreamListener::Tcp(bind_tcp(config, true)?),
        _ => bind(config)?,
    };
    let shared = match &first {
        StreamListener::Tcp(listener) => Some(ServerConfig {
            listen: Endpoint::Tcp(listener.local_addr()?),
            ..config.clone()
        }),
        StreamListener::Unix(_) => None,
    };
    let mut listeners = Vec::with_capacity(count.max(1));
    for _ in 1..count.max(1) {
        listeners.push(match &shared {
            Some(shared) => StreamListener::Tcp(bind_tcp(shared, true)?),
            None => first.try_clone()?,
        });
    }
    listeners.insert(0, first);
    Ok(listeners)
}

/// Binds the UDP socket `config.listen` names (`udp:HOST:PORT`), in blocking mode.
pub(crate) fn bind_datagram(config: &ServerConfig) -> io::Result<UdpSocket> {
    let Endpoint::Udp(addr) = config.listen else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a datagram server needs a udp: address",
        ));
    };
    bind_udp(addr, false)
}

/// `count` UDP sockets on one port through `SO_REUSEPORT`, one per event loop or runtime; the
/// kernel hashes each sender to one of them, so a sender's datagrams stay on one core.
pub(crate) fn bind_datagram_per_core(
    config: &ServerConfig,
    count: usize,
) -> io::Result<Vec<UdpSocket>> {
    let Endpoint::Udp(addr) = config.listen else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a datagram server needs a udp: address",
        ));
    };
    let first = bind_udp(addr, true)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count.max(1) {
        sockets.push(bind_udp(addr, true)?);
    }
    Ok(sockets)
}

fn bind_udp(addr: std::net::SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A TCP listener, optionally with `SO_REUSEPORT` so several listeners share one port.
fn bind_tcp(config: &ServerConfig, reuse_port: bool) -> io::Result<TcpListener> {
    let Endpoint::Tcp(addr) = config.listen else {
        unreachable!("bind_tcp is called for TCP addresses only");
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog(config.backlog))?;
    Ok(socket.into())
}

/// The backlog for `listen(2)`; the kernel silently caps it at net.core.somaxconn.
fn backlog(backlog: u32) -> i32 {
    i32::try_from(backlog).unwrap_or(i32::MAX)
}

/// A Unix stream listener at `path`. A socket file already there is removed only when no one
/// listens on it (a server that died without cleaning up); a live server's socket, or a file
/// that is not a socket, is an "address in use" error and is left alone.
///
/// The probe, the removal and the bind happen under an exclusive `flock` of the socket's folder,
/// as does the removal at shutdown ([`SocketFile`]): otherwise a server starting beside another
/// could find the file stale, lose the processor while the other binds, and then remove the
/// other's live socket (both would then "listen", one unreachable).
fn bind_unix(path: &Path, backlog_len: u32) -> io::Result<UnixListener> {
    let _lock = FolderLock::of(path)?;
    remove_if_stale(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(backlog(backlog_len))?;
    Ok(socket.into())
}

/// An exclusive `flock` on the folder that holds a socket path, released when dropped: what
/// every server of this crate holds while it decides whether to remove a socket file there.
struct FolderLock {
    /// Held open for the lock; closing it releases the lock.
    _folder: std::fs::File,
}

impl FolderLock {
    fn of(path: &Path) -> io::Result<Self> {
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let folder = std::fs::File::open(folder)?;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(folder.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Self { _folder: folder });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

fn remove_if_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    let in_use = |why: &str| {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} {why}", path.display()),
        )
    };
    if !meta.file_type().is_socket() {
        return Err(in_use("exists and is not a socket; not removing it"));
    }
    // A non-blocking connect cannot hang on a live server whose backlog is full: that says
    // EAGAIN, which means someone listens, as success does.
    let probe = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    probe.set_nonblocking(true)?;
    match probe.connect(&SockAddr::unix(path)?) {
        Err(err) if err.raw_os_error() == Some(libc::ECONNREFUSED) => std::fs::remove_file(path),
        Err(err) if err.raw_os_error() != Some(libc::EAGAIN) => Err(err),
        _ => Err(in_use("has a server listening on it")),
    }
}

/// The socket file a Unix listener created, removed when the server shuts down, unless another
/// file has replaced it meanwhile (a newer server's socket is not ours to remove).
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    identity: (u64, u64),
}

impl SocketFile {
    /// The socket file at `endpoint`, if it is a Unix socket this process just bound.
    pub(crate) fn of(endpoint: &Endpoint) -> Option<Self> {
        let path = endpoint.unix_path()?;
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(Self {
            path: path.to_owned(),
            identity: (meta.dev(), meta.ino()),
        })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _lock = FolderLock::of(&self.path);
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.identity
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
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
///
/// A listener that fails while the server runs is a loop that died: `health` is told, and the
/// `echo-server` binary exits 1 rather than go on listening for nothing.
pub(crate) fn after_accept_error(err: &io::Error, stopping: bool, health: &Health) -> AcceptAction {
    match AcceptError::classify(err) {
        AcceptError::WouldBlock => AcceptAction::WaitReady,
        AcceptError::Connection => AcceptAction::Next,
        AcceptError::Resource => AcceptAction::BackOff(resource_pause(err)),
        AcceptError::Fatal => {
            if !stopping {
                health.died(format_args!(
                    "accept: {err}; no longer accepting connections"
                ));
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

/// Shuts down both directions of the socket behind `fd`, whatever its kind: how shutdown wakes
/// a thread blocked on it. A listening socket's blocked or later `accept` then fails with
/// `EINVAL`; a connection's `read` returns end-of-file; a UDP socket's `recv_from` returns.
pub(crate) fn shut_down(fd: impl AsFd) {
    let _ = socket2::SockRef::from(&fd).shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two servers starting at once on a stale socket file: at most one may bind, and the file
    /// must then be the one it listens on. Without the folder lock, one could remove the
    /// other's fresh socket after finding the old one stale, and both would "listen".
    #[test]
    fn servers_starting_at_once_on_a_stale_socket_never_both_listen() {
        let dir = std::env::temp_dir().join(format!("echo-servers-race-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let path = dir.join("s.sock");
        for round in 0..2000 {
            let _ = std::fs::remove_file(&path);
            // A stale socket: bound, never listened on by anyone alive.
            drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
            let barrier = std::sync::Barrier::new(2);
            let bound: Vec<io::Result<UnixListener>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            bind_unix(&path, 16)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let listening = bound.iter().filter(|b| b.is_ok()).count();
            assert!(
                listening <= 1,
                "round {round}: both servers bound the socket path"
            );
            assert_eq!(listening, 1, "round {round}: neither server bound");
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn each_accept_error_gets_the_one_policys_action() {
        let e = |code| io::Error::from_raw_os_error(code);
        let would_block = io::Error::from(io::ErrorKind::WouldBlock);
        assert_eq!(
            after_accept_error(&would_block, false, &Health::default()),
            AcceptAction::WaitReady
        );
        assert_eq!(
            after_accept_error(&e(libc::ECONNABORTED), false, &Health::default()),
            AcceptAction::Next
        );
        assert_eq!(
            after_accept_error(&e(libc::EMFILE), false, &Health::default()),
            AcceptAction::BackOff(ACCEPT_BACKOFF)
        );
        // A failed listener stops accepting, whether or not the server is stopping.
        assert_eq!(
            after_accept_error(&e(libc::EINVAL), true, &Health::default()),
            AcceptAction::Stop
        );
        assert_eq!(
            after_accept_error(&e(libc::EBADF), false, &Health::default()),
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
