//! The client side of the two stream transports, so that every workload and every conformance
//! check is written once over "a connection to the target": [`Client`] (blocking, for the checks
//! and the threads engine) and [`Connecting`] (non-blocking, for the event-loop engine).
//! A TCP connection gets Nagle turned off; a Unix socket has none. UDP is not a stream: it has
//! its own engine (`engine::datagram`) and checks (`conformance::datagram`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use echo_cli::Endpoint;
use mio::event::Source;
use mio::{Interest, Registry, Token};

/// A blocking connection to a stream endpoint.
#[derive(Debug)]
pub enum Client {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
}

impl Client {
    /// Connects to `target` within `timeout` (a Unix connect does not wait: it succeeds, or
    /// fails at once when nothing listens or the backlog is full). UDP is refused.
    pub fn connect(target: &Endpoint, timeout: Duration) -> io::Result<Self> {
        match target {
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
            Endpoint::Tls(_) => Err(not_spoken()),
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
        }
    }

    /// Sets the read timeout alone.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Client::Tcp(s) => s.set_read_timeout(timeout),
            Client::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Client::Tcp(s) => s.shutdown(how),
            Client::Unix(s) => s.shutdown(how),
        }
    }

    /// Another handle to the same connection (a reader for a writer's thread).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Client::Tcp(s) => Client::Tcp(s.try_clone()?),
            Client::Unix(s) => Client::Unix(s.try_clone()?),
        })
    }

    /// Reads without taking the bytes off the socket.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Client::Tcp(s) => s.peek(buf),
            Client::Unix(s) => {
                // std's UnixStream::peek is unstable; MSG_PEEK through socket2 does the same.
                let buf = unsafe_uninit(buf);
                socket2::SockRef::from(s).peek(buf)
            }
        }
    }

    /// Switches non-blocking mode.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Client::Tcp(s) => s.set_nonblocking(nonblocking),
            Client::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Client::Tcp(s) => s.as_fd(),
            Client::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for &Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Client::Tcp(s) => (&*s).read(buf),
            Client::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Client::Tcp(s) => (&*s).write(buf),
            Client::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
        Ok(())
    }
}

/// A non-blocking connection of the event-loop engine, possibly still connecting.
#[derive(Debug)]
pub(crate) enum Connecting {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Connecting {
    /// Starts a non-blocking connect to a stream endpoint.
    pub(crate) fn start(target: &Endpoint) -> io::Result<Self> {
        match target {
            Endpoint::Tcp(addr) => mio::net::TcpStream::connect(*addr).map(Connecting::Tcp),
            Endpoint::Unix(path) => mio::net::UnixStream::connect(path).map(Connecting::Unix),
            Endpoint::Udp(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "udp: is a datagram endpoint, not a stream",
            )),
            Endpoint::Tls(_) => Err(not_spoken()),
        }
    }

    /// `Ok(true)` once connected, `Ok(false)` while still connecting, the error if it failed.
    /// Turns Nagle off on a TCP connection that has just connected.
    pub(crate) fn established(&self) -> io::Result<bool> {
        let (error, peer) = match self {
            Connecting::Tcp(s) => (s.take_error(), s.peer_addr().map(drop)),
            Connecting::Unix(s) => (s.take_error(), s.peer_addr().map(drop)),
        };
        if let Some(err) = error? {
            return Err(err);
        }
        match peer {
            Ok(()) => {
                if let Connecting::Tcp(s) = self {
                    let _ = s.set_nodelay(true);
                }
                Ok(true)
            }
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(err) => Err(err),
        }
    }

    fn source(&mut self) -> &mut dyn Source {
        match self {
            Connecting::Tcp(s) => s,
            Connecting::Unix(s) => s,
        }
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
        }
    }
}

impl Write for Connecting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connecting::Tcp(s) => s.write(buf),
            Connecting::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The error for a `tls:` target: the servers serve TLS, but the load generator does not speak
/// it yet (its TLS seam is the next step of the TLS issue).
fn not_spoken() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "tls: is served by echo-server but not yet spoken by the load generator",
    )
}

/// `buf` as the `MaybeUninit` slice socket2's receive calls take.
fn unsafe_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: initialised bytes are valid `MaybeUninit<u8>`s, and socket2 only writes to them.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}
