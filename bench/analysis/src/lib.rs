//! echo-analysis: what turns echo-bench's measurements into conclusions, as data.
//!
//! It holds the run's data types as `run.json` stores them ([`run::SuiteRun`], [`point::Point`],
//! [`server::Server`]), the project's one statistics implementation ([`bootstrap`]: paired
//! log-ratios, the percentile bootstrap, estimates over rounds), and what is computed from them.
//! It returns values; it renders nothing (no charts, no Markdown, no HTML, no terminal: those
//! live in echo-bench's `render`), which `bench/tests/invariants.rs` enforces from this crate's
//! manifest and sources.
#![deny(missing_docs)]

pub mod ablation;
pub mod advice;
pub mod aggregate;
pub mod bootstrap;
pub mod c10k;
pub mod capacity;
pub mod conditions;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod point;
pub mod rank;
pub mod run;
pub mod server;
pub mod stability;
pub mod status;
pub mod tables;
pub mod transports;
