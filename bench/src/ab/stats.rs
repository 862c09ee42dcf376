//! The project's one statistics implementation now lives in [`echo_analysis::bootstrap`]; this
//! path re-exports it so `crate::ab::stats` callers keep compiling while they move.

pub use echo_analysis::bootstrap::*;
