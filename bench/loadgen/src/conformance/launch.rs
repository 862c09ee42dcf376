//! A server's command line for a check: a free loopback address of the transport under test
//! filled into the command (`{addr}` in the tools' syntax, `{host}` and `{port}` for TCP and
//! UDP, `{path}` for a Unix socket), and a descriptor limit when a check asks for one. Starting
//! it, its readiness (it accepts connections or answers a datagram, or prints `listening on
//! ADDR`) and its bounded stop are the shared launcher's ([`crate::launch`]).

use std::net::{TcpListener, UdpSocket};

use echo_cli::{Endpoint, Transport};

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

pub use crate::launch::{Launched, SocketDir};

/// A server command line, run through `sh -c 'exec …'` (so the pid is the server's own), with
/// `{addr}`, `{host}`, `{port}` and `{path}` replaced by a free loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCommand {
    template: String,
}

impl ServerCommand {
    /// A command from its template. `Err` when it is empty.
    pub fn new(template: &str) -> Result<Self, String> {
        if template.trim().is_empty() {
            return Err("the server command is empty".to_owned());
        }
        Ok(Self {
            template: template.to_owned(),
        })
    }

    /// The template as given.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The process to start, on a free loopback address of `transport` (the address it was
    /// given is returned with it), for a caller that adds its own settings (CPU pinning) before
    /// [`Launched::spawn`]. A command that asks for `{host}` or `{port}` cannot be given a Unix
    /// socket, nor one that asks for `{path}` an IP address. A Unix socket's path is in a
    /// private folder, which the third part keeps until dropped (hand it to
    /// [`Launched::spawn`]).
    pub fn prepare(&self, transport: Transport) -> std::io::Result<(Command, Endpoint, SocketDir)> {
        let (free, dir) = free_endpoint(transport)?;
        let unfit = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "the server command takes {what}, which a {transport}: address lacks; use {{addr}}"
                ),
            )
        };
        let mut line = self.template.replace("{addr}", &free.to_string());
        match &free {
            Endpoint::Unix(path) => {
                if line.contains("{host}") || line.contains("{port}") {
                    return Err(unfit("{host}/{port}"));
                }
                line = line.replace("{path}", &path.display().to_string());
            }
            Endpoint::Tcp(addr) | Endpoint::Udp(addr) | Endpoint::Tls(addr) => {
                if line.contains("{path}") {
                    return Err(unfit("{path}"));
                }
                line = line
                    .replace("{host}", &addr.ip().to_string())
                    .replace("{port}", &addr.port().to_string());
            }
        }
        let mut command = Command::new("sh");
        command
            .args(["-c", &format!("exec {line}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok((command, free, dir))
    }

    /// Starts the server on a free loopback address of `transport`, with at most `fd_limit`
    /// descriptors if given, and waits until it is ready.
    pub fn launch(&self, transport: Transport, fd_limit: Option<u64>) -> std::io::Result<Launched> {
        let (mut command, free, dir) = self.prepare(transport)?;
        if let Some(limit) = fd_limit {
            // SAFETY: setrlimit is async-signal-safe, as pre_exec requires.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Ok(Launched::spawn(command, free, dir)?)
    }
}

/// A free loopback address of `transport`: a port nothing listens on, or a socket path in a
/// fresh private folder ([`crate::files::private_socket`]: no one else can guess, pre-create
/// or redirect it), with that folder.
fn free_endpoint(transport: Transport) -> std::io::Result<(Endpoint, SocketDir)> {
    Ok(match transport {
        Transport::Tcp => (
            Endpoint::Tcp(TcpListener::bind("127.0.0.1:0")?.local_addr()?),
            None,
        ),
        Transport::Udp => (
            Endpoint::Udp(UdpSocket::bind("127.0.0.1:0")?.local_addr()?),
            None,
        ),
        Transport::Tls => (
            Endpoint::Tls(TcpListener::bind("127.0.0.1:0")?.local_addr()?),
            None,
        ),
        Transport::Unix => {
            let (dir, path) = crate::files::private_socket("echo-check")?;
            (Endpoint::Unix(path), Some(dir))
        }
    })
}
