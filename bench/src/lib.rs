//! echo-bench: the suite that compares the server models (`suite`), the paired comparison of two
//! builds for CI (`ab`), the capacity search's runner (`capacity`), regression history
//! (`history`), live metrics (`metrics`), and the renderers of what echo-analysis computes
//! (`render`). The load generator is the `echo-loadgen` crate and the analysis `echo-analysis`:
//! their modules are used under their own names (`echo_loadgen::stats` are the histograms,
//! `echo_analysis::bootstrap` the statistics of every comparison), never re-exported here.
//!
//! ```no_run
//! use echo_bench::{Report, RunConfig, RunOptions};
//! use echo_loadgen::engine;
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
pub mod capacity;
pub mod history;
pub mod metrics;
pub mod render;
pub mod suite;

/// The types of one run of the load generator, so that driving a run through this crate (the
/// example above, the tests and benches) needs one import; the modules they come from are
/// echo-loadgen's alone.
pub use echo_loadgen::{ConfigError, Engine, Report, RunConfig, RunOptions, Stop, Workload};
