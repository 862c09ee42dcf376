//! A server's command line for a check: a free loopback address of the transport under test
//! filled into the command (`{addr}` in the tools' syntax, `{host}` and `{port}` for TCP and
//! UDP, `{path}` for a Unix socket), and a descriptor limit when a check asks for one. A
//! command that takes `{cert}` or `{key}` serves TLS: it is given a `tls:` address and the
//! paths of a certificate and key its caller made ([`Identity`]: the suite makes one per run).
//! Starting it, its readiness (it accepts connections or answers a datagram, or prints
//! `listening on ADDR`) and its bounded stop are the shared launcher's ([`crate::launch`]).

use std::net::{TcpListener, UdpSocket};
use std::path::Path;

use echo_cli::{Endpoint, Transport};

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

pub use crate::launch::{Launched, SocketDir};

/// A server command line, run through `sh -c 'exec …'` (so the pid is the server's own), with
/// `{addr}`, `{host}`, `{port}` and `{path}` replaced by a free loopback address, and `{cert}`
/// and `{key}` by the paths of a certificate and its key ([`ServerCommand::serves_tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCommand {
    template: String,
}

/// The certificate and private key (PEM files) a command's `{cert}` and `{key}` are filled
/// with.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The certificate (chain) file.
    pub cert: &'a Path,
    /// The private key file.
    pub key: &'a Path,
}

/// The placeholders that make a command a TLS server's.
const TLS_PLACEHOLDERS: [&str; 2] = ["{cert}", "{key}"];

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

    /// Whether the command serves TLS: it takes `{cert}` or `{key}`, so it can be started only
    /// on a `tls:` address and with an [`Identity`] ([`ServerCommand::prepare_with`]).
    pub fn serves_tls(&self) -> bool {
        TLS_PLACEHOLDERS.iter().any(|p| self.template.contains(p))
    }

    /// The process to start, on a free loopback address of `transport` (the address it was
    /// given is returned with it), for a caller that adds its own settings (CPU pinning) before
    /// [`Launched::spawn`]. A command that asks for `{host}` or `{port}` cannot be given a Unix
    /// socket, nor one that asks for `{path}` an IP address. A Unix socket's path is in a
    /// private folder, which the third part keeps until dropped (hand it to
    /// [`Launched::spawn`]). A command that serves TLS needs [`ServerCommand::prepare_with`].
    pub fn prepare(&self, transport: Transport) -> std::io::Result<(Command, Endpoint, SocketDir)> {
        self.prepare_with(transport, None)
    }

    /// [`ServerCommand::prepare`], with `{cert}` and `{key}` filled from `identity`. A command
    /// that takes them ([`ServerCommand::serves_tls`]) is refused any transport but TLS, and
    /// any start without an identity. The paths go in as they are when they hold only
    /// characters the shell takes literally, else single-quoted.
    pub fn prepare_with(
        &self,
        transport: Transport,
        identity: Option<Identity<'_>>,
    ) -> std::io::Result<(Command, Endpoint, SocketDir)> {
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        if self.serves_tls() {
            if transport != Transport::Tls {
                return Err(invalid(format!(
                    "the server command takes {{cert}} or {{key}}, so it serves tls: only, not \
                     {transport}:"
                )));
            }
            if identity.is_none() {
                return Err(invalid(
                    "the server command takes {cert} or {key}, which only the suite fills; \
                     write the files' paths instead"
                        .to_owned(),
                ));
            }
        }
        let (free, dir) = free_endpoint(transport)?;
        let unfit = |what: &str| {
            invalid(format!(
                "the server command takes {what}, which a {transport}: address lacks; use {{addr}}"
            ))
        };
        let mut line = self.template.replace("{addr}", &free.to_string());
        if let Some(identity) = identity {
            line = line
                .replace("{cert}", &shell_word(identity.cert))
                .replace("{key}", &shell_word(identity.key));
        }
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
    /// descriptors if given and `{cert}` and `{key}` filled from `identity`, and waits until it
    /// is ready.
    pub fn launch(
        &self,
        transport: Transport,
        fd_limit: Option<u64>,
        identity: Option<Identity<'_>>,
    ) -> std::io::Result<Launched> {
        let (mut command, free, dir) = self.prepare_with(transport, identity)?;
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

/// `path` as one shell word: as it is when every character is one the shell takes literally,
/// else in single quotes (a `'` inside closed, escaped and reopened).
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `sh -c` script a prepared command runs.
    fn script(command: &Command) -> String {
        command
            .get_args()
            .nth(1)
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap()
    }

    #[test]
    fn a_command_with_cert_or_key_serves_tls_only_and_is_filled_with_the_identity() {
        let tls = ServerCommand::new("srv {addr} {cert} --key={key}").unwrap();
        assert!(tls.serves_tls());
        assert!(!ServerCommand::new("srv {addr}").unwrap().serves_tls());
        let (cert, key) = (Path::new("/tmp/a b/cert.pem"), Path::new("/tmp/x/key.pem"));
        let identity = Identity { cert, key };
        let err = tls
            .prepare_with(Transport::Tcp, Some(identity))
            .unwrap_err();
        assert!(err.to_string().contains("tls: only"), "{err}");
        let err = tls.prepare(Transport::Tls).unwrap_err();
        assert!(err.to_string().contains("only the suite fills"), "{err}");
        let (command, given, _) = tls.prepare_with(Transport::Tls, Some(identity)).unwrap();
        let Endpoint::Tls(addr) = given else {
            panic!("{given} is no tls: address")
        };
        assert_eq!(
            script(&command),
            format!("exec srv tls:{addr} '/tmp/a b/cert.pem' --key=/tmp/x/key.pem")
        );
        assert_eq!(shell_word(Path::new("it's")), r"'it'\''s'");
    }
}
