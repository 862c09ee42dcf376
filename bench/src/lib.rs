//! The measuring engine of echo-bench: drives any TCP echo server at a socket address and
//! reports throughput, latency percentiles, errors, fairness and the client's and server's
//! resource use, verifying every echoed byte.
//!
//! ```no_run
//! use echo_bench::{RunConfig, Report, engine};
//!
//! let config = RunConfig { target: "127.0.0.1:7878".parse()?, ..RunConfig::default() };
//! config.validate().map_err(anyhow::Error::msg)?;
//! let outcome = engine::run(&config, &mut |_| {})?;
//! let report = Report::new(&config, &outcome);
//! println!("{}", report.summary());
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! The engine knows only a socket address (and, optionally, the server's pid for /proc figures);
//! starting servers is the job of the suite and the benches.
#![deny(missing_docs)]

pub mod ab;
pub mod config;
pub mod engine;
pub mod meta;
pub mod pattern;
pub mod procfs;
pub mod report;
pub mod stats;
pub mod suite;

pub use config::{Engine, RunConfig, Stop, Workload};
pub use report::Report;
