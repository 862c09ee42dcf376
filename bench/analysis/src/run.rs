//! A suite run as `run.json` stores it: every trial ([`PointResult`]) with its load generator's
//! report, the run's settings, knees and C10K holdings, and how a stored file is recognised and
//! read back (older schemas included).

use serde::{Deserialize, Serialize};

use crate::point::{Point, Profile};
pub use crate::status::Status;
use echo_loadgen::meta::Meta;
use echo_loadgen::report::Report;

/// How the CPUs are split between the server and the client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinning {
    /// CPUs the server processes run on (`None`: not pinned).
    pub server_cpus: Option<Vec<usize>>,
    /// CPUs the client runs on (`None`: not pinned).
    pub client_cpus: Option<Vec<usize>>,
}

impl Pinning {
    /// The default split of the CPUs this process may use ([`Pinning::split`]).
    pub fn halves() -> Self {
        Self::split(&echo_loadgen::procfs::allowed_cpus())
    }

    /// `cpus` split in two, server first, the client never given fewer than the server: it does
    /// the same kernel work per message as the server (measured for tokio at 50–256
    /// connections: client 7.4–7.8 µs per message, server 6.5–7.1), plus the verification. With
    /// an odd count the extra CPU goes to the client. Fewer than two CPUs: not pinned.
    pub fn split(cpus: &[usize]) -> Self {
        if cpus.len() < 2 {
            return Self::default();
        }
        let (server, client) = cpus.split_at(cpus.len() / 2);
        Self {
            server_cpus: Some(server.to_vec()),
            client_cpus: Some(client.to_vec()),
        }
    }

    /// The load generator's threads under this pinning: one per client CPU, or the engine's
    /// default when the client is not pinned. The one place this is decided.
    pub fn client_threads(&self) -> usize {
        self.client_cpus
            .as_ref()
            .map_or_else(echo_loadgen::config::default_threads, Vec::len)
    }

    /// `server cores / client cores` for the record, e.g. `1 server core, 1 client core`.
    pub fn describe(&self) -> String {
        let count = |cpus: &Option<Vec<usize>>, who: &str| match cpus {
            Some(cpus) => format!(
                "{} {who} core{} ({})",
                cpus.len(),
                if cpus.len() == 1 { "" } else { "s" },
                cpus.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => format!("{who} not pinned"),
        };
        format!(
            "{}, {}",
            count(&self.server_cpus, "server"),
            count(&self.client_cpus, "client")
        )
    }
}

/// When a trial counts as disturbed, and what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterferencePolicy {
    /// Cores used by other tasks (plus steal) above which a trial is re-run. The quiet baseline
    /// here is 0–0.07 cores (10 ms ticks over a short window); a spinning process takes about
    /// 0.67 of two busy cores.
    pub limit_cores: f64,
    /// Re-runs of a disturbed trial before it is kept, flagged.
    pub reruns: u32,
}

impl Default for InterferencePolicy {
    fn default() -> Self {
        Self {
            limit_cores: 0.25,
            reruns: 2,
        }
    }
}

/// One measured trial: a model at one load in one round.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PointResult {
    /// What was measured.
    pub point: Point,
    /// Position in the run's order (0-based).
    pub order: usize,
    /// [`Status::Ok`], or [`Status::Failed`] when the server did not start, crashed, or did not
    /// exit cleanly.
    pub status: Status,
    /// Why it failed.
    pub failure: Option<String>,
    /// The load generator's report (present when the load ran, even if the server then failed).
    pub report: Option<Report>,
    /// Times the trial ran: 1, plus a re-run for each attempt disturbed by interference.
    pub attempts: u32,
    /// Cores that other tasks (and steal) took in each discarded attempt.
    pub discarded_interference: Vec<f64>,
    /// True when the kept attempt was still above the interference limit.
    pub interfered: bool,
    /// The I/O driver the model's server said it waited on (its `driver:` line); none for an
    /// outside server, a server that did not start, and runs stored before schema 3.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::point::driver_name"
    )]
    pub driver: Option<echo_servers::Driver>,
}

impl PointResult {
    /// Whether the point ran and the server behaved.
    pub fn ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// Cores other tasks took during the kept attempt, if measured.
    pub fn interference_cores(&self) -> Option<f64> {
        self.report.as_ref()?.machine.map(|m| m.other_cores)
    }
}

/// A model's capacity knee: the highest open-loop rate whose p99 stayed under the target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Knee {
    /// The model.
    pub model: String,
    /// Highest rate tried that met the target (0 if none did).
    pub rate: f64,
    /// p99 at that rate, µs.
    pub p99_us: u64,
    /// The rates tried and their p99, in order.
    pub tried: Vec<(f64, u64)>,
}

/// A whole suite run, as stored in `run.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SuiteRun {
    /// Format version of this file.
    pub schema: u32,
    /// The profile.
    pub profile: Profile,
    /// The command that produced it.
    pub command: String,
    /// Machine and build.
    pub meta: Meta,
    /// CPU split used.
    pub pinning: Pinning,
    /// Rounds per point.
    pub rounds: usize,
    /// Seed of the rounds' order: `plan::schedule(points, rounds, seed)` gives it again.
    pub seed: u64,
    /// The interference limit and re-runs used.
    pub interference: InterferencePolicy,
    /// Measured seconds per point.
    pub duration_s: f64,
    /// Warm-up seconds per point.
    pub warmup_s: f64,
    /// Wall-clock seconds the whole run took.
    pub elapsed_s: f64,
    /// Every trial, in the order run.
    pub points: Vec<PointResult>,
    /// Capacity knees (full profile).
    pub knees: Vec<Knee>,
    /// p99 target of the knee search, µs.
    pub p99_target_us: u64,
    /// Models this machine could not run, with the reason.
    pub skipped: Vec<String>,
    /// The outside servers measured beside the models, with their commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside: Vec<OutsideServer>,
    /// The C10K measurement, per model (c10k and full profiles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub c10k: Vec<crate::c10k::Holding>,
    /// True when the run was interrupted (SIGINT, SIGTERM): it holds only the trials measured
    /// before, and the reports say so.
    #[serde(default, skip_serializing_if = "is_false")]
    pub partial: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// The `schema` versions of run.json this version reads (and, the last, writes). Schema 3 added
/// each trial's `driver` and gave the name `io-uring` to the model written on the ring itself:
/// in runs before it, `io-uring` is the model now called `tokio-uring`.
pub const SCHEMAS: [u64; 3] = [1, 2, 3];

/// The model names a run of an older schema used for a model since renamed: (before, now).
const RENAMED_BEFORE_SCHEMA_3: [(&str, &str); 1] = [("io-uring", "tokio-uring")];

/// Renames, in a run.json of schema 1 or 2, every server name that has since been renamed
/// (in points, knees, C10K holdings and the skipped list), so the old run reads back as the
/// models it measured and not as the newer model that took the name.
fn rename_old_models(value: &mut serde_json::Value) {
    use serde_json::Value;
    if value
        .get("schema")
        .and_then(Value::as_u64)
        .is_none_or(|s| s >= 3)
    {
        return;
    }
    let renamed = |name: &str| {
        RENAMED_BEFORE_SCHEMA_3
            .iter()
            .find(|(before, _)| *before == name)
            .map(|(_, now)| *now)
    };
    let rename_field = |item: &mut Value, field: &str| {
        if let Some(Value::String(name)) = item.get_mut(field)
            && let Some(now) = renamed(name)
        {
            *name = now.to_owned();
        }
    };
    for point in value
        .get_mut("points")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(inner) = point.get_mut("point") {
            rename_field(inner, "model");
        }
    }
    for section in ["knees", "c10k"] {
        for item in value
            .get_mut(section)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            rename_field(item, "model");
        }
    }
    for skipped in value
        .get_mut("skipped")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Value::String(text) = skipped {
            for (before, now) in RENAMED_BEFORE_SCHEMA_3 {
                if let Some(rest) = text.strip_prefix(&format!("{before}:")) {
                    *text = format!("{now}:{rest}");
                }
            }
        }
    }
}

/// Checks that `value` has the fields every run.json any version wrote has, each of its type
/// (`schema` one of [`SCHEMAS`], `profile`, `command`, `meta` with `host` and `time`, `points`
/// whose entries have `point` and `status`, `duration_s`, `warmup_s`): a JSON object that is
/// not a suite run is refused, not read as an empty run (every field has a serde default).
/// `Err` says, in a few words, what is missing.
pub fn recognise(value: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    let field = |name: &str| value.get(name);
    let has = |name: &str, ok: fn(&Value) -> bool| match field(name) {
        Some(v) if ok(v) => Ok(()),
        Some(_) => Err(format!("its `{name}` is not what a suite run holds")),
        None => Err(format!("it has no `{name}`")),
    };
    if !value.is_object() {
        return Err("it is not a JSON object".into());
    }
    match field("schema").and_then(Value::as_u64) {
        Some(schema) if SCHEMAS.contains(&schema) => {}
        Some(schema) => return Err(format!("its schema {schema} is not one this version reads")),
        None => return Err("it has no numeric `schema`".into()),
    }
    has("profile", Value::is_string)?;
    has("command", Value::is_string)?;
    has("meta", |m| {
        m.get("host").is_some_and(Value::is_string) && m.get("time").is_some_and(Value::is_string)
    })?;
    has("duration_s", Value::is_number)?;
    has("warmup_s", Value::is_number)?;
    has("points", |p| {
        p.as_array().is_some_and(|points| {
            points.iter().all(|p| {
                p.get("point").is_some_and(Value::is_object)
                    && p.get("status").is_some_and(Value::is_string)
            })
        })
    })
}

impl SuiteRun {
    /// A suite run from run.json's text, recognised by its fields first ([`recognise`]).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("it is not JSON: {e}"))?;
        Self::from_value(value)
    }

    /// [`SuiteRun::from_json`] of parsed JSON.
    pub fn from_value(mut value: serde_json::Value) -> Result<Self, String> {
        recognise(&value)?;
        rename_old_models(&mut value);
        let run: SuiteRun = serde_json::from_value(value).map_err(|e| e.to_string())?;
        run.check_servers()?;
        Ok(run)
    }

    /// `Err` when a trial names a server that is neither a model or variant of this version nor
    /// one of the outside servers the run lists: a model since renamed or removed must not
    /// read back as an outside server.
    fn check_servers(&self) -> Result<(), String> {
        let unknown = self.points.iter().map(|p| &p.point.model).find(|server| {
            server.is_outside() && !self.outside.iter().any(|o| o.name == server.name())
        });
        match unknown {
            Some(server) => Err(format!(
                "it names the server '{server}', which is neither a model of this version nor \
                 an outside server the run lists (a model since renamed or removed?)"
            )),
            None => Ok(()),
        }
    }

    /// The outside servers the run measured, as a registry (with no commands: a stored run
    /// records them, but reading one back never starts anything).
    pub fn registry(&self) -> crate::server::Registry {
        let servers: Vec<crate::server::Server> = self
            .points
            .iter()
            .map(|p| p.point.model.clone())
            .filter(crate::server::Server::is_outside)
            .collect();
        let mut registry = crate::server::Registry::default();
        for server in servers {
            // Every trial of a server names it again: keep the first.
            let _ = registry.add(server);
        }
        registry
    }
}

/// An outside server as run.json records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutsideServer {
    /// Its name in the tables.
    pub name: String,
    /// The command that started it.
    pub command: String,
}
