//! The subcommands of `echo-bench`, one module each.

pub mod run;
pub mod suite;
