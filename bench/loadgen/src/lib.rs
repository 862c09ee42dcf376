//! A verifying load generator for any echo server at an address (TCP, a Unix socket, or UDP:
//! [`Endpoint`]): it reports throughput, latency percentiles, errors, fairness and the client's
//! and server's resource use, and checks every echoed byte; over UDP it also reports loss,
//! reordering, duplication and corruption from each datagram's sequence number.
//!
//! ```no_run
//! use echo_loadgen::{Report, RunConfig, RunOptions, engine};
//!
//! let options = RunOptions { target: "127.0.0.1:7878".parse()?, ..RunOptions::default() };
//! let config = RunConfig::new(options)?;
//! let outcome = engine::run(&config, &mut |_| {})?;
//! let report = Report::new(&config, &outcome);
//! println!("{}", report.summary());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The engine knows only an address (and, optionally, the server's pid for /proc figures);
//! starting servers is the job of its users (echo-bench's suite and benches). This crate does
//! not depend on any server.
#![deny(missing_docs)]

pub mod child;
pub mod config;
pub mod conformance;
pub mod engine;
pub mod export;
pub mod files;
pub mod launch;
pub mod merge;
pub mod meta;
pub mod pattern;
pub mod procfs;
pub mod report;
pub mod socket;
pub mod stats;
pub mod tls;

pub use config::{ConfigError, Engine, RunConfig, RunOptions, Stop, Workload};
pub use echo_cli::{Endpoint, Transport};
pub use report::Report;
