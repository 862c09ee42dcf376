//! What the suite measures: one of the project's models, or an outside server started from a
//! command (`--server NAME=CMD`, `--servers FILE`, `--python`), measured like a model (same
//! points, pinning, rounds, tables, charts and advice) and marked as outside.
//!
//! An outside server serves one transport, which its command says ([`Server::serves`]): one
//! that takes `{cert}` or `{key}` serves TLS alone (it is given a `tls:` address and the paths
//! of a certificate and key the suite makes for the run), any other TCP alone. A server that
//! serves both is named twice, once with `{cert}`/`{key}` and once without.
//!
//! An outside server carries its own name and command (cheap to clone: both are shared), so
//! there is no process-wide registry: the outside servers of a run are a [`Registry`] value that
//! the command line builds and passes to what needs to look a name up, and a stored run.json
//! lists its own (`SuiteRun::outside`), against which its points are checked when it is read
//! back. A name that is neither a model, a variant nor one of those is refused, not taken for an
//! outside server.

use std::fmt;
use std::sync::Arc;

use echo_loadgen::conformance::ServerCommand;
use echo_servers::{Family, Model, ServerConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A model of this project, one of its variants, or an outside server. Models sort in the
/// registry's order, then the variants, then outside servers by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Server {
    /// One of the project's models.
    Model(Model),
    /// The model variant at this index of [`VARIANTS`].
    Variant(u8),
    /// An outside server.
    Outside(Outside),
}

/// An outside server: its name, and the command that starts it (none when it was read back
/// from a stored run). Compared, ordered and hashed by name alone.
#[derive(Debug, Clone)]
pub struct Outside {
    name: Arc<str>,
    command: Option<Arc<ServerCommand>>,
}

impl PartialEq for Outside {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Outside {}

impl PartialOrd for Outside {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Outside {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(&other.name)
    }
}

impl std::hash::Hash for Outside {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// The outside servers of one invocation, in the order they were named: what `--server`,
/// `--servers FILE` and `--python` give, passed explicitly to whatever looks a name up.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    outside: Vec<Server>,
}

impl Registry {
    /// The registry of `servers` (outside servers; models and variants are left out). `Err`
    /// when two share a name.
    pub fn of(servers: &[Server]) -> Result<Registry, String> {
        let mut registry = Registry::default();
        for server in servers.iter().filter(|s| s.is_outside()) {
            registry.add(server.clone())?;
        }
        Ok(registry)
    }

    /// Adds an outside server. `Err` when the name is taken.
    pub fn add(&mut self, server: Server) -> Result<(), String> {
        if self.outside.iter().any(|o| o.name() == server.name()) {
            return Err(format!("two outside servers are named '{server}'"));
        }
        self.outside.push(server);
        Ok(())
    }

    /// The outside servers, in the order they were named.
    pub fn outside(&self) -> &[Server] {
        &self.outside
    }

    /// The outside server registered as `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Server> {
        self.outside.iter().find(|o| o.name() == name)
    }

    /// The server called `name`: a model, a variant, or an outside server of this registry.
    /// `Err` names what it is not.
    pub fn resolve(&self, name: &str) -> Result<Server, String> {
        if let Some(known) = Server::known(name) {
            return Ok(known);
        }
        self.get(name).cloned().ok_or_else(|| {
            format!("'{name}' is neither a model of this version nor an outside server named here")
        })
    }
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

impl Server {
    /// An outside server called `name`, started by `command` (`{addr}`, `{host}`, `{port}`
    /// filled with a free loopback address; `{cert}` and `{key}`, which make it a TLS server,
    /// with a certificate's and its key's paths). `Err` for a name that is empty, has other
    /// characters than letters, digits, `-`, `_` and `.`, or is a model's.
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
        if Server::known(name).is_some() {
            return Err(format!(
                "'{name}' is a model's name; name the outside server otherwise"
            ));
        }
        let command = ServerCommand::new(command)?;
        Ok(Server::Outside(Outside {
            name: name.into(),
            command: Some(Arc::new(command)),
        }))
    }

    /// `NAME=CMD`, as `--server` takes it.
    pub fn parse_outside(spec: &str) -> Result<Server, String> {
        let (name, command) = spec
            .split_once('=')
            .ok_or_else(|| format!("'{spec}' is not NAME=COMMAND"))?;
        Server::outside(name.trim(), command.trim())
    }

    /// The model or model variant called `name`, if any.
    pub fn known(name: &str) -> Option<Server> {
        if let Ok(model) = name.parse::<Model>() {
            return Some(Server::Model(model));
        }
        Server::variant(name)
    }

    /// An outside server known only by its name (no command): how a stored run's outside
    /// servers are read back. The caller checks the name against the run's list.
    fn unlisted(name: &str) -> Server {
        Server::Outside(Outside {
            name: name.into(),
            command: None,
        })
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
    pub fn step_adds(&self) -> Option<&'static str> {
        match self {
            Server::Variant(i) => VARIANTS.get(usize::from(*i)).map(|v| v.adds),
            Server::Model(Model::IoUring) => Some(LAST_STEP_ADDS),
            _ => None,
        }
    }

    /// The arguments a variant adds to its model's server command (none for a model).
    pub fn server_args(&self) -> &'static [&'static str] {
        match self {
            Server::Variant(i) => VARIANTS.get(usize::from(*i)).map_or(&[], |v| v.args),
            _ => &[],
        }
    }

    /// The stable name used in reports.
    pub fn name(&self) -> &str {
        match self {
            Server::Model(model) => model.name(),
            Server::Variant(i) => VARIANTS.get(usize::from(*i)).map_or("variant", |v| v.name),
            Server::Outside(o) => &o.name,
        }
    }

    /// The model, for a model or a variant of one.
    pub fn model(&self) -> Option<Model> {
        match self {
            Server::Model(model) => Some(*model),
            Server::Variant(i) => VARIANTS.get(usize::from(*i)).map(|v| v.model),
            Server::Outside(_) => None,
        }
    }

    /// Whether it is an outside server.
    pub fn is_outside(&self) -> bool {
        matches!(self, Server::Outside(_))
    }

    /// Whether it serves `transport`: a model's own answer ([`Model::serves`]); an outside
    /// server serves TLS alone when its command takes `{cert}` or `{key}`
    /// ([`ServerCommand::serves_tls`]), else TCP alone (so does one read back from a stored
    /// run, whose command is not known).
    pub fn serves(&self, transport: echo_servers::Transport) -> bool {
        use echo_servers::Transport;
        match self {
            Server::Model(_) | Server::Variant(_) => {
                self.model().is_some_and(|m| m.serves(transport))
            }
            Server::Outside(o) => {
                let tls = o.command.as_deref().is_some_and(ServerCommand::serves_tls);
                transport == if tls { Transport::Tls } else { Transport::Tcp }
            }
        }
    }

    /// Whether this machine can run it (`Model::available`); an outside server is assumed to.
    pub fn available(&self) -> Result<(), String> {
        match self.model() {
            Some(model) => model.available().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Its family; outside servers have none of the project's.
    pub fn family(&self) -> Option<Family> {
        self.model().map(Model::family)
    }

    /// The command that starts an outside server (none for one read back from a stored run).
    pub fn command(&self) -> Option<ServerCommand> {
        match self {
            Server::Model(_) | Server::Variant(_) => None,
            Server::Outside(o) => o.command.as_deref().cloned(),
        }
    }

    /// How many connections it serves at once, where bounded by design (models only: an
    /// outside server is taken to serve as many as connect, and starves where it does not).
    pub fn concurrency_limit(&self, config: &ServerConfig) -> Option<usize> {
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

impl Serialize for Server {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Server {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only a model or a variant is known here; any other name is kept as an outside server
        // without a command, which `SuiteRun::from_value` checks against the run's own list.
        let name = String::deserialize(deserializer)?;
        Ok(Server::known(&name).unwrap_or_else(|| Server::unlisted(&name)))
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
        let registry = Registry::of(std::slice::from_ref(&py)).unwrap();
        assert_eq!(registry.resolve("py-test"), Ok(py.clone()));
        assert_eq!(registry.resolve("tokio"), Ok(Server::Model(Model::Tokio)));
        assert!(registry.resolve("py-other").is_err(), "not named here");
        assert!(
            Server::Model(Model::May) < py,
            "models sort before outside servers"
        );
        assert!(Server::parse_outside("tokio=x").is_err(), "a model's name");
        let again = Server::parse_outside("py-test=y").unwrap();
        assert!(Registry::of(&[py.clone(), again]).is_err(), "taken");
        assert!(Server::parse_outside("no command").is_err());
        assert!(Server::parse_outside("bad name=x").is_err());
        let json = serde_json::to_string(&py).unwrap();
        assert_eq!(json, "\"py-test\"");
        let back: Server = serde_json::from_str(&json).unwrap();
        assert_eq!(back, py, "equal by name");
        assert!(back.command().is_none(), "a stored name has no command");
    }

    #[test]
    fn an_outside_server_serves_tls_alone_when_its_command_takes_cert_or_key() {
        use echo_servers::Transport;
        let plain = Server::parse_outside("plain=srv {addr}").unwrap();
        let tls = Server::parse_outside("secure=srv {addr} {cert} {key}").unwrap();
        let key_only = Server::parse_outside("key-only=srv {addr} --identity {key}").unwrap();
        for transport in Transport::ALL {
            assert_eq!(plain.serves(transport), transport == Transport::Tcp);
            assert_eq!(tls.serves(transport), transport == Transport::Tls);
            assert_eq!(key_only.serves(transport), transport == Transport::Tls);
        }
        for model in Model::ALL.iter().copied() {
            for transport in Transport::ALL {
                assert_eq!(
                    Server::Model(model).serves(transport),
                    model.serves(transport)
                );
            }
        }
    }

    #[test]
    fn outside_servers_sort_by_name_whatever_order_they_were_named_in() {
        let b = Server::parse_outside("b=x {addr}").unwrap();
        let a = Server::parse_outside("a=x {addr}").unwrap();
        assert!(a < b);
    }
}
