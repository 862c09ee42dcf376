//! Renderers that only render: they take echo-analysis's data and write it as text, HTML or
//! SVG. `format` holds every number format used in text; `advice` the advice's sentences, in
//! any [`Style`]; `markdown` summary.md's parts, the results tables and a run's README.md;
//! `html` index.html; `terminal` what the suite prints; `table` a results table as cells,
//! drawn as Markdown or by `terminal`; `ablation`, `c10k`, `capacity`, `stability` and
//! `transports` those sections' tables and lines; `charts` every SVG chart. Nothing here
//! computes a figure or a verdict, and nothing here imports the runners (`suite`, `ab`).

pub mod ablation;
pub mod advice;
pub mod c10k;
pub mod capacity;
pub mod charts;
pub mod format;
pub mod html;
pub mod markdown;
pub mod stability;
pub mod table;
pub mod terminal;
pub mod transports;

/// How emphasis is written: Markdown's `**`, a terminal's bold (ANSI), or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `**bold**`, for summary.md and index.html.
    Markdown,
    /// ANSI bold, for a terminal that takes colour.
    Ansi,
    /// Plain text: piped output, or `NO_COLOR`.
    Plain,
}

impl Style {
    /// `text` emphasised.
    pub fn bold(self, text: &str) -> String {
        match self {
            Style::Markdown => format!("**{text}**"),
            Style::Ansi => format!("\x1b[1m{text}\x1b[0m"),
            Style::Plain => text.to_owned(),
        }
    }
}
