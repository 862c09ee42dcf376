//! Renderers that only render: they take echo-analysis's data and write it as text. `format`
//! holds every number format used in text; `advice` the advice's sentences, in any [`Style`];
//! `table` a results table as data, drawn as Markdown or by `terminal`; `charts` every SVG
//! chart a run gets (the TCP vs Unix and ablation charts are drawn by their suite modules on
//! its canvas, until those move here too).

pub mod advice;
pub mod charts;
pub mod format;
pub mod table;
pub mod terminal;

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
