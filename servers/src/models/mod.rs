//! The registry of models, and the models, one file each, named exactly as the model (`-` as
//! `_`). Adding a model is its file here and one line in `models!` below, which declares the
//! module, the `Model` variant, its name, its family and its server type; a test checks that the registry
//! and this folder agree.

use crate::server::EchoServer;

macro_rules! models {
    ($d:tt $( $(#[$doc:meta])* $variant:ident => $name:literal, $family:ident, $module:ident::$ty:ident ;)*) => {
        /// Calls `$callback! { ident => Model::Variant, ... }` with every registered model, the
        /// ident its name in snake case: how test files generate one test per model from the
        /// registry, without a list of their own.
        #[macro_export]
        macro_rules! for_each_model {
            ($d callback:ident) => {
                $d callback! { $( $module => $d crate::Model::$variant ),* }
            };
        }

        $( pub(crate) mod $module; )*

        /// The registry of models: the one place that lists them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Model {
            $( $(#[$doc])* $variant, )*
        }

        impl Model {
            /// Every model, in the order reports list them.
            pub const ALL: &'static [Model] = &[$(Model::$variant),*];

            /// The stable name used on command lines, in file names and in reports.
            pub const fn name(self) -> &'static str {
                match self { $(Model::$variant => $name,)* }
            }

            /// The family the model belongs to: how reports group models into panels.
            pub const fn family(self) -> Family {
                match self { $(Model::$variant => Family::$family,)* }
            }

            /// A server of this model.
            pub fn server(self) -> Box<dyn EchoServer> {
                match self { $(Model::$variant => Box::new($module::$ty),)* }
            }
        }
    };
}

/// A family of models: what their code looks like and where a connection waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Blocking code: a connection waits in a thread (or, for `may`, a stackful coroutine).
    Threads,
    /// A readiness loop written by hand: a connection waits as an entry in the loop's slab.
    EventLoop,
    /// An async runtime: a connection waits as a suspended task (future).
    AsyncRuntime,
}

impl Family {
    /// Every family, in the order reports show them.
    pub const ALL: [Family; 3] = [Family::Threads, Family::EventLoop, Family::AsyncRuntime];

    /// How reports title the family.
    pub const fn title(self) -> &'static str {
        match self {
            Family::Threads => "blocking code: threads and coroutines",
            Family::EventLoop => "event loops",
            Family::AsyncRuntime => "async runtimes",
        }
    }
}

models! {
    $
    /// One thread, one connection at a time (the textbook iterative server).
    Blocking => "blocking", Threads, blocking::Blocking;
    /// A new OS thread for every accepted connection.
    ThreadPerConnection => "thread-per-connection", Threads, thread_per_connection::ThreadPerConnection;
    /// A fixed pool of workers fed accepted connections through a channel.
    ThreadPool => "thread-pool", Threads, thread_pool::ThreadPool;
    /// One thread running a mio (epoll) readiness loop.
    Mio => "mio", EventLoop, mio::MioLoop;
    /// One mio loop per core, each with its own SO_REUSEPORT listener.
    MioPerCore => "mio-per-core", EventLoop, mio_per_core::MioPerCore;
    /// tokio's multi-thread runtime, one task per connection.
    Tokio => "tokio", AsyncRuntime, tokio::TokioServer;
    /// A current-thread tokio runtime per core, each with its own SO_REUSEPORT listener.
    TokioCurrentThread => "tokio-current-thread", AsyncRuntime, tokio_current_thread::TokioCurrentThread;
    /// tokio for I/O with each message's work sent to a rayon pool.
    TokioRayon => "tokio-rayon", AsyncRuntime, tokio_rayon::TokioRayon;
    /// async-std, one task per connection.
    AsyncStd => "async-std", AsyncRuntime, async_std::AsyncStdServer;
    /// smol, one task per connection on an executor with a thread per core.
    Smol => "smol", AsyncRuntime, smol::SmolServer;
    /// Completion-based io_uring I/O through the tokio-uring runtime, a runtime per core.
    TokioUring => "tokio-uring", AsyncRuntime, tokio_uring::TokioUringServer;
    /// Stackful coroutines (may), one per connection.
    May => "may", Threads, may::MayServer;
    /// One thread, poll(2) over every descriptor on each turn (the tutorials' select loop,
    /// without FD_SETSIZE).
    Poll => "poll", EventLoop, poll::PollLoop;
    /// A completion loop written by hand on the io-uring crate, one ring per core: multishot
    /// accept and receive into a provided buffer ring, one io_uring_enter per turn.
    IoUring => "io-uring", EventLoop, io_uring::IoUringServer;
    /// monoio, thread-per-core: io_uring, or epoll where io_uring is refused.
    Monoio => "monoio", AsyncRuntime, monoio::MonoioServer;
    /// Completion-based I/O through compio (io_uring, or epoll where io_uring is refused), a
    /// runtime per core.
    Compio => "compio", AsyncRuntime, compio::CompioServer;
    /// glommio's thread-per-core executors on io_uring, one per core, each with its own listener.
    Glommio => "glommio", AsyncRuntime, glommio::GlommioServer;
}

#[cfg(test)]
mod tests {
    use super::Model;

    /// The registry and this folder agree: every model has its file, named as the model, and
    /// every file here (but this one) is a registered model.
    #[test]
    fn every_registered_model_has_its_file_and_every_file_is_registered() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/models");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("the models folder")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name != "mod.rs")
            .collect();
        files.sort();
        let mut expected: Vec<String> = Model::ALL
            .iter()
            .map(|m| format!("{}.rs", m.name().replace('-', "_")))
            .collect();
        expected.sort();
        assert_eq!(files, expected);
    }
}
