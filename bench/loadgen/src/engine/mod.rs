//! Runs a load against a socket address and gathers what the workers recorded.
//!
//! The timeline of a run: the workers open their connections (not measured), wait at a start
//! gate that the coordinator opens once all of them are ready (or calls off if one failed), then
//! send traffic through the warm-up (not measured) and the measured window. The
//! coordinating thread samples the client's and the server's resource use at the window's edges
//! and reports progress; it never touches a socket. This module knows only a socket address and,
//! optionally, a server pid: nothing about which server is behind it. A stream target (TCP or
//! Unix) is driven by the event-loop or threads engine, a `udp:` target by the datagram engine.

mod datagram;
mod event_loop;
pub mod intervals;
mod threads;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{Engine, RunConfig, RunOptions, Stop};
use crate::procfs::{self, CpuTimes, MachineUsage, ProcSample, ServerUsage};
use crate::stats::WorkerStats;
pub use intervals::{IntervalFigures, MinuteFigures, Observe};

/// What one worker hands back.
pub(crate) struct WorkerOutcome {
    stats: WorkerStats,
    finished_at: Instant,
}

/// When the measured window opens and (for timed runs) closes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeline {
    measure_start: Instant,
    end: Option<Instant>,
}

/// Where the workers wait for each other before the traffic starts: each says it has opened
/// its connections, and waits until the coordinator either opens the run for all (with its
/// timeline) or calls it off. A `Barrier` sized for every worker cannot be called off, so a
/// worker that could not be spawned would leave the others waiting for it forever.
#[derive(Default)]
struct StartGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    /// Workers that have opened their connections.
    arrived: usize,
    /// `Some(Some(timeline))` once the run is open, `Some(None)` once it is called off.
    decided: Option<Option<Timeline>>,
}

impl StartGate {
    /// A worker's side: counts it in, then waits for the decision.
    fn arrive_and_wait(&self) -> Option<Timeline> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.arrived += 1;
        self.changed.notify_all();
        loop {
            if let Some(decided) = state.decided {
                return decided;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The coordinator's side: waits until `workers` have arrived. Each worker arrives after
    /// its connect attempts, which are bounded by the run's timeout, so this wait ends.
    fn wait_for(&self, workers: usize) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.arrived < workers {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Opens the run for every worker (`Some`), or calls it off (`None`).
    fn decide(&self, timeline: Option<Timeline>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.decided = Some(timeline);
        self.changed.notify_all();
    }
}

/// What the workers share with each other and the coordinator.
pub(crate) struct RunState {
    config: RunConfig,
    threads: usize,
    gate: StartGate,
    started: AtomicBool,
    completed: AtomicU64,
    intervals: intervals::Shared,
}

impl RunState {
    /// Called by every worker once its connections are open; returns the timeline, or `None`
    /// when the run was called off (another worker could not be started): the worker then
    /// returns at once, closing its connections.
    fn wait_for_start(&self) -> Option<Timeline> {
        self.gate.arrive_and_wait()
    }

    fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// Adds a worker's newly completed messages to the shared progress counter.
    fn report_progress(&self, worker_total: u64) {
        thread_local!(static LAST: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });
        LAST.with(|last| {
            let delta = worker_total.saturating_sub(last.get());
            if delta > 0 {
                self.completed.fetch_add(delta, Ordering::Relaxed);
                last.set(worker_total);
            }
        });
    }
}

/// The seed of one connection's byte stream: distinct per slot and per reconnect.
pub(crate) fn connection_seed(seed: u64, slot: usize, generation: u64) -> u64 {
    seed ^ (slot as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) ^ generation.rotate_left(32)
}

/// The outcome of a worker that could not set up (no poll, no socket): one connect error, after
/// meeting the others at the start gate, which counts on every worker.
fn failed_to_start(shared: &RunState) -> WorkerOutcome {
    let Some(timeline) = shared.wait_for_start() else {
        return WorkerOutcome::called_off();
    };
    let mut stats = WorkerStats::default();
    stats.errors.connect += 1;
    WorkerOutcome {
        stats,
        finished_at: timeline.measure_start,
    }
}

impl WorkerOutcome {
    /// The outcome of a worker whose run was called off before it started: nothing measured.
    fn called_off() -> Self {
        WorkerOutcome {
            stats: WorkerStats::default(),
            finished_at: Instant::now(),
        }
    }
}

/// Progress while a run is going.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Time since the measured window opened (zero during warm-up).
    pub elapsed: Duration,
    /// Whether the run is still warming up.
    pub warming_up: bool,
    /// Messages completed in the measured window so far.
    pub messages: u64,
}

/// Everything a run measured, before it is turned into a report.
#[derive(Debug)]
pub struct RunOutcome {
    /// The merged worker records.
    pub stats: WorkerStats,
    /// The measured window's length.
    pub window: Duration,
    /// The client process's CPU time in the window (all threads).
    pub client_cpu: Duration,
    /// The server's resource use in the window, when its pid is known and it is alive.
    pub server: Option<ServerUsage>,
    /// Client worker threads (connections, for the threads engine).
    pub client_threads: usize,
    /// What the CPUs the client and server run on did in the window, all tasks included.
    pub machine: Option<MachineUsage>,
    /// When the measured window opened, by the wall clock (so that the windows of agents on
    /// several machines can be lined up).
    pub window_start: std::time::SystemTime,
    /// The window's figures per interval ([`intervals`]), in order.
    pub intervals: Vec<IntervalFigures>,
    /// The window's figures per minute.
    pub minutes: Vec<intervals::MinuteFigures>,
    /// Intervals closed past the most a run keeps ([`intervals::MAX_KEPT`]).
    pub intervals_not_kept: u64,
}

/// The CPUs whose time counts as the run's: the client's and the server's when both are pinned,
/// else every CPU (an unpinned process may run anywhere).
fn run_cpus(config: &RunConfig) -> Option<Vec<usize>> {
    let mut cpus = config.client_cpus.clone()?;
    let server = procfs::cpus_of(config.server_pid?)?;
    cpus.extend(server);
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// Runs `config` and returns what it measured. `on_progress` is called
/// about ten times a second from the calling thread.
///
/// Long on purpose: it is the run's whole timeline (spawn, start gate, warm-up, the
/// samples at the window's two edges, teardown) in one place, because the order of those steps
/// is what makes the figures right; split, the order would be spread over several functions.
pub fn run(
    config: &RunConfig,
    on_progress: &mut dyn FnMut(Progress),
) -> std::io::Result<RunOutcome> {
    run_observed(
        config,
        on_progress,
        Observe {
            width: intervals::DEFAULT_WIDTH,
            histograms: false,
            on_interval: &mut |_| {},
        },
    )
}

/// [`run`], with the intervals as `observe` asks: their length, whether to keep their
/// histograms (for an interval log), and a call as each closes.
pub fn run_observed(
    config: &RunConfig,
    on_progress: &mut dyn FnMut(Progress),
    observe: Observe<'_>,
) -> std::io::Result<RunOutcome> {
    let Observe {
        width,
        histograms,
        on_interval,
    } = observe;
    if let Some(cpus) = &config.client_cpus {
        // Before the workers are spawned, so they inherit it.
        procfs::pin_current_thread(cpus)?;
    }
    let workers = match config.engine {
        Engine::EventLoop => config.threads.min(config.connections),
        Engine::Threads => config.connections,
    };
    let shared = RunState {
        config: config.clone(),
        threads: workers,
        gate: StartGate::default(),
        started: AtomicBool::new(false),
        completed: AtomicU64::new(0),
        intervals: intervals::Shared::new(width),
    };
    // Workers wake the coordinator when they finish, so a short run (a criterion sample) does
    // not wait out the coordinator's nap.
    let coordinator = std::thread::current();
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let shared = &shared;
            let coordinator = coordinator.clone();
            // Slots dealt round-robin, so each worker gets an even share.
            let slots: Vec<usize> = (w..config.connections).step_by(workers).collect();
            let quota = event_loop::quota(config.stop, w, workers);
            let builder = std::thread::Builder::new().name(format!("client-{w}"));
            let spawned = match config.engine {
                Engine::EventLoop if config.is_datagram() => {
                    builder.spawn_scoped(scope, move || {
                        let outcome = match datagram::Worker::new(shared, slots, quota) {
                            Ok(worker) => worker.run(),
                            Err(_) => failed_to_start(shared),
                        };
                        coordinator.unpark();
                        outcome
                    })
                }
                Engine::EventLoop => builder.spawn_scoped(scope, move || {
                    let outcome = match event_loop::Worker::new(shared, slots, quota) {
                        Ok(worker) => worker.run(),
                        Err(_) => failed_to_start(shared),
                    };
                    coordinator.unpark();
                    outcome
                }),
                Engine::Threads => builder.stack_size(256 * 1024).spawn_scoped(scope, move || {
                    let outcome = threads::connection(shared, slots[0], quota);
                    coordinator.unpark();
                    outcome
                }),
            };
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(err) => {
                    // The run needs every worker: call it off, so the workers already spawned
                    // return (the scope joins them before `run` returns), and say why.
                    shared.gate.decide(None);
                    return Err(std::io::Error::new(
                        err.kind(),
                        format!(
                            "cannot start client thread {} of {workers} (the process's thread \
                             limit?): {err}",
                            w + 1
                        ),
                    ));
                }
            }
        }

        shared.gate.wait_for(workers);
        let measure_start = Instant::now() + config.warmup;
        let window_start = std::time::SystemTime::now() + config.warmup;
        let end = match config.stop {
            Stop::Duration(d) => Some(measure_start + d),
            Stop::Requests(_) => None,
        };
        shared.started.store(true, Ordering::Relaxed);
        shared.gate.decide(Some(Timeline { measure_start, end }));

        // Warm-up: report, then take the opening samples at the window's start.
        while Instant::now() < measure_start {
            on_progress(Progress {
                elapsed: Duration::ZERO,
                warming_up: true,
                messages: 0,
            });
            std::thread::sleep(
                measure_start
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
            );
        }
        let cpus = run_cpus(config);
        let machine_before = CpuTimes::read(cpus.as_deref());
        let client_before = procfs::process_cpu_time();
        let server_before = config.server_pid.and_then(ProcSample::read);
        let mut emitter =
            intervals::Emitter::new(measure_start, end, config.server_pid, histograms);

        let mut server_after = None;
        let mut client_after = None;
        let mut machine_after = None;
        while handles.iter().any(|h| !h.is_finished()) {
            let now = Instant::now();
            if let Some(end) = end
                && now >= end
                && server_after.is_none()
            {
                // Sampled at the window's end, before the workers' teardown adds noise.
                server_after = config.server_pid.and_then(ProcSample::read);
                client_after = Some(procfs::process_cpu_time());
                machine_after = CpuTimes::read(cpus.as_deref());
            }
            on_progress(Progress {
                elapsed: now.saturating_duration_since(measure_start),
                warming_up: false,
                messages: shared.completed.load(Ordering::Relaxed),
            });
            emitter.close_due(&shared.intervals, now, on_interval);
            let nap = end
                .map(|e| e.saturating_duration_since(now))
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            std::thread::park_timeout(nap);
        }
        let client_after = client_after.unwrap_or_else(procfs::process_cpu_time);
        let server_after = server_after.or_else(|| config.server_pid.and_then(ProcSample::read));
        let machine_after = machine_after.or_else(|| CpuTimes::read(cpus.as_deref()));

        let mut stats = WorkerStats::default();
        let mut last_finish = measure_start;
        for handle in handles {
            let outcome = handle.join().expect("client worker panicked");
            last_finish = last_finish.max(outcome.finished_at);
            stats.merge(outcome.stats);
        }
        stats.per_connection.sort_unstable_by_key(|&(slot, _)| slot);
        // A timed window ends early when every worker did (all their connections failed): the
        // report must not claim a window that never happened.
        let window = match end {
            Some(end) => end
                .min(last_finish)
                .saturating_duration_since(measure_start),
            None => last_finish.saturating_duration_since(measure_start),
        }
        .max(Duration::from_micros(1));
        emitter.close_rest(&shared.intervals, measure_start + window, on_interval);
        let server = match (config.server_pid, server_before, server_after) {
            (Some(pid), Some(before), Some(after)) => {
                Some(ServerUsage::between(pid, &before, &after, window))
            }
            _ => None,
        };
        let client_cpu = client_after.saturating_sub(client_before);
        let server_cpu = server.map_or(Duration::ZERO, |s| Duration::from_secs_f64(s.cpu_s));
        let machine = match (machine_before, machine_after) {
            (Some(before), Some(after)) => Some(MachineUsage::between(
                &before,
                &after,
                client_cpu + server_cpu,
                window,
            )),
            _ => None,
        };
        Ok(RunOutcome {
            stats,
            window,
            client_cpu,
            server,
            client_threads: workers,
            machine,
            window_start,
            intervals_not_kept: emitter.not_kept,
            intervals: emitter.figures,
            minutes: emitter.minutes,
        })
    })
}

/// Times `messages` completed messages of `config`'s workload over connections opened
/// beforehand (the connect is not timed): the building block of the criterion benches'
/// `iter_custom`. Fails if the run saw any error, so a broken server never yields a time.
pub fn time_messages(config: &RunConfig, messages: u64) -> std::io::Result<Duration> {
    let config = RunConfig::new(RunOptions {
        stop: Stop::Requests(messages.max(1)),
        warmup: Duration::ZERO,
        ..config.options().clone()
    })
    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let outcome = run(&config, &mut |_| {})?;
    let errors = outcome.stats.errors;
    if errors.total() > 0 {
        return Err(std::io::Error::other(format!(
            "{} against {}: errors {errors:?}",
            config.workload, config.target
        )));
    }
    Ok(outcome.window)
}
