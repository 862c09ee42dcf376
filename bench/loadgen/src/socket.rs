//! The client side of the stream transports, so that every workload and every conformance
//! check is written once over "a connection to the target": [`Client`] (blocking, for the checks
//! and the threads engine) and [`Connecting`] (non-blocking, for the event-loop engine), both
//! made from a [`Peer`]: the endpoint, and for `tls:` the client configuration.
//! A TCP connection gets Nagle turned off; a Unix socket has none. A `tls:` connection is TCP
//! with a rustls session on top: connecting includes the handshake, and what is read and written
//! is the plaintext. UDP is not a stream: it has its own engine (`engine::datagram`) and checks
//! (`conformance::datagram`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use echo_cli::Endpoint;
use mio::event::Source;
use mio::{Interest, Registry, Token};

use crate::tls::{TlsClient, TlsStream};

/// Where a client connects: the endpoint, and the TLS client configuration a `tls:` endpoint
/// needs (which server to trust, which versions, whether to resume).
#[derive(Debug, Clone)]
pub struct Peer {
    /// The address.
    pub endpoint: Endpoint,
    /// For `tls:`: how to shake hands. Ignored for the other transports.
    pub tls: Option<TlsClient>,
}

impl From<Endpoint> for Peer {
    /// A peer with no TLS configuration: what every transport but `tls:` needs.
    fn from(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            tls: None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.endpoint.fmt(f)
    }
}

impl Peer {
    /// The TLS configuration of a `tls:` peer.
    fn tls(&self) -> io::Result<&TlsClient> {
        self.tls.as_ref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a tls: target needs a certificate to trust (--ca PEM) or --insecure",
            )
        })
    }
}

/// A blocking connection to a stream endpoint.
#[derive(Debug)]
pub enum Client {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
    /// TLS over TCP, its handshake done.
    Tls(TlsStream),
}

impl Client {
    /// Connects to `target` within `timeout` (a Unix connect does not wait: it succeeds, or
    /// fails at once when nothing listens or the backlog is full). A `tls:` connect shakes
    /// hands too, each step within `timeout`. UDP is refused.
    pub fn connect(target: &Peer, timeout: Duration) -> io::Result<Self> {
        match &target.endpoint {
            Endpoint::Tcp(addr) => {
                let stream = TcpStream::connect_timeout(addr, timeout)?;
                let _ = stream.set_nodelay(true);
                Ok(Client::Tcp(stream))
            }
            Endpoint::Unix(path) => UnixStream::connect(path).map(Client::Unix),
            Endpoint::Udp(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "udp: is a datagram endpoint, not a stream",
            )),
            Endpoint::Tls(addr) => {
                let session = target.tls()?.connection()?;
                let stream = TcpStream::connect_timeout(addr, timeout)?;
                let _ = stream.set_nodelay(true);
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                let tls = TlsStream::handshake(stream, session)?;
                // As a plain socket: blocking with no timeout until the caller sets one.
                tls.socket().set_read_timeout(None)?;
                tls.socket().set_write_timeout(None)?;
                Ok(Client::Tls(tls))
            }
        }
    }

    /// Sets both the read and the write timeout.
    pub fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Client::Tcp(s) => s
                .set_read_timeout(timeout)
                .and(s.set_write_timeout(timeout)),
            Client::Unix(s) => s
                .set_read_timeout(timeout)
                .and(s.set_write_timeout(timeout)),
            Client::Tls(s) => s
                .socket()
                .set_read_timeout(timeout)
                .and(s.socket().set_write_timeout(timeout)),
        }
    }

    /// Sets the read timeout alone.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Client::Tcp(s) => s.set_read_timeout(timeout),
            Client::Unix(s) => s.set_read_timeout(timeout),
            Client::Tls(s) => s.socket().set_read_timeout(timeout),
        }
    }

    /// Shuts down one or both directions (over TLS, closing the write side sends
    /// `close_notify` first).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Client::Tcp(s) => s.shutdown(how),
            Client::Unix(s) => s.shutdown(how),
            Client::Tls(s) => s.shutdown(how),
        }
    }

    /// Another handle to the same connection (a reader for a writer's thread).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Client::Tcp(s) => Client::Tcp(s.try_clone()?),
            Client::Unix(s) => Client::Unix(s.try_clone()?),
            Client::Tls(s) => Client::Tls(s.try_clone()?),
        })
    }

    /// Reads without taking the bytes off the socket (not over TLS, whose bytes on the socket
    /// are not the data).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Client::Tcp(s) => s.peek(buf),
            Client::Unix(s) => {
                // std's UnixStream::peek is unstable; MSG_PEEK through socket2 does the same.
                let buf = unsafe_uninit(buf);
                socket2::SockRef::from(s).peek(buf)
            }
            Client::Tls(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a TLS connection cannot be peeked at",
            )),
        }
    }

    /// Switches non-blocking mode.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Client::Tcp(s) => s.set_nonblocking(nonblocking),
            Client::Unix(s) => s.set_nonblocking(nonblocking),
            Client::Tls(s) => s.socket().set_nonblocking(nonblocking),
        }
    }
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Client::Tcp(s) => s.as_fd(),
            Client::Unix(s) => s.as_fd(),
            Client::Tls(s) => s.socket().as_fd(),
        }
    }
}

impl Read for &Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Client::Tcp(s) => (&*s).read(buf),
            Client::Unix(s) => (&*s).read(buf),
            Client::Tls(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Client::Tcp(s) => (&*s).write(buf),
            Client::Unix(s) => (&*s).write(buf),
            Client::Tls(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Client::Tls(s) => (&*s).flush(),
            _ => Ok(()),
        }
    }
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

/// A non-blocking connection of the event-loop engine, possibly still connecting (for `tls:`,
/// still shaking hands).
#[derive(Debug)]
pub(crate) enum Connecting {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
    Tls(Box<TlsConnecting>),
}

/// A non-blocking TLS connection: TCP, then the handshake, then plaintext, all driven by the
/// engine's readiness events, as rustls's own mio client example drives it.
#[derive(Debug)]
pub(crate) struct TlsConnecting {
    socket: mio::net::TcpStream,
    session: rustls::ClientConnection,
    /// When TCP's connect finished and the handshake began.
    handshake_began: Option<Instant>,
}

impl Connecting {
    /// Starts a non-blocking connect to a stream endpoint.
    pub(crate) fn start(target: &Peer) -> io::Result<Self> {
        match &target.endpoint {
            Endpoint::Tcp(addr) => mio::net::TcpStream::connect(*addr).map(Connecting::Tcp),
            Endpoint::Unix(path) => mio::net::UnixStream::connect(path).map(Connecting::Unix),
            Endpoint::Udp(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "udp: is a datagram endpoint, not a stream",
            )),
            Endpoint::Tls(addr) => {
                let session = target.tls()?.connection()?;
                Ok(Connecting::Tls(Box::new(TlsConnecting {
                    socket: mio::net::TcpStream::connect(*addr)?,
                    session,
                    handshake_began: None,
                })))
            }
        }
    }

    /// `Ok(true)` once connected (for `tls:`, once the handshake is done), `Ok(false)` while
    /// still connecting, the error if it failed. Turns Nagle off on a TCP connection that has
    /// just connected.
    pub(crate) fn established(&mut self) -> io::Result<bool> {
        match self {
            Connecting::Tcp(s) => tcp_connected(s),
            Connecting::Unix(s) => {
                if let Some(err) = s.take_error()? {
                    return Err(err);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(false),
                    Err(err) => Err(err),
                }
            }
            Connecting::Tls(tls) => {
                if tls.handshake_began.is_none() {
                    if !tcp_connected(&tls.socket)? {
                        return Ok(false);
                    }
                    tls.handshake_began = Some(Instant::now());
                }
                tls.handshake()
            }
        }
    }

    /// When a `tls:` connection's handshake began (its TCP connect ended); `None` for the other
    /// transports, whose connect is all there is.
    pub(crate) fn handshake_began(&self) -> Option<Instant> {
        match self {
            Connecting::Tls(tls) => tls.handshake_began,
            _ => None,
        }
    }

    /// Whether a `tls:` connection resumed an earlier session.
    pub(crate) fn resumed(&self) -> bool {
        match self {
            Connecting::Tls(tls) => !matches!(
                tls.session.handshake_kind(),
                Some(rustls::HandshakeKind::Full)
                    | Some(rustls::HandshakeKind::FullWithHelloRetryRequest)
            ),
            _ => false,
        }
    }

    fn source(&mut self) -> &mut dyn Source {
        match self {
            Connecting::Tcp(s) => s,
            Connecting::Unix(s) => s,
            Connecting::Tls(tls) => &mut tls.socket,
        }
    }
}

/// Whether a non-blocking TCP connect has finished; turns Nagle off once it has.
fn tcp_connected(s: &mio::net::TcpStream) -> io::Result<bool> {
    if let Some(err) = s.take_error()? {
        return Err(err);
    }
    match s.peer_addr() {
        Ok(_) => {
            let _ = s.set_nodelay(true);
            Ok(true)
        }
        Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(err) => Err(err),
    }
}

impl TlsConnecting {
    /// Drives the handshake until it is done (`Ok(true)`) or would block (`Ok(false)`); the
    /// next readiness event drives it on.
    fn handshake(&mut self) -> io::Result<bool> {
        loop {
            let sent_all = self.send()?;
            if !self.session.is_handshaking() {
                return Ok(sent_all);
            }
            if !self.session.wants_read() {
                return Ok(false);
            }
            match self.session.read_tls(&mut self.socket) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the TLS handshake",
                    ));
                }
                Ok(_) => self.process()?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends queued records until none is left (`Ok(true)`) or the socket would block.
    fn send(&mut self) -> io::Result<bool> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut self.socket) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn process(&mut self) -> io::Result<()> {
        self.session
            .process_new_packets()
            .map(drop)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

impl Drop for TlsConnecting {
    /// A clean close: `close_notify`, if the socket takes it at once.
    fn drop(&mut self) {
        if self.handshake_began.is_some() && !self.session.is_handshaking() {
            self.session.send_close_notify();
            let _ = self.send();
        }
    }
}

impl Read for TlsConnecting {
    /// Plaintext, decrypting what the socket has; `WouldBlock` once both are empty. Records
    /// left unsent by a write go out first, so a writable event makes them progress.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.send()?;
        loop {
            match self.session.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            // The plaintext buffer is empty here, so rustls has room for what comes.
            match self.session.read_tls(&mut self.socket) {
                Ok(_) => self.process()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TlsConnecting {
    /// Encrypts `buf` once the records of earlier writes are sent; `WouldBlock` until they are.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.send()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let accepted = self.session.writer().write(buf)?;
        self.send()?;
        if accepted == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(accepted)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send().map(drop)
    }
}

impl Source for Connecting {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.source().register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.source().reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.source().deregister(r)
    }
}

impl Read for Connecting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connecting::Tcp(s) => s.read(buf),
            Connecting::Unix(s) => s.read(buf),
            Connecting::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Connecting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connecting::Tcp(s) => s.write(buf),
            Connecting::Unix(s) => s.write(buf),
            Connecting::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Connecting::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

/// `buf` as the `MaybeUninit` slice socket2's receive calls take.
fn unsafe_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: initialised bytes are valid `MaybeUninit<u8>`s, and socket2 only writes to them.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}
