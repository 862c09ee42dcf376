//! echo-bench: the suite that compares the server models (`suite`), the paired comparison of two
//! builds for CI (`ab`), and their outputs. The load generator itself is the `echo-loadgen`
//! crate, re-exported here under its own module names, so `echo_bench::engine` and
//! `echo_loadgen::engine` are the same module.
//!
//! ```no_run
//! use echo_bench::{Report, RunConfig, RunOptions, engine};
//!
//! let options = RunOptions { target: "127.0.0.1:7878".parse()?, ..RunOptions::default() };
//! let config = RunConfig::new(options)?;
//! let outcome = engine::run(&config, &mut |_| {})?;
//! let report = Report::new(&config, &outcome);
//! println!("{}", report.summary());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod ab;
pub mod history;
pub mod render;
pub mod suite;

pub use echo_loadgen::{ConfigError, Engine, Report, RunConfig, RunOptions, Stop, Workload};
pub use echo_loadgen::{
    child, config, conformance, engine, export, files, merge, meta, pattern, procfs, report,
    socket, stats,
};
