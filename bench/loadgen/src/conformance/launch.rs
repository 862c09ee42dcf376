//! Starting a server from a command line for a check: a free loopback address filled into the
//! command (`{addr}`, `{host}`, `{port}`), readiness (it accepts connections, or prints
//! `listening on ADDR`), a descriptor limit when a check asks for one, and a bounded stop.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a started server may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A server command line, run through `sh -c 'exec …'` (so the pid is the server's own), with
/// `{addr}`, `{host}` and `{port}` replaced by a free loopback address.
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

    /// The process to start, on a free loopback port (the address it was given is returned
    /// with it), for a caller that adds its own settings (CPU pinning) before
    /// [`Launched::spawn`].
    pub fn prepare(&self) -> std::io::Result<(Command, SocketAddr)> {
        let free = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let line = self
            .template
            .replace("{addr}", &free.to_string())
            .replace("{host}", &free.ip().to_string())
            .replace("{port}", &free.port().to_string());
        let mut command = Command::new("sh");
        command
            .args(["-c", &format!("exec {line}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        Ok((command, free))
    }

    /// Starts the server on a free loopback port, with at most `fd_limit` descriptors if
    /// given, and waits until it is ready.
    pub fn launch(&self, fd_limit: Option<u64>) -> std::io::Result<Launched> {
        let (mut command, free) = self.prepare()?;
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
        Launched::spawn(command, free)
    }
}

impl Launched {
    /// Spawns `command` (from [`ServerCommand::prepare`], given `addr`) and waits until it is
    /// ready.
    pub fn spawn(mut command: Command, addr: SocketAddr) -> std::io::Result<Launched> {
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
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
            addr,
            stdout: Some(lines),
        };
        launched.wait_ready(&rx, addr)?;
        Ok(launched)
    }
}

/// A server started by [`ServerCommand::launch`]; killed when dropped.
#[derive(Debug)]
pub struct Launched {
    child: Child,
    addr: SocketAddr,
    stdout: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Launched {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ready once it prints `listening on ADDR` (that address is then used) or accepts a
    /// connection at the address it was given; `Err` if it exits first or takes too long.
    fn wait_ready(
        &mut self,
        lines: &mpsc::Receiver<String>,
        given: SocketAddr,
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
            if TcpStream::connect_timeout(&given, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other(format!(
            "the server was not ready within {READY_WITHIN:?} (no connection accepted at {given}, \
             no `listening on` line)"
        )))
    }

    /// Sends SIGTERM and waits up to `within` for it to exit; its status, or `None`.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok()?
    }

    /// What it printed on stdout, once it has exited (`None` while it runs).
    pub fn output(&mut self) -> Option<Vec<String>> {
        self.child.try_wait().ok()??;
        self.stdout.take()?.join().ok()
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
