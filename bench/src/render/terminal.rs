//! What the terminal shows after a suite run: the results tables drawn by comfy-table (the
//! leading group of each column in bold green) and the advice, emphasis in bold. Styled only
//! when stdout is a terminal and `NO_COLOR` is unset or empty; plain text otherwise, so a
//! piped run reads cleanly.

use std::io::IsTerminal as _;

use comfy_table::{Attribute, Cell as Shown, CellAlignment, Color, ContentArrangement, Table};

use echo_analysis::aggregate::Aggregate;
use echo_analysis::run::SuiteRun;
use echo_analysis::transports::{compare, savings, sections};
use echo_servers::Transport;

use super::Style;
use super::table::Grid;

/// What the terminal shows once the run is measured: each transport's tables and advice, the
/// capacity search's table, then TCP against Unix sockets; in `style` (bold where a terminal
/// takes it, plain when piped).
pub fn report(run: &SuiteRun, aggregates: &[Aggregate], style: Style) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for section in sections(run, aggregates) {
        if let Some(transport) = section.transport {
            let _ = writeln!(out, "{}\n", style.bold(super::transports::title(transport)));
        }
        for grid in super::markdown::grids(&section.aggregates) {
            let _ = writeln!(out, "{}", self::grid(&grid, style));
        }
        let _ = writeln!(out, "{}\n", legend(style));
        let _ = writeln!(out, "{}", style.bold("Which model to pick:"));
        for line in super::advice::lines_of(&section.run, &section.aggregates, style) {
            let _ = writeln!(out, "- {line}");
        }
        out.push('\n');
    }
    // The capacity search's knee table (capacity and full profiles), as summary.md has it.
    out.push_str(&super::capacity::table_of(run));
    // Then TCP against a Unix socket, and what TLS costs over TCP.
    let advice = [
        (
            Transport::Unix,
            super::transports::advice as fn(&[_], Style) -> _,
        ),
        (Transport::Tls, super::transports::tls_advice),
    ];
    for (other, advice) in advice {
        let comparisons = compare(aggregates, other);
        if comparisons.is_empty() {
            continue;
        }
        let grid = super::transports::grid(&comparisons);
        let _ = writeln!(out, "{}", self::grid(&grid, style));
        if let Some(line) = advice(&savings(&comparisons), style) {
            let _ = writeln!(out, "- {line}");
        }
    }
    out
}

/// Whether this process's output gets styled: stdout is a terminal and `NO_COLOR` (any
/// non-empty value, <https://no-color.org>) is not set.
pub fn style() -> Style {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if !no_color && std::io::stdout().is_terminal() {
        Style::Ansi
    } else {
        Style::Plain
    }
}

/// `grid` as a terminal table, its title above it; styled as `style` says.
pub fn grid(grid: &Grid, style: Style) -> String {
    let styled = style == Style::Ansi;
    let mut table = Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if styled {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    let mut header = vec![Shown::new("model")];
    header.extend(grid.columns.iter().map(|c| {
        Shown::new(format!("{}{}", c.header, if c.by_cpu { " †" } else { "" }))
            .set_alignment(CellAlignment::Right)
    }));
    table.set_header(header);
    for row in &grid.rows {
        let name = if row.server.is_outside() {
            format!("{} (outside)", row.server)
        } else {
            row.server.to_string()
        };
        let mut cells = vec![Shown::new(name)];
        for cell in &row.cells {
            // Unstyled, the leading group is marked with `*` so it survives a pipe.
            let text = cell.text(|t| {
                if styled {
                    t.to_owned()
                } else {
                    format!("*{t}")
                }
            });
            let mut shown = Shown::new(text).set_alignment(CellAlignment::Right);
            if styled && cell.is_leading() {
                shown = shown.add_attribute(Attribute::Bold).fg(Color::Green);
            }
            cells.push(shown);
        }
        table.add_row(cells);
    }
    let title = grid.title.trim_start_matches('#').trim();
    format!("{}\n{table}\n", style.bold(title))
}

/// The legend under the tables: what bold (or `*`) and `†` mean.
pub fn legend(style: Style) -> String {
    let leading = match style {
        Style::Ansi => "\x1b[1;32mbold green\x1b[0m",
        _ => "*",
    };
    format!(
        "{leading}: each column's leading group (the models the rounds cannot separate from the \
         best); †: the client was saturated, so ranked by server CPU per message."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::table::{Cell, Column, Row};
    use echo_servers::Model;

    fn sample() -> Grid {
        Grid {
            title: "### Ping-pong: messages/s".to_owned(),
            columns: vec![Column {
                header: "16 conn × 64 B".to_owned(),
                by_cpu: true,
            }],
            rows: vec![
                Row {
                    server: Model::Mio.into(),
                    cells: vec![Cell::Value {
                        text: "131k ±4%".to_owned(),
                        leading: true,
                        warnings: Vec::new(),
                    }],
                },
                Row {
                    server: Model::Blocking.into(),
                    cells: vec![Cell::Value {
                        text: "20.1k ±2%".to_owned(),
                        leading: false,
                        warnings: vec!["15 starved".to_owned()],
                    }],
                },
            ],
        }
    }

    #[test]
    fn plain_output_has_no_escape_codes_and_marks_the_leaders_with_a_star() {
        let text = grid(&sample(), Style::Plain);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            !text.contains("**") && !text.contains("|---"),
            "no Markdown: {text}"
        );
        assert!(text.starts_with("Ping-pong: messages/s\n"), "{text}");
        assert!(text.contains("*131k ±4%"), "{text}");
        assert!(text.contains("20.1k ±2% ⚠15 starved"), "{text}");
        assert!(text.contains("16 conn × 64 B †"), "{text}");
    }

    #[test]
    fn styled_output_makes_the_leading_group_bold() {
        let text = grid(&sample(), Style::Ansi);
        assert!(text.contains("\x1b[1m"), "{text:?}");
        assert!(!text.contains("*131k"), "{text}");
    }
}
