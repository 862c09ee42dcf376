//! How a trial or a C10K holding ended, as run.json names it.

use serde::{Deserialize, Serialize};

/// How a trial (or a C10K holding) ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// It ran and the server behaved.
    Ok,
    /// The server did not start, crashed or did not exit cleanly (the default: a trial that
    /// has not said it succeeded did not).
    #[default]
    Failed,
    /// The measurement does not apply to the model (C10K: a model bounded by design).
    NotApplicable,
}

impl Status {
    /// Its name in run.json.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::NotApplicable => "not-applicable",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
