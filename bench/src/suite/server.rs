//! What the suite measures: one of the project's models, or an outside server started from a
//! command (`--server NAME=CMD`, `--servers FILE`, `--python`), measured like a model (same
//! points, pinning, rounds, tables, charts and advice) and marked as outside.
//!
//! A [`Server`] is `Copy`, as `Model` is, so the suite's data stays plain values: an outside
//! server is an index into this process's registry of outside servers, which the command line
//! (or a stored run.json, by name) fills before anything is measured.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use echo_servers::{Family, Model, ServerConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::conformance::ServerCommand;

/// A model of this project, one of its variants, or an outside server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Server {
    /// One of the project's models.
    Model(Model),
    /// The model variant at this index of [`VARIANTS`].
    Variant(u8),
    /// The outside server registered at this index.
    Outside(u16),
}

/// A model started with arguments that switch some of its techniques off: what an ablation
/// measures, one step at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// Its name in tables, charts and `--models`.
    pub name: &'static str,
    /// The model it runs.
    pub model: Model,
    /// The arguments it adds to the model's server command.
    pub args: &'static [&'static str],
    /// What the step adds to the one before, for the reports.
    pub adds: &'static str,
}

/// The steps of the io_uring ablation (`--profile ablation`), each adding one technique to
/// the one before; the last step is the `io-uring` model itself, with everything.
pub const VARIANTS: [Variant; 5] = [
    Variant {
        name: "io-uring.plain",
        model: Model::IoUring,
        args: &["--uring-features", "none"],
        adds: "one-shot accept, recv and send (fast poll), one submission per operation",
    },
    Variant {
        name: "io-uring.accept",
        model: Model::IoUring,
        args: &["--uring-features", "multishot-accept"],
        adds: "multishot accept",
    },
    Variant {
        name: "io-uring.recv",
        model: Model::IoUring,
        args: &["--uring-features", "multishot-accept,multishot-recv"],
        adds: "multishot receive into a provided buffer ring",
    },
    Variant {
        name: "io-uring.batch",
        model: Model::IoUring,
        args: &["--uring-features", "multishot-accept,multishot-recv,batch"],
        adds: "one io_uring_enter per loop turn for every queued submission",
    },
    Variant {
        name: "io-uring.defer",
        model: Model::IoUring,
        args: &[
            "--uring-features",
            "multishot-accept,multishot-recv,batch,defer-taskrun",
        ],
        adds: "SINGLE_ISSUER and DEFER_TASKRUN",
    },
];

/// What the `io-uring` model itself adds to the last variant: the ablation's final step.
pub const LAST_STEP_ADDS: &str = "registered (fixed) descriptors: everything";

/// An outside server: its name, and the command that starts it (none when it was read back
/// from a stored run).
#[derive(Debug, Clone)]
struct Outside {
    name: &'static str,
    command: Option<ServerCommand>,
}

/// The outside servers of this process, in the order they were named. Names are leaked so that
/// [`Server::name`] can return `&'static str` as `Model::name` does: a run names a handful.
static OUTSIDE: Mutex<Vec<Outside>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<Outside>> {
    OUTSIDE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Server {
    /// Registers an outside server started by `command` (`{addr}`, `{host}`, `{port}` filled
    /// with a free loopback address). `Err` for a name that is empty, has other characters than
    /// letters, digits, `-`, `_` and `.`, is a model's, or is taken.
    pub fn outside(name: &str, command: &str) -> Result<Server, String> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(format!(
                "'{name}' is not a server name (letters, digits, '-', '_', '.')"
            ));
        }
        if name.parse::<Model>().is_ok() || Server::variant(name).is_some() {
            return Err(format!(
                "'{name}' is a model's name; name the outside server otherwise"
            ));
        }
        let command = ServerCommand::new(command)?;
        let mut outside = registry();
        if outside
            .iter()
            .any(|o| o.name == name && o.command.is_some())
        {
            return Err(format!("two outside servers are named '{name}'"));
        }
        if let Some(i) = outside.iter().position(|o| o.name == name) {
            outside[i].command = Some(command);
            return Ok(Server::Outside(i as u16));
        }
        outside.push(Outside {
            name: Box::leak(name.to_owned().into_boxed_str()),
            command: Some(command),
        });
        Ok(Server::Outside((outside.len() - 1) as u16))
    }

    /// `NAME=CMD`, as `--server` takes it.
    pub fn parse_outside(spec: &str) -> Result<Server, String> {
        let (name, command) = spec
            .split_once('=')
            .ok_or_else(|| format!("'{spec}' is not NAME=COMMAND"))?;
        Server::outside(name.trim(), command.trim())
    }

    /// The server called `name`: a model, or an outside server (registered without a command
    /// when new: how a stored run's servers are read back).
    pub fn named(name: &str) -> Server {
        if let Ok(model) = name.parse::<Model>() {
            return Server::Model(model);
        }
        if let Some(variant) = Server::variant(name) {
            return variant;
        }
        let mut outside = registry();
        if let Some(i) = outside.iter().position(|o| o.name == name) {
            return Server::Outside(i as u16);
        }
        outside.push(Outside {
            name: Box::leak(name.to_owned().into_boxed_str()),
            command: None,
        });
        Server::Outside((outside.len() - 1) as u16)
    }

    /// The model variant called `name`, if any ([`VARIANTS`]).
    pub fn variant(name: &str) -> Option<Server> {
        let i = VARIANTS.iter().position(|v| v.name == name)?;
        Some(Server::Variant(i as u8))
    }

    /// The io_uring ablation's steps in order: the variants, then the `io-uring` model.
    pub fn uring_steps() -> Vec<Server> {
        (0..VARIANTS.len() as u8)
            .map(Server::Variant)
            .chain([Server::Model(Model::IoUring)])
            .collect()
    }

    /// What a step of the ablation adds to the one before; `None` for a server that is no step.
    pub fn step_adds(self) -> Option<&'static str> {
        match self {
            Server::Variant(i) => VARIANTS.get(usize::from(i)).map(|v| v.adds),
            Server::Model(Model::IoUring) => Some(LAST_STEP_ADDS),
            _ => None,
        }
    }

    /// The arguments a variant adds to its model's server command (none for a model).
    pub fn server_args(self) -> &'static [&'static str] {
        match self {
            Server::Variant(i) => VARIANTS.get(usize::from(i)).map_or(&[], |v| v.args),
            _ => &[],
        }
    }

    /// The outside server registered as `name` with a command, if any.
    pub fn registered(name: &str) -> Option<Server> {
        let outside = registry();
        let i = outside
            .iter()
            .position(|o| o.name == name && o.command.is_some())?;
        Some(Server::Outside(i as u16))
    }

    /// The stable name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Server::Model(model) => model.name(),
            Server::Variant(i) => VARIANTS.get(usize::from(i)).map_or("variant", |v| v.name),
            Server::Outside(i) => registry().get(usize::from(i)).map_or("outside", |o| o.name),
        }
    }

    /// The model, for a model or a variant of one.
    pub fn model(self) -> Option<Model> {
        match self {
            Server::Model(model) => Some(model),
            Server::Variant(i) => VARIANTS.get(usize::from(i)).map(|v| v.model),
            Server::Outside(_) => None,
        }
    }

    /// Whether it is an outside server.
    pub fn is_outside(self) -> bool {
        matches!(self, Server::Outside(_))
    }

    /// Whether this machine can run it (`Model::available`); an outside server is assumed to.
    pub fn available(self) -> Result<(), String> {
        match self.model() {
            Some(model) => model.available().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Its family; outside servers have none of the project's.
    pub fn family(self) -> Option<Family> {
        self.model().map(Model::family)
    }

    /// The command that starts an outside server.
    pub fn command(self) -> Option<ServerCommand> {
        match self {
            Server::Model(_) | Server::Variant(_) => None,
            Server::Outside(i) => registry().get(usize::from(i))?.command.clone(),
        }
    }

    /// How many connections it serves at once, where bounded by design (models only: an
    /// outside server is taken to serve as many as connect, and starves where it does not).
    pub fn concurrency_limit(self, config: &ServerConfig) -> Option<usize> {
        self.model()?.concurrency_limit(config)
    }
}

impl From<Model> for Server {
    fn from(model: Model) -> Self {
        Server::Model(model)
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Server {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Server::named(s))
    }
}

impl Serialize for Server {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Server {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Server::named(&name))
    }
}

impl Default for Server {
    fn default() -> Self {
        Server::Model(Model::ALL[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_servers_are_named_and_kept_apart_from_the_models() {
        let py = Server::parse_outside("py-test=python3 x.py {addr}").unwrap();
        assert!(py.is_outside());
        assert_eq!(py.name(), "py-test");
        assert_eq!(py.command().unwrap().template(), "python3 x.py {addr}");
        assert_eq!(Server::named("py-test"), py);
        assert_eq!(Server::named("tokio"), Server::Model(Model::Tokio));
        assert!(
            Server::Model(Model::May) < py,
            "models sort before outside servers"
        );
        assert!(Server::parse_outside("tokio=x").is_err(), "a model's name");
        assert!(Server::parse_outside("py-test=y").is_err(), "taken");
        assert!(Server::parse_outside("no command").is_err());
        assert!(Server::parse_outside("bad name=x").is_err());
        let json = serde_json::to_string(&py).unwrap();
        assert_eq!(json, "\"py-test\"");
        assert_eq!(serde_json::from_str::<Server>(&json).unwrap(), py);
    }
}
