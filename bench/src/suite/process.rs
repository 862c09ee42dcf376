//! Server processes for the suite: started pinned to the server's CPUs, read for their
//! `listening on` line, stopped with SIGTERM and checked for a clean exit. A model runs as
//! `echo-bench serve`; an outside server from its command (ready when it accepts connections or
//! says `listening on`), and stopping it by SIGTERM's default action counts as clean.

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use echo_cli::{Endpoint, Transport};

use super::Server;
use crate::conformance::Launched;

use crate::procfs;

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How to start a server: a program and the arguments before `--model NAME --listen ADDR`.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the model's.
    pub args: Vec<String>,
    /// Extra arguments per model (testing aids, such as a crash on purpose).
    pub extra: Vec<(Server, Vec<String>)>,
}

impl Launcher {
    /// This very binary, re-executed as `echo-bench serve`: works from a clean clone with
    /// `cargo run --release`, which builds only the default member.
    pub fn this_binary() -> std::io::Result<Self> {
        Ok(Self {
            program: std::env::current_exe()?,
            args: vec!["serve".into()],
            extra: Vec::new(),
        })
    }

    /// Starts `model` on a free loopback address (TCP), pinned to `cpus`, and waits for it to
    /// listen.
    pub fn start(
        &self,
        model: impl Into<Server>,
        cpus: Option<&[usize]>,
    ) -> Result<ServerProcess, String> {
        self.start_with(model.into(), Transport::Tcp, cpus, &[])
    }

    /// Starts an outside server from its command on `transport`, pinned to `cpus`.
    fn start_outside(
        server: Server,
        transport: Transport,
        cpus: Option<&[usize]>,
    ) -> Result<ServerProcess, String> {
        let command = server.command().ok_or_else(|| {
            format!("{server}: an outside server read back from a stored run has no command")
        })?;
        let (mut process, given, dir) = command.prepare(transport).map_err(|e| e.to_string())?;
        if let Some(cpus) = cpus {
            let set = procfs::CpuSet::of(cpus).map_err(|e| e.to_string())?;
            // SAFETY: the closure only calls sched_setaffinity, which is async-signal-safe.
            unsafe {
                process.pre_exec(move || set.apply());
            }
        }
        let launched = Launched::spawn(process, given, dir)
            .map_err(|e| format!("{server} ({}): {e}", command.template()))?;
        // A `Launched` removes the socket path it made up itself.
        Ok(ServerProcess {
            addr: launched.endpoint().clone(),
            process: Process::Outside(launched),
            _socket_dir: None,
            lines: None,
        })
    }

    /// [`Launcher::start`] on `transport`, with more server arguments (such as
    /// `--work-us 50`).
    pub fn start_with(
        &self,
        server: Server,
        transport: Transport,
        cpus: Option<&[usize]>,
        more: &[String],
    ) -> Result<ServerProcess, String> {
        self.start_within(server, transport, cpus, more, START_TIMEOUT)
    }

    /// [`Launcher::start_with`], waiting up to `limit` for the `listening on` line (a server
    /// under valgrind reads the binary's debug information first: seconds, more on a busy
    /// machine).
    pub fn start_within(
        &self,
        server: Server,
        transport: Transport,
        cpus: Option<&[usize]>,
        more: &[String],
        limit: Duration,
    ) -> Result<ServerProcess, String> {
        let Some(model) = server.model() else {
            return Self::start_outside(server, transport, cpus);
        };
        let (endpoint, socket_dir) = free_listen(transport)?;
        let listen = endpoint.to_string();
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .args(["--model", model.name(), "--listen", &listen])
            .args(server.server_args())
            .args(
                self.extra
                    .iter()
                    .filter(|(m, _)| *m == server)
                    .flat_map(|(_, a)| a.iter()),
            )
            .args(more)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(cpus) = cpus {
            // Built before the fork: only sched_setaffinity runs between fork and exec.
            let set = procfs::CpuSet::of(cpus).map_err(|e| e.to_string())?;
            // SAFETY: the closure only calls sched_setaffinity, which is async-signal-safe.
            unsafe {
                command.pre_exec(move || set.apply());
            }
        }
        let mut child = crate::child::spawn(&mut command)
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // `listening on ADDR`, then `driver: NAME`; an empty line for a closed stdout.
            let mut stdout = BufReader::new(stdout);
            for _ in 0..2 {
                let mut line = String::new();
                let _ = stdout.read_line(&mut line);
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let server = ServerProcess {
            process: Process::Own(child),
            _socket_dir: socket_dir,
            addr: endpoint,
            lines: None,
        };
        let mut server = server.wait_listening(&rx, limit)?;
        server.lines = Some(rx);
        Ok(server)
    }
}

impl ServerProcess {
    /// Waits up to `limit` for the first line of a model's server, which must be
    /// `listening on ADDR`; anything else (another line, an exit, silence) is one line of error,
    /// and the process is killed (by the drop). The `driver:` line after it is read later
    /// ([`ServerProcess::driver`]), so a build from before that line is not kept waiting.
    fn wait_listening(
        mut self,
        lines: &mpsc::Receiver<String>,
        limit: Duration,
    ) -> Result<Self, String> {
        let Process::Own(child) = &mut self.process else {
            unreachable!("only a model's server prints its line here");
        };
        let line = match lines.recv_timeout(limit) {
            Ok(line) => line,
            Err(_) => return Err(format!("no 'listening on' line within {limit:?}")),
        };
        let first = line.trim();
        if let Some(addr) = first
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
        {
            self.addr = addr;
            return Ok(self);
        }
        if first.is_empty() {
            // Its stdout closed: it exited (or is exiting) without a line.
            let status = crate::child::wait_until(child, Instant::now() + STOP_TIMEOUT)
                .ok()
                .flatten();
            return Err(format!(
                "server exited before listening ({})",
                status.map_or("still running with its stdout closed".into(), describe)
            ));
        }
        let shown: String = first.chars().take(80).collect();
        Err(format!(
            "server printed '{shown}' instead of a 'listening on ADDR' line"
        ))
    }
}

/// A running server process; killed if dropped without [`ServerProcess::stop`].
#[derive(Debug)]
pub struct ServerProcess {
    process: Process,
    addr: Endpoint,
    /// A Unix socket's private folder, removed after the process (fields drop after
    /// `Drop::drop`), with whatever socket file the server left there.
    _socket_dir: crate::conformance::SocketDir,
    /// The rest of a model's stdout: its `driver:` line (none for an outside server).
    lines: Option<mpsc::Receiver<String>>,
}

/// A model's process, or an outside server's.
#[derive(Debug)]
enum Process {
    Own(Child),
    Outside(Launched),
}

impl ServerProcess {
    /// Where it listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.addr
    }

    /// The driver a model's server said it waits on (the `driver: NAME` line it prints right
    /// after `listening on`, so asked once the load ran it has long been printed); `None` for
    /// an outside server, or a build from before servers printed it.
    pub fn driver(&self) -> Option<echo_servers::Driver> {
        let line = self.lines.as_ref()?.try_recv().ok()?;
        line.trim().strip_prefix("driver: ")?.parse().ok()
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        match &self.process {
            Process::Own(child) => child.id(),
            Process::Outside(launched) => launched.pid(),
        }
    }

    /// Sends SIGTERM and checks that it exits 0 in time (an outside server may also end by the
    /// signal's default action); says what went wrong otherwise (including a crash before the
    /// signal).
    pub fn stop(mut self) -> Result<(), String> {
        let child = match &mut self.process {
            Process::Own(child) => child,
            Process::Outside(launched) => {
                if let Some(status) = launched.exited() {
                    return Err(format!(
                        "server crashed during the run ({})",
                        describe(status)
                    ));
                }
                return match launched.terminate(STOP_TIMEOUT) {
                    Some(status) if status.success() || status.signal() == Some(libc::SIGTERM) => {
                        Ok(())
                    }
                    Some(status) => Err(format!(
                        "server did not exit cleanly ({})",
                        describe(status)
                    )),
                    None => Err(format!(
                        "server did not exit within {STOP_TIMEOUT:?} of SIGTERM"
                    )),
                };
            }
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "server crashed during the run ({})",
                describe(status)
            ));
        }
        match crate::child::stop(child, STOP_TIMEOUT) {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(format!(
                "server did not exit cleanly ({})",
                describe(status)
            )),
            None => Err(format!(
                "server did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed)"
            )),
        }
    }
}

impl Drop for ServerProcess {
    /// Kills the server's process group if it still runs and reaps it; then its socket folder
    /// goes, with whatever socket file a server killed, or one that failed, left behind.
    fn drop(&mut self) {
        // A `Launched` kills its own process when dropped.
        if let Process::Own(child) = &mut self.process {
            crate::child::kill(child);
        }
    }
}

/// What a model is told to listen on for `transport`: port 0 on loopback, or a socket path
/// in a fresh private folder (the server removes the socket when it stops; the folder goes
/// with the returned guard).
fn free_listen(transport: Transport) -> Result<(Endpoint, crate::conformance::SocketDir), String> {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    Ok(match transport {
        Transport::Tcp => (Endpoint::Tcp(loopback), None),
        Transport::Udp => (Endpoint::Udp(loopback), None),
        Transport::Unix => {
            let (dir, path) = crate::files::private_socket("echo-suite")
                .map_err(|e| format!("cannot make a folder for the socket: {e}"))?;
            (Endpoint::Unix(path), Some(dir))
        }
    })
}

/// Polls `child` until it exits or `deadline` passes: its status, or `None` if it is still
/// running then. The one wait-with-a-deadline of every tool's child processes
/// ([`crate::child::wait_until`]).
pub use crate::child::wait_until;

fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}
