//! [`Health`], where a running server's loops report their death and a front end waits for
//! that or an interrupt. A module of its own, below the [`EchoServer`](crate::EchoServer)
//! contract, so the shared code the loops use (the accept-error policy in [`crate::net`]) can
//! report to it without depending on the contract.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Whether a running server still serves: its loops report here when one dies for good, and
/// a front end waits here for that or for an interrupt. Cloning shares it.
///
/// A loop's failure is recorded only while the server runs: once [`Health::interrupt`] or
/// [`ServerHandle::shutdown`](crate::ServerHandle::shutdown) began, a loop that ends with an error ends because it was told
/// to.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<(Mutex<HealthState>, Condvar)>,
}

#[derive(Debug, Default)]
struct HealthState {
    interrupted: bool,
    failure: Option<String>,
}

/// How [`Health::wait`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// [`Health::interrupt`] was called (a signal, in the `echo-server` binary).
    Interrupted,
    /// A loop died: which, and why.
    Died(String),
}

impl Health {
    /// Records that a loop died (the first death is kept), says so on stderr, and wakes every
    /// waiter. Ignored once the server is stopping.
    pub(crate) fn died(&self, why: fmt::Arguments<'_>) {
        let (state, changed) = &*self.inner;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        if state.interrupted || state.failure.is_some() {
            return;
        }
        let why = why.to_string();
        eprintln!("echo-server: {why}; the server no longer serves every client");
        state.failure = Some(why);
        changed.notify_all();
    }

    /// Marks the server as stopping (its loops' errors from now on are the shutdown's) and
    /// wakes every waiter.
    pub fn interrupt(&self) {
        let (state, changed) = &*self.inner;
        state.lock().unwrap_or_else(|e| e.into_inner()).interrupted = true;
        changed.notify_all();
    }

    /// Why a loop died, if one did.
    pub fn failure(&self) -> Option<String> {
        let (state, _) = &*self.inner;
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failure
            .clone()
    }

    /// Waits until a loop dies or [`Health::interrupt`] is called, whichever comes first.
    pub fn wait(&self) -> Ended {
        self.wait_until(None)
            .expect("an unbounded wait ends only by an event")
    }

    /// As [`Health::wait`], for at most `timeout`; `None` if neither happened by then.
    pub fn wait_for(&self, timeout: Duration) -> Option<Ended> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Option<Ended> {
        let (state, changed) = &*self.inner;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(why) = &state.failure {
                return Some(Ended::Died(why.clone()));
            }
            if state.interrupted {
                return Some(Ended::Interrupted);
            }
            state = match deadline {
                None => changed.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}
