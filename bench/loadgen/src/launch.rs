//! The one launcher of server processes, shared by the suite, `ab` and the conformance checks:
//! a [`Command`] the caller built (a model's `serve`, an outside server's command line, or
//! either behind a wrapper such as valgrind) is started through [`crate::child::spawn`] (its
//! own process group, `PR_SET_PDEATHSIG`), read until it is ready within a limit, and stopped
//! with SIGTERM to its group ([`Launched::terminate`]) or killed when dropped.
//!
//! Ready means, as [`Ready`] says: its first stdout line is `listening on ADDR` (a model's
//! server, which promises that line), or it prints that line or answers at the address it was
//! given (an outside server, which may print nothing). Its stdout is read to its end on a
//! thread of its own, so a server never blocks on a full pipe; the lines after the one that
//! made it ready (a model's `driver:` line) are there for [`Launched::next_line`], read when the
//! caller wants them, so a build that prints none keeps no one waiting. A piped stderr is
//! drained likewise, its last lines kept for an error to quote.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use echo_cli::Endpoint;

use crate::socket::Client;

/// How long a server may take to become ready, unless the caller says otherwise.
pub const READY_WITHIN: Duration = Duration::from_secs(10);

/// How long a server whose stdout closed before its first line may take to exit, for its exit
/// status to be quoted.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

/// Lines of a started server's stderr kept for a failed check to quote.
pub const STDERR_LINES_KEPT: usize = 3;

/// The private folder of a Unix socket's path (`None` for an IP address), removed when
/// dropped, after the server that listened there.
pub type SocketDir = Option<crate::files::PrivateDir>;

/// When a started server counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Its first line on stdout is `listening on ADDR`; any other first line, an exit or
    /// silence is an error. What a model's server (`echo-server`, `echo-bench serve`) promises.
    FirstLine,
    /// It prints `listening on ADDR` at any point, or accepts a connection (answers a datagram)
    /// at the address it was given: an outside server, which may print nothing.
    LineOrAnswer,
}

/// Why a server did not start. The messages are the tools' one-line errors.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The process could not be started at all.
    #[error("{0}")]
    Spawn(#[source] std::io::Error),
    /// Its state could not be read (`waitpid` failed).
    #[error("{0}")]
    Wait(#[source] std::io::Error),
    /// [`Ready::FirstLine`]: nothing on stdout within the limit.
    #[error("no 'listening on' line within {within:?}")]
    Silent {
        /// The limit.
        within: Duration,
    },
    /// [`Ready::FirstLine`]: its stdout closed before a line: it exited (its status, if it was
    /// reaped in time) or closed its stdout and runs on.
    #[error(
        "server exited before listening ({})",
        status.map_or("still running with its stdout closed".into(), describe)
    )]
    ExitedBeforeListening {
        /// Its exit status, if it exited.
        status: Option<ExitStatus>,
    },
    /// [`Ready::FirstLine`]: its first line was something else (at most 80 characters of it).
    #[error("server printed '{line}' instead of a 'listening on ADDR' line")]
    NotListening {
        /// The line it printed, cut to 80 characters.
        line: String,
    },
    /// [`Ready::LineOrAnswer`]: it exited before it was ready.
    #[error("the server exited before it was ready ({0})")]
    ExitedBeforeReady(ExitStatus),
    /// [`Ready::LineOrAnswer`]: neither a line nor an answer within the limit.
    #[error(
        "the server was not ready within {within:?} (no connection accepted at {given}, no \
         `listening on` line)"
    )]
    NotReady {
        /// The limit.
        within: Duration,
        /// The address it was given.
        given: Endpoint,
    },
}

impl From<LaunchError> for std::io::Error {
    fn from(err: LaunchError) -> Self {
        match err {
            LaunchError::Spawn(err) | LaunchError::Wait(err) => err,
            other => std::io::Error::other(other),
        }
    }
}

/// An exit status in words: `exit code N` or `killed by signal N`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// A server started by [`start`]; its process group is killed when dropped.
#[derive(Debug)]
pub struct Launched {
    child: Child,
    addr: Endpoint,
    /// Its stdout's lines not yet taken by the readiness wait or [`Launched::next_line`].
    lines: mpsc::Receiver<String>,
    /// The reader of its stdout, which returns every line once stdout closes.
    stdout: Option<JoinHandle<Vec<String>>>,
    /// The last lines it wrote on stderr, for a failed check to quote.
    said: Arc<Mutex<VecDeque<String>>>,
    /// Dropped after the process (fields drop after `Drop::drop`).
    _socket_dir: SocketDir,
}

/// Starts `command` (its stdout piped; its stderr piped to keep its last lines, or not) as a
/// server given the address `addr` (with `socket_dir`, the private folder of a Unix socket's
/// path, removed after the server), and waits up to `within` until it is `ready`. On an
/// error the process is killed and reaped.
pub fn start(
    mut command: Command,
    addr: Endpoint,
    socket_dir: SocketDir,
    ready: Ready,
    within: Duration,
) -> Result<Launched, LaunchError> {
    let mut child = crate::child::spawn(&mut command).map_err(LaunchError::Spawn)?;
    let said = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(stderr) = child.stderr.take() {
        let said = Arc::clone(&said);
        // Drained to its end (a full pipe would block the server), keeping the last lines.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut said = said.lock().unwrap_or_else(PoisonError::into_inner);
                if said.len() == STDERR_LINES_KEPT {
                    said.pop_front();
                }
                said.push_back(line);
            }
        });
    }
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().map(|stdout| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push(line);
            }
            all
        })
    });
    let mut launched = Launched {
        child,
        addr,
        lines,
        stdout,
        said,
        _socket_dir: socket_dir,
    };
    match ready {
        Ready::FirstLine => launched.wait_first_line(within)?,
        Ready::LineOrAnswer => launched.wait_line_or_answer(within)?,
    }
    Ok(launched)
}

impl Launched {
    /// [`start`] for an outside server's command: ready on a `listening on` line or an answer,
    /// within [`READY_WITHIN`].
    pub fn spawn(
        command: Command,
        addr: Endpoint,
        socket_dir: SocketDir,
    ) -> Result<Launched, LaunchError> {
        start(command, addr, socket_dir, Ready::LineOrAnswer, READY_WITHIN)
    }

    /// Where it listens: the address of its `listening on` line, else the one it was given.
    pub fn endpoint(&self) -> &Endpoint {
        &self.addr
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line it printed on stdout after the one that made it ready, if it has printed
    /// one by now (never waits).
    pub fn next_line(&self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    fn wait_first_line(&mut self, within: Duration) -> Result<(), LaunchError> {
        let line = match self.lines.recv_timeout(within) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(LaunchError::Silent { within }),
            // Its stdout closed: it exited (or is exiting) without a line.
            Err(mpsc::RecvTimeoutError::Disconnected) => String::new(),
        };
        let first = line.trim();
        if let Some(addr) = listening_on(first) {
            self.addr = addr;
            return Ok(());
        }
        if first.is_empty() {
            let status = crate::child::wait_until(&mut self.child, Instant::now() + EXIT_WITHIN)
                .ok()
                .flatten();
            return Err(LaunchError::ExitedBeforeListening { status });
        }
        Err(LaunchError::NotListening {
            line: first.chars().take(80).collect(),
        })
    }

    fn wait_line_or_answer(&mut self, within: Duration) -> Result<(), LaunchError> {
        let given = self.addr.clone();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().map_err(LaunchError::Wait)? {
                return Err(LaunchError::ExitedBeforeReady(status));
            }
            while let Ok(line) = self.lines.try_recv() {
                if let Some(addr) = listening_on(&line) {
                    self.addr = addr;
                    return Ok(());
                }
            }
            if answers(&given) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(LaunchError::NotReady { within, given })
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
            .unwrap_or_else(PoisonError::into_inner)
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
        // A TLS server is ready once it accepts; the handshake is the checks' business.
        Endpoint::Tls(addr) => TcpStream::connect_timeout(addr, Duration::from_millis(100)).is_ok(),
        stream => Client::connect(&stream.clone().into(), Duration::from_millis(100)).is_ok(),
    }
}

/// The address in a server's `listening on ADDR` line, if `line` is one.
fn listening_on(line: &str) -> Option<Endpoint> {
    line.strip_prefix("listening on ")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sh -c SCRIPT` with stdout piped, as a server would be started.
    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command
            .args(["-c", script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    }

    fn given() -> Endpoint {
        "127.0.0.1:0".parse().unwrap()
    }

    fn first_line(script: &str, within: Duration) -> Result<Launched, LaunchError> {
        start(shell(script), given(), None, Ready::FirstLine, within)
    }

    #[test]
    fn a_first_line_listening_on_is_ready_and_later_lines_wait_to_be_asked_for() {
        let mut server = first_line(
            "echo 'listening on 127.0.0.1:4321'; echo 'driver: epoll'; echo oops >&2; exec sleep 30",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(server.endpoint().to_string(), "127.0.0.1:4321");
        let deadline = Instant::now() + Duration::from_secs(5);
        let line = loop {
            if let Some(line) = server.next_line() {
                break line;
            }
            assert!(Instant::now() < deadline, "the second line never came");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(line, "driver: epoll");
        assert_eq!(server.next_line(), None);
        while server.stderr_tail().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(server.stderr_tail(), ["oops"]);
        let status = server
            .terminate(Duration::from_secs(5))
            .expect("exits on SIGTERM");
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn a_first_line_that_is_not_listening_on_exit_or_silence_is_each_its_own_error() {
        let within = Duration::from_secs(5);
        match first_line("echo hello; exec sleep 30", within) {
            Err(LaunchError::NotListening { line }) => assert_eq!(line, "hello"),
            other => panic!("{other:?}"),
        }
        match first_line("exit 3", within) {
            Err(
                err @ LaunchError::ExitedBeforeListening {
                    status: Some(status),
                },
            ) => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(
                    err.to_string(),
                    "server exited before listening (exit code 3)"
                );
            }
            other => panic!("{other:?}"),
        }
        let began = Instant::now();
        match first_line("exec sleep 30", Duration::from_millis(200)) {
            Err(err @ LaunchError::Silent { .. }) => {
                assert_eq!(err.to_string(), "no 'listening on' line within 200ms")
            }
            other => panic!("{other:?}"),
        }
        assert!(began.elapsed() < Duration::from_secs(5));
        let mut missing = Command::new("/nonexistent/echo-server");
        missing.stdout(std::process::Stdio::piped());
        assert!(matches!(
            start(missing, given(), None, Ready::FirstLine, within),
            Err(LaunchError::Spawn(_))
        ));
    }

    #[test]
    fn an_outside_server_is_ready_when_it_answers_at_the_address_it_was_given() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: Endpoint = listener.local_addr().unwrap().into();
        // Prints nothing: ready because something accepts at its address.
        let server = start(
            shell("exec sleep 30"),
            addr.clone(),
            None,
            Ready::LineOrAnswer,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(server.endpoint(), &addr);
        drop(server);
        match start(
            shell("exit 4"),
            given(),
            None,
            Ready::LineOrAnswer,
            Duration::from_secs(5),
        ) {
            Err(LaunchError::ExitedBeforeReady(status)) => assert_eq!(status.code(), Some(4)),
            other => panic!("{other:?}"),
        }
    }
}
