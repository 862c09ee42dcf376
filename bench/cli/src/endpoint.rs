//! The one address syntax of every tool: where a server listens (`--listen`) and what a client
//! drives (`--target`), for the four transports the suite covers.
//!
//! | syntax | transport |
//! |---|---|
//! | `HOST:PORT`, `[V6]:PORT` | TCP |
//! | `unix:PATH` | a Unix stream socket (`AF_UNIX`, `SOCK_STREAM`) |
//! | `udp:HOST:PORT`, `udp:[V6]:PORT` | UDP datagrams |
//! | `tls:HOST:PORT`, `tls:[V6]:PORT` | TLS over TCP (rustls) |
//!
//! [`Endpoint`]'s `Display` prints exactly the syntax it parses, so `listening on ADDR` can be
//! pasted into `--target`.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A transport: what kind of socket an [`Endpoint`] names. TCP by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP over IPv4 or IPv6.
    #[default]
    Tcp,
    /// A Unix domain stream socket: same-host IPC without the TCP stack.
    Unix,
    /// UDP: one datagram per `recvfrom`/`sendto`, no connections, no delivery guarantee.
    Udp,
    /// TLS over TCP: the TCP byte stream, encrypted, after a handshake per connection.
    Tls,
}

impl Transport {
    /// Every transport, in the order reports list them.
    pub const ALL: [Transport; 4] = [
        Transport::Tcp,
        Transport::Unix,
        Transport::Udp,
        Transport::Tls,
    ];

    /// The name on command lines (`--transports tcp,unix`) and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
            Transport::Udp => "udp",
            Transport::Tls => "tls",
        }
    }

    /// Whether the transport is a byte stream (TCP, Unix, TLS) rather than datagrams (UDP).
    pub const fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown transport '{s}' (valid: tcp, unix, udp, tls)"))
    }
}

/// Where a server listens or what a client drives: a TCP address, a Unix socket path, a UDP
/// address or a TLS (over TCP) address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `HOST:PORT` or `[V6]:PORT`.
    Tcp(SocketAddr),
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `udp:HOST:PORT`.
    Udp(SocketAddr),
    /// `tls:HOST:PORT`.
    Tls(SocketAddr),
}

/// The longest Unix socket path Linux accepts: `sun_path` is 108 bytes with its terminating NUL.
pub const UNIX_PATH_MAX: usize = 107;

impl Endpoint {
    /// The transport this endpoint uses.
    pub fn transport(&self) -> Transport {
        match self {
            Endpoint::Tcp(_) => Transport::Tcp,
            Endpoint::Unix(_) => Transport::Unix,
            Endpoint::Udp(_) => Transport::Udp,
            Endpoint::Tls(_) => Transport::Tls,
        }
    }

    /// The IP address and port, for TCP, UDP and TLS; `None` for a Unix socket.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Endpoint::Tcp(addr) | Endpoint::Udp(addr) | Endpoint::Tls(addr) => Some(*addr),
            Endpoint::Unix(_) => None,
        }
    }

    /// The socket file's path, for a Unix socket.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Endpoint::Unix(path) => Some(path),
            _ => None,
        }
    }

    /// The same transport and host at another address (the port a server really bound, when
    /// port 0 was asked for); a Unix endpoint is returned unchanged.
    pub fn with_socket_addr(&self, addr: SocketAddr) -> Endpoint {
        match self {
            Endpoint::Tcp(_) => Endpoint::Tcp(addr),
            Endpoint::Udp(_) => Endpoint::Udp(addr),
            Endpoint::Tls(_) => Endpoint::Tls(addr),
            Endpoint::Unix(path) => Endpoint::Unix(path.clone()),
        }
    }

    /// Whether a client cannot reach it: port 0 (a server's "any free port", never a target).
    pub fn needs_port(&self) -> bool {
        self.socket_addr().is_some_and(|a| a.port() == 0)
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::Tcp(addr)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Udp(addr) => write!(f, "udp:{addr}"),
            Endpoint::Tls(addr) => write!(f, "tls:{addr}"),
        }
    }
}

/// Why an address did not parse: one line, naming the syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEndpoint(String);

impl fmt::Display for BadEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadEndpoint {}

const SYNTAX: &str = "HOST:PORT, [V6]:PORT, unix:PATH, udp:HOST:PORT or tls:HOST:PORT";

impl FromStr for Endpoint {
    type Err = BadEndpoint;

    /// Parses the syntax in the module documentation. A host name (`localhost:7878`) is resolved
    /// to its first address.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Endpoint::parse_with(text, true)
    }
}

impl Endpoint {
    /// [`Endpoint::from_str`] without the name lookup: only literal IP addresses (`127.0.0.1:7878`,
    /// `[::1]:7878`, `udp:…`) and Unix paths; a host name is refused as `from_str` refuses a bad
    /// address. Where both succeed they give the same endpoint. For the fuzz targets and the
    /// hostile-input tests, which try millions of strings and must not ask a DNS server about each.
    pub fn parse_literal(text: &str) -> Result<Self, BadEndpoint> {
        Endpoint::parse_with(text, false)
    }

    fn parse_with(text: &str, lookup: bool) -> Result<Self, BadEndpoint> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(BadEndpoint(format!(
                    "'{}' names no socket path ({SYNTAX})",
                    shown(text)
                )));
            }
            if path.len() > UNIX_PATH_MAX {
                return Err(BadEndpoint(format!(
                    "the socket path in '{}' is {} bytes; Linux allows at most {UNIX_PATH_MAX}",
                    shown(text),
                    path.len()
                )));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = text.strip_prefix("udp:") {
            return socket_addr(addr, text, lookup).map(Endpoint::Udp);
        }
        if let Some(addr) = text.strip_prefix("tls:") {
            return socket_addr(addr, text, lookup).map(Endpoint::Tls);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(BadEndpoint(format!(
                "'{}': no '{}://' here; addresses are {SYNTAX}",
                shown(text),
                shown(scheme)
            )));
        }
        socket_addr(text, text, lookup).map(Endpoint::Tcp)
    }
}

fn socket_addr(addr: &str, whole: &str, lookup: bool) -> Result<SocketAddr, BadEndpoint> {
    let bad = || BadEndpoint(format!("'{}' is not an address ({SYNTAX})", shown(whole)));
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // Only a name with a port is looked up: "7878" or "host" alone are mistakes, not names.
    if !lookup || !addr.contains(':') {
        return Err(bad());
    }
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(bad)
}

/// `text` as an error message shows it: control characters (a newline, a NUL) escaped, so the
/// message stays one line, and cut after 120 characters, so a megabyte of garbage gives a line
/// one can read.
fn shown(text: &str) -> String {
    const LONGEST: usize = 120;
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == LONGEST {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_transport_and_prints_it_back() {
        for text in [
            "127.0.0.1:7878",
            "[::1]:9000",
            "unix:/tmp/echo.sock",
            "unix:relative.sock",
            "udp:127.0.0.1:7878",
            "udp:[::1]:0",
            "tls:127.0.0.1:4433",
            "tls:[::1]:0",
        ] {
            let endpoint: Endpoint = text.parse().unwrap();
            assert_eq!(endpoint.to_string(), text);
        }
        assert_eq!(
            "unix:/tmp/x".parse::<Endpoint>().unwrap().transport(),
            Transport::Unix
        );
        assert_eq!(
            "udp:127.0.0.1:1".parse::<Endpoint>().unwrap().transport(),
            Transport::Udp
        );
        let tls: Endpoint = "tls:127.0.0.1:1".parse().unwrap();
        assert_eq!(tls.transport(), Transport::Tls);
        assert!(tls.transport().is_stream());
        assert_eq!(tls.socket_addr(), Some("127.0.0.1:1".parse().unwrap()));
    }

    #[test]
    fn resolves_localhost() {
        let endpoint: Endpoint = "localhost:7878".parse().unwrap();
        assert_eq!(endpoint.socket_addr().unwrap().port(), 7878);
        assert_eq!(endpoint.transport(), Transport::Tcp);
    }

    #[test]
    fn rejects_bad_addresses_with_the_syntax_named() {
        for text in [
            "",
            "7878",
            "unix:",
            "udp:nowhere",
            "tls:",
            "tls:4433",
            "tcp://127.0.0.1:1",
            "127.0.0.1:99999",
        ] {
            let err = text.parse::<Endpoint>().unwrap_err().to_string();
            assert!(err.contains("unix:PATH"), "{text}: {err}");
            assert!(!err.contains('\n'));
        }
        let err = "udp:a\nb".parse::<Endpoint>().unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("a\\nb"), "{err}");
        let long = format!("unix:/{}", "x".repeat(200));
        let err = long.parse::<Endpoint>().unwrap_err().to_string();
        assert!(err.contains("at most 107"), "{err}");
    }

    #[test]
    fn transports_parse_by_name() {
        for t in Transport::ALL {
            assert_eq!(t.name().parse::<Transport>().unwrap(), t);
        }
        assert!("sctp".parse::<Transport>().is_err());
    }
}
