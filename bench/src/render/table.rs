//! A results table as data: a column per point, a row per server, each cell's text and whether
//! it is in its column's leading group. Markdown ([`Grid::markdown`]) and the terminal
//! (`terminal::grid`) draw the same [`Grid`].

use std::fmt::Write as _;

use echo_analysis::server::Server;

/// One table: its title (a Markdown heading's text), columns and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The heading, `### ` included.
    pub title: String,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// One row per server, in the registry's order.
    pub rows: Vec<Row>,
}

/// A column: a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Its header.
    pub header: String,
    /// Whether the client was saturated there, so its leading group is by server CPU per
    /// message (`†`).
    pub by_cpu: bool,
}

/// A server's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The server.
    pub server: Server,
    /// Its cells, one per column.
    pub cells: Vec<Cell>,
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Not measured there.
    Missing,
    /// Every round failed before it produced a report.
    Failed,
    /// Its figures.
    Value {
        /// The figures.
        text: String,
        /// Whether it is in the column's leading group.
        leading: bool,
        /// What went wrong (starved connections, errors, behind the offered rate, a failed
        /// round), each short.
        warnings: Vec<String>,
    },
}

impl Grid {
    /// The table in Markdown, leading groups in bold, warnings after `⚠`; empty with no row.
    pub fn markdown(&self) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let mut out = String::from("| model |");
        for column in &self.columns {
            let _ = write!(
                out,
                " {}{} |",
                column.header,
                if column.by_cpu { " †" } else { "" }
            );
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(self.columns.len()));
        out.push('\n');
        for row in &self.rows {
            let outside = if row.server.is_outside() {
                " *(outside)*"
            } else {
                ""
            };
            let _ = write!(out, "| {}{outside} |", row.server);
            for cell in &row.cells {
                let _ = write!(out, " {} |", cell.text(|t| format!("**{t}**")));
            }
            out.push('\n');
        }
        out
    }
}

impl Cell {
    /// Its text, the figures passed through `leading` when in the leading group.
    pub fn text(&self, leading: impl Fn(&str) -> String) -> String {
        match self {
            Cell::Missing => "–".to_owned(),
            Cell::Failed => "failed".to_owned(),
            Cell::Value {
                text,
                leading: lead,
                warnings,
            } => {
                let mut out = if *lead { leading(text) } else { text.clone() };
                for w in warnings {
                    let _ = write!(out, " ⚠{w}");
                }
                out
            }
        }
    }

    /// Whether it is in its column's leading group.
    pub fn is_leading(&self) -> bool {
        matches!(self, Cell::Value { leading: true, .. })
    }
}
