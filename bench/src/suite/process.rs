//! Server processes for the suite and `ab`: started pinned to the server's CPUs through the
//! shared launcher ([`echo_loadgen::launch`]), stopped with SIGTERM and checked for a clean exit. A
//! model runs as `echo-bench serve` and must print `listening on` first; an outside server from
//! its command (ready when it accepts connections or says `listening on`), and stopping it by
//! SIGTERM's default action counts as clean. An outside server whose command takes `{cert}`
//! or `{key}` is started on a `tls:` address with the certificate and key the caller made
//! ([`Launcher::start_identified`]: the suite makes one pair per run).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use echo_cli::{Endpoint, Transport};

use super::Server;
use echo_loadgen::conformance::Identity;
use echo_loadgen::launch::{self, LaunchError, Launched, Ready, describe};

use echo_loadgen::procfs;

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = launch::READY_WITHIN;
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How to start a server: a program and the arguments before `--model NAME --listen ADDR`.
/// A wrapper (valgrind, `taskset`, ...) is the program, with the binary and `serve` among the
/// arguments: the launcher runs whatever command this makes.
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

    /// Starts an outside server from its command on `transport`, pinned to `cpus`, its
    /// `{cert}` and `{key}` filled from `identity`.
    fn start_outside(
        server: Server,
        transport: Transport,
        cpus: Option<&[usize]>,
        identity: Option<Identity<'_>>,
    ) -> Result<ServerProcess, String> {
        let command = server.command().ok_or_else(|| {
            format!("{server}: an outside server read back from a stored run has no command")
        })?;
        let (mut process, given, dir) = command
            .prepare_with(transport, identity)
            .map_err(|e| format!("{server}: {e}"))?;
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
            launched,
            outside: true,
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

    /// [`Launcher::start_with`], giving an outside server that serves TLS (its command takes
    /// `{cert}` or `{key}`) the certificate and key of `identity`; a model makes its own.
    pub fn start_identified(
        &self,
        server: Server,
        transport: Transport,
        cpus: Option<&[usize]>,
        more: &[String],
        identity: Option<Identity<'_>>,
    ) -> Result<ServerProcess, String> {
        if server.is_outside() {
            return Self::start_outside(server, transport, cpus, identity);
        }
        self.start_with(server, transport, cpus, more)
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
            return Self::start_outside(server, transport, cpus, None);
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
        // The `driver:` line after `listening on` is read once the load ran
        // ([`ServerProcess::driver`]), so a build from before that line is not kept waiting.
        let launched = launch::start(command, endpoint, socket_dir, Ready::FirstLine, limit)
            .map_err(|e| match e {
                LaunchError::Spawn(e) => format!("cannot run {}: {e}", self.program.display()),
                other => other.to_string(),
            })?;
        Ok(ServerProcess {
            launched,
            outside: false,
        })
    }
}

/// A running server process; killed if dropped without [`ServerProcess::stop`] (with its
/// socket folder, after it).
#[derive(Debug)]
pub struct ServerProcess {
    launched: Launched,
    /// An outside server's (started from its command), not a model's.
    outside: bool,
}

impl ServerProcess {
    /// Where it listens.
    pub fn endpoint(&self) -> &Endpoint {
        self.launched.endpoint()
    }

    /// The driver a model's server said it waits on (the `driver: NAME` line it prints right
    /// after `listening on`, so asked once the load ran it has long been printed); `None` for
    /// an outside server, or a build from before servers printed it.
    pub fn driver(&self) -> Option<echo_servers::Driver> {
        if self.outside {
            return None;
        }
        let line = self.launched.next_line()?;
        line.trim().strip_prefix("driver: ")?.parse().ok()
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.launched.pid()
    }

    /// Sends SIGTERM and checks that it exits 0 in time (an outside server may also end by the
    /// signal's default action); says what went wrong otherwise (including a crash before the
    /// signal).
    pub fn stop(mut self) -> Result<(), String> {
        if let Some(status) = self.launched.exited() {
            return Err(format!(
                "server crashed during the run ({})",
                describe(status)
            ));
        }
        let status = self.launched.terminate(STOP_TIMEOUT);
        let clean = |status: std::process::ExitStatus| {
            status.success() || (self.outside && status.signal() == Some(libc::SIGTERM))
        };
        match status {
            Some(status) if clean(status) => Ok(()),
            Some(status) => Err(format!(
                "server did not exit cleanly ({})",
                describe(status)
            )),
            None if self.outside => Err(format!(
                "server did not exit within {STOP_TIMEOUT:?} of SIGTERM"
            )),
            None => Err(format!(
                "server did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed)"
            )),
        }
    }
}

/// What a model is told to listen on for `transport`: port 0 on loopback, or a socket path
/// in a fresh private folder (the server removes the socket when it stops; the folder goes
/// with the returned guard).
fn free_listen(transport: Transport) -> Result<(Endpoint, launch::SocketDir), String> {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    Ok(match transport {
        Transport::Tcp => (Endpoint::Tcp(loopback), None),
        Transport::Udp => (Endpoint::Udp(loopback), None),
        Transport::Tls => (Endpoint::Tls(loopback), None),
        Transport::Unix => {
            let (dir, path) = echo_loadgen::files::private_socket("echo-suite")
                .map_err(|e| format!("cannot make a folder for the socket: {e}"))?;
            (Endpoint::Unix(path), Some(dir))
        }
    })
}
