//! Starting a server from a command line for a check: a free loopback address of the transport
//! under test filled into the command (`{addr}` in the tools' syntax, `{host}` and `{port}` for
//! TCP and UDP, `{path}` for a Unix socket), readiness (it accepts connections or answers a
//! datagram, or prints `listening on ADDR`), a descriptor limit when a check asks for one, and a
//! bounded stop.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};

use echo_cli::{Endpoint, Transport};

use crate::socket::Client;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Lines of a started server's stderr kept for a failed check to quote.
pub const STDERR_LINES_KEPT: usize = 3;

/// How long a started server may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(10);

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
            Endpoint::Tcp(addr) | Endpoint::Udp(addr) => {
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
        Launched::spawn(command, free, dir)
    }
}

/// The private folder of a Unix socket's path (`None` for an IP address), removed when
/// dropped, after the server that listened there.
pub type SocketDir = Option<tempfile::TempDir>;

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
        Transport::Unix => {
            let (dir, path) = crate::files::private_socket("echo-check")?;
            (Endpoint::Unix(path), Some(dir))
        }
    })
}

/// Whether a server answers at `endpoint`: accepts a connection, or echoes a datagram within
/// 100 ms.
fn answers(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Udp(addr) => {
            let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
                return false;
            };
            let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
            let mut buf = [0; 16];
            socket.send_to(b"ready?", addr).is_ok() && socket.recv(&mut buf).is_ok()
        }
        stream => Client::connect(stream, Duration::from_millis(100)).is_ok(),
    }
}

impl Launched {
    /// Spawns `command` (from [`ServerCommand::prepare`], given `addr`) and waits until it is
    /// ready.
    pub fn spawn(
        mut command: Command,
        addr: Endpoint,
        socket_dir: SocketDir,
    ) -> std::io::Result<Launched> {
        let mut child = crate::child::spawn(&mut command)?;
        let stdout = child.stdout.take().expect("piped stdout");
        let said = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let said = std::sync::Arc::clone(&said);
            // Drained to its end (a full pipe would block the server), keeping the last lines.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut said = said.lock().unwrap_or_else(|e| e.into_inner());
                    if said.len() == STDERR_LINES_KEPT {
                        said.pop_front();
                    }
                    said.push_back(line);
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        let lines = std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push(line);
            }
            all
        });
        let mut launched = Launched {
            child,
            addr: addr.clone(),
            stdout: Some(lines),
            said,
            _socket_dir: socket_dir,
        };
        launched.wait_ready(&rx, &addr)?;
        Ok(launched)
    }
}

/// A server started by [`ServerCommand::launch`]; killed when dropped.
#[derive(Debug)]
pub struct Launched {
    child: Child,
    addr: Endpoint,
    stdout: Option<std::thread::JoinHandle<Vec<String>>>,
    /// The last lines it wrote on stderr, for a failed check to quote.
    said: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    /// Dropped after the process (fields drop after `Drop::drop`).
    _socket_dir: SocketDir,
}

impl Launched {
    /// Where it listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.addr
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ready once it prints `listening on ADDR` (that address is then used) or accepts a
    /// connection (answers a datagram) at the address it was given; `Err` if it exits first or
    /// takes too long.
    fn wait_ready(
        &mut self,
        lines: &mpsc::Receiver<String>,
        given: &Endpoint,
    ) -> std::io::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "the server exited before it was ready ({status})"
                )));
            }
            while let Ok(line) = lines.try_recv() {
                if let Some(addr) = line
                    .strip_prefix("listening on ")
                    .and_then(|a| a.trim().parse().ok())
                {
                    self.addr = addr;
                    return Ok(());
                }
            }
            if answers(given) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other(format!(
            "the server was not ready within {READY_WITHIN:?} (no connection accepted at {given}, \
             no `listening on` line)"
        )))
    }

    /// Sends SIGTERM (to its process group) and waits up to `within` for it to exit; its
    /// status, or `None` (it is then killed with SIGKILL).
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        crate::child::stop(&mut self.child, within)
    }

    /// The last lines (at most [`STDERR_LINES_KEPT`]) it wrote on stderr so far.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.said
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok()??;
        crate::child::reaped(self.child.id());
        Some(status)
    }

    /// What it printed on stdout, once it has exited (`None` while it runs).
    pub fn output(&mut self) -> Option<Vec<String>> {
        self.child.try_wait().ok()??;
        self.stdout.take()?.join().ok()
    }
}

impl Drop for Launched {
    /// Kills its process group and reaps it; then its socket folder goes, with whatever socket
    /// file a server killed, or one that failed, left behind.
    fn drop(&mut self) {
        crate::child::kill(&mut self.child);
    }
}
