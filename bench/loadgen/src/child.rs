//! The child processes of every tool (servers, and `ab`'s load generators): each started by
//! [`spawn`] in a process group of its own, with `PR_SET_PDEATHSIG` = SIGKILL, so it dies with
//! the thread that started it (even when the tool is killed with SIGKILL), and registered, so
//! that [`handle_signals`] can stop every group still running when the tool gets SIGINT or
//! SIGTERM: SIGTERM to each group, up to [`STOP_WITHIN`] to exit, then SIGKILL; every child
//! reaped; the folders the tool asked for removed ([`make_removed_on_interrupt`]); then the tool's
//! interrupt hook ([`on_interrupt`], such as the suite's partial run.json), and the exit code
//! [`exit_code_for`] the signal: 130 for SIGINT, 143 for SIGTERM.
//!
//! A tool calls [`settle`] before it reports or writes results an interrupt may have cut short
//! (and before it exits, so its own code never replaces the signal's), and writes its final
//! results through [`finishing`], which an interrupt waits for.
//!
//! Every wait on a child here has a deadline ([`wait_until`], [`stop`]).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long a child may take to exit after SIGTERM before it is sent SIGKILL.
pub const STOP_WITHIN: Duration = Duration::from_secs(5);

/// The process groups started by [`spawn`] and not yet reaped by their owner.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Folders a tool made for its run and removes at its end, which an interrupt's exit would
/// skip: removed on an interrupt once the children are stopped ([`make_removed_on_interrupt`]).
static FOLDERS: Mutex<Folders> = Mutex::new(Folders {
    list: Vec::new(),
    closed: false,
});

/// [`FOLDERS`]' list, and whether the interrupt has already taken it.
struct Folders {
    list: Vec<std::path::PathBuf>,
    /// Set when the interrupt removes the list's folders: a folder made after that would be
    /// left behind by the exit that follows, so none is made ([`make_removed_on_interrupt`]).
    closed: bool,
}

fn folders() -> std::sync::MutexGuard<'static, Folders> {
    FOLDERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes a folder with `make` (its path given by `folder`), for a tool that removes it when
/// done, and has an interrupt (whose exit drops nothing) remove it too, with what is in it,
/// once the children are stopped. It is made and listed while the interrupt cannot take the
/// list: a folder made while the interrupt removes the others would be left behind by its exit.
/// Once an interrupt has begun, makes none (`Interrupted`). [`forget_on_interrupt`] once the
/// tool removed it.
pub fn make_removed_on_interrupt<T>(
    make: impl FnOnce() -> std::io::Result<T>,
    folder: impl FnOnce(&T) -> &std::path::Path,
) -> std::io::Result<T> {
    let mut folders = folders();
    if folders.closed {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            "interrupted: no new folder",
        ));
    }
    let made = make()?;
    folders.list.push(folder(&made).to_owned());
    Ok(made)
}

/// Takes `folder` off [`make_removed_on_interrupt`]'s list (the tool removes it itself).
pub fn forget_on_interrupt(folder: &std::path::Path) {
    folders().list.retain(|f| f != folder);
}

/// Removes the folders of [`make_removed_on_interrupt`]'s list, and has it make no more.
fn remove_folders() {
    let mut folders = folders();
    folders.closed = true;
    for folder in std::mem::take(&mut folders.list) {
        let _ = std::fs::remove_dir_all(folder);
    }
}

/// What the tool does on an interrupt once its children are stopped (before it exits).
type Hook = Box<dyn FnOnce() + Send>;
static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

/// Set once SIGINT or SIGTERM arrived ([`handle_signals`]).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The signal that arrived.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// How long [`settle`] waits for the signal handling to end the process before it does.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);

/// Whether the tool was interrupted by SIGINT or SIGTERM: a result measured now may be cut
/// short and is not to be kept.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Held while a tool writes its final results, so an interrupt waits for the write to finish.
static WRITING: Mutex<()> = Mutex::new(());

/// The exit code of a tool stopped by `signal`: 128 + the signal's number (130 for SIGINT, 143
/// for SIGTERM), what a shell reports for a process the signal killed.
pub fn exit_code_for(signal: i32) -> u8 {
    match signal {
        libc::SIGINT => echo_cli::EXIT_SIGINT,
        libc::SIGTERM => echo_cli::EXIT_SIGTERM,
        other => (128 + other).clamp(0, 255) as u8,
    }
}

/// Starts `command` in a process group of its own (its pid is the group's id) that is killed
/// with SIGKILL when the calling thread ends (`PR_SET_PDEATHSIG`), and registers the group for
/// [`handle_signals`]. Call [`reaped`] once the child has been waited for.
pub fn spawn(command: &mut Command) -> std::io::Result<Child> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    command.process_group(0);
    // SAFETY: the closure calls only prctl and getppid, both async-signal-safe, and allocates
    // nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the death signal was armed.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the parent exited"));
            }
            Ok(())
        });
    }
    // Registered under the lock, so an interrupt either sees the group or comes before it.
    let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    if interrupted() {
        return Err(std::io::Error::other(
            "interrupted: no new process is started",
        ));
    }
    let child = command.spawn()?;
    groups.push(child.id() as i32);
    Ok(child)
}

/// Says that the child `pid` (from [`spawn`]) has been reaped: its group is no longer stopped on
/// an interrupt.
pub fn reaped(pid: u32) {
    let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    groups.retain(|&g| g != pid as i32);
}

/// Polls `child` until it exits or `deadline` passes: its status, or `None` if it still runs.
pub fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            reaped(child.id());
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends SIGTERM to `child`'s group and waits up to `within` for the child to exit: its status,
/// or `None` when it did not (the group is then killed with SIGKILL and the child reaped).
pub fn stop(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        reaped(child.id());
        return Some(status);
    }
    signal_group(child.id() as i32, libc::SIGTERM);
    let status = wait_until(child, Instant::now() + within).ok().flatten();
    if status.is_none() {
        kill(child);
    }
    // Whatever else the child started in its group goes too.
    signal_group(child.id() as i32, libc::SIGKILL);
    status
}

/// Kills `child`'s group with SIGKILL and reaps the child.
pub fn kill(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        signal_group(child.id() as i32, libc::SIGKILL);
        let _ = child.kill();
    }
    let _ = child.wait();
    reaped(child.id());
}

fn signal_group(group: i32, signal: i32) {
    if group > 0 {
        // SAFETY: kill(2) on a process group this process started.
        unsafe { libc::kill(-group, signal) };
    }
}

/// Runs `write` (a tool's final results) so that an interrupt meanwhile waits for it, with the
/// interrupt hook cleared first: the complete results replace the partial ones. After an
/// interrupt, never returns: the results are cut short, and the signal handling writes what it
/// writes and exits ([`settle`]).
pub fn finishing<T>(write: impl FnOnce() -> T) -> T {
    let writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    if interrupted() {
        drop(writing);
        settle();
    }
    HOOK.lock().unwrap_or_else(|e| e.into_inner()).take();
    write()
}

/// After an interrupt, waits for the signal handling to stop the children, run the hook and
/// exit with its code (exits with that code itself if that takes over two minutes): a tool calls
/// it before it reports or writes results that the interrupt cut short, and before it exits, so
/// its own exit code never replaces 130 or 143. Returns at once when there was no interrupt.
pub fn settle() {
    if !interrupted() {
        return;
    }
    std::thread::sleep(SETTLE_WITHIN);
    std::process::exit(exit_code_for(SIGNAL.load(Ordering::SeqCst)).into());
}

/// Sets what an interrupt does once the children are stopped, before the tool exits (such as
/// writing what was measured so far).
pub fn on_interrupt(hook: impl FnOnce() + Send + 'static) {
    *HOOK.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
}

/// Installs the handling of SIGINT and SIGTERM for `tool` (a thread of its own): stop every
/// registered child group (SIGTERM, then SIGKILL after [`STOP_WITHIN`]), reap them, run the
/// hook of [`on_interrupt`], print one line, and exit with [`exit_code_for`] the signal.
pub fn handle_signals(tool: &'static str) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Some(signal) = signals.forever().next() else {
                return;
            };
            SIGNAL.store(signal, Ordering::SeqCst);
            INTERRUPTED.store(true, Ordering::SeqCst);
            stop_all();
            remove_folders();
            let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
            let hook = HOOK.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(hook) = hook {
                hook();
            }
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            eprintln!("{tool}: interrupted by {name}; its child processes are stopped");
            std::process::exit(exit_code_for(signal).into());
        })?;
    Ok(())
}

/// Stops every registered group: SIGTERM, then SIGKILL to those still there after
/// [`STOP_WITHIN`]; reaps every child among them.
fn stop_all() {
    // Held to the end: nothing new is started meanwhile.
    let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    for &group in groups.iter() {
        signal_group(group, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_WITHIN;
    loop {
        groups.retain(|&group| !gone(group));
        if groups.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for &group in groups.iter() {
        signal_group(group, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while !groups.is_empty() && Instant::now() < deadline {
        groups.retain(|&group| !gone(group));
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether group `group` has no process left, reaping the exited children of this process in
/// it.
fn gone(group: i32) -> bool {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on this process's own children in `group`.
        let pid = unsafe { libc::waitpid(-group, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
    // SAFETY: signal 0 only checks whether the group still has a process.
    unsafe { libc::kill(-group, 0) != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_runs_in_its_own_group_and_is_stopped() {
        let mut child = spawn(Command::new("sleep").arg("30")).unwrap();
        // SAFETY: getpgid on our own child.
        let group = unsafe { libc::getpgid(child.id() as i32) };
        assert_eq!(group, child.id() as i32);
        let began = Instant::now();
        let status = stop(&mut child, Duration::from_secs(2)).expect("exits on SIGTERM");
        assert!(!status.success());
        assert!(began.elapsed() < Duration::from_secs(2));
        assert!(!GROUPS.lock().unwrap().contains(&group));
        assert_eq!(exit_code_for(libc::SIGINT), 130);
        assert_eq!(exit_code_for(libc::SIGTERM), 143);
    }
}
