//! The io_uring ablation (`suite --profile ablation`): the `io-uring` model one technique at a
//! time, from plain one-shot operations to everything ([`super::server::VARIANTS`], then the
//! model itself), beside the readiness models and the io_uring runtimes, at the same points.
//!
//! [`of`] computes it from the aggregates as data: each step's server CPU per message with
//! its interval over the rounds, and what the step changed against the step before and
//! against `mio`, paired by round and judged with the same paired bootstrap as every other
//! comparison ([`Change`]). [`table`] and [`draw`] only show it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use echo_servers::Model;

use super::Server;
use super::charts::canvas::{self, Axis, Figure, Line, Mark, Panel, Point, Scale};
use super::charts::style::{Dash, SeriesStyle};
use super::plan::{Load, size_label};
use crate::config::Workload;
use echo_analysis::aggregate::{Aggregate, Measure, TIE_PCT};
use echo_analysis::bootstrap::{Change, Estimate, Verdict};

/// The seed of the comparisons' bootstrap (fixed, so a redraw gives the same intervals).
const SEED: u64 = 0xab1a7e;

/// The ablation of one run: the loads, the steps in order, and the other servers measured at
/// the same loads.
#[derive(Debug, Clone, PartialEq)]
pub struct Ablation {
    /// The loads every step was measured at, in plan order, with their short labels.
    pub loads: Vec<(Load, String)>,
    /// The steps, plain first and the `io-uring` model last.
    pub steps: Vec<Row>,
    /// The other servers measured at those loads (`mio` among them when it ran).
    pub others: Vec<Row>,
}

/// One server's figures at each load of the ablation.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The server.
    pub server: Server,
    /// What the step adds to the one before (steps only).
    pub adds: Option<&'static str>,
    /// Per load (as [`Ablation::loads`]): its figures, if it was measured there.
    pub cells: Vec<Option<Cell>>,
}

/// One server's server CPU per message at one load.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The median over the rounds and its 95% interval, µs.
    pub cpu: Estimate,
    /// Whether it served the load as asked (no failure, starved connection or error).
    pub served: bool,
    /// The change from the step before (steps after the first): `+` costs more.
    pub vs_previous: Option<Change>,
    /// The change from `mio` at the same load: `+` costs more than mio.
    pub vs_mio: Option<Change>,
}

impl Cell {
    /// What the change from `base` says, at the suite's tie threshold: costs less, costs
    /// more, or the rounds cannot separate them.
    pub fn verdict(change: &Change) -> Verdict {
        change.verdict(TIE_PCT, Measure::CpuPerMessage.higher_is_better())
    }
}

/// A load's short label: `256 × 64 B`, `churn`, `stream 16 KiB`, `20k msg/s`.
pub fn load_label(load: &Load) -> String {
    let connections = load.connections;
    match load.workload {
        Workload::PingPong => format!("{connections} × {}", size_label(load.payload)),
        Workload::Churn => "churn".to_owned(),
        Workload::Stream => format!("stream {}", size_label(load.payload)),
        Workload::Rate => format!(
            "{}k msg/s × {connections}",
            load.rate.unwrap_or_default() / 1000
        ),
    }
}

/// The ablation in `all`, or `None` when no step of it was measured.
pub fn of(all: &[Aggregate]) -> Option<Ablation> {
    let steps = Server::uring_steps();
    let variants_ran = all.iter().any(|a| matches!(a.model, Server::Variant(_)));
    if !variants_ran {
        return None;
    }
    let mut loads: Vec<Load> = Vec::new();
    for a in all.iter().filter(|a| steps.contains(&a.model)) {
        let load = key(a);
        if !loads.contains(&load) {
            loads.push(load);
        }
    }
    let at: BTreeMap<(Server, Load), &Aggregate> =
        all.iter().map(|a| ((a.model.clone(), key(a)), a)).collect();
    let mio = Server::Model(Model::Mio);
    let row = |server: Server, previous: Option<Server>| Row {
        adds: server.step_adds(),
        cells: loads
            .iter()
            .map(|load| {
                let a = at.get(&(server.clone(), *load))?;
                Some(Cell {
                    cpu: a.estimate(Measure::CpuPerMessage)?,
                    served: a.served(),
                    vs_previous: previous
                        .clone()
                        .and_then(|p| at.get(&(p, *load)))
                        .and_then(|base| paired(base, a)),
                    vs_mio: at
                        .get(&(mio.clone(), *load))
                        .and_then(|base| paired(base, a)),
                })
            })
            .collect(),
        server,
    };
    let mut previous: Option<Server> = None;
    let step_rows = steps
        .iter()
        .map(|step| {
            let r = row(step.clone(), previous.clone());
            previous = Some(step.clone());
            r
        })
        .collect();
    let mut others: Vec<Server> = all
        .iter()
        .map(|a| a.model.clone())
        .filter(|s| !steps.contains(s) && loads.iter().any(|l| at.contains_key(&(s.clone(), *l))))
        .collect();
    others.sort();
    others.dedup();
    Some(Ablation {
        loads: loads.iter().map(|l| (*l, load_label(l))).collect(),
        steps: step_rows,
        others: others
            .into_iter()
            .map(|s| Row {
                adds: None,
                ..row(s, None)
            })
            .collect(),
    })
}

fn key(a: &Aggregate) -> Load {
    a.load
}

/// `head` against `base` in server CPU per message, paired by round.
fn paired(base: &Aggregate, head: &Aggregate) -> Option<Change> {
    let base: BTreeMap<usize, f64> = base.values(Measure::CpuPerMessage).into_iter().collect();
    let pairs: Vec<(f64, f64)> = head
        .values(Measure::CpuPerMessage)
        .into_iter()
        .filter_map(|(round, v)| Some((*base.get(&round)?, v)))
        .collect();
    Change::of(&pairs, SEED)
}

use crate::render::format::change as change_text;

/// `4.20 µs ±3%`.
fn estimate_text(e: &Estimate) -> String {
    crate::render::format::with_interval(e, |v| format!("{v:.2} µs"))
}

/// The ablation as Markdown: a table of every step's server CPU per message with the change
/// from the step before, then the other servers, then each step against `mio`.
pub fn table(ablation: &Ablation) -> String {
    let mut out = String::from(
        "### io_uring ablation: server CPU per message, one technique at a time\n\n\
         Each step adds one technique to the step before; in parentheses the change from the \
         step before, paired by round, with its 95% interval (`+`: costs more). Churn is per \
         connection, stream per write. `*` where a server did not serve every connection.\n\n| server | adds |",
    );
    for (_, label) in &ablation.loads {
        let _ = write!(out, " {label} |");
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---:|".repeat(ablation.loads.len()));
    out.push('\n');
    let cell_text = |cell: &Option<Cell>, with_previous: bool| match cell {
        None => "–".to_owned(),
        Some(c) => {
            let mut text = estimate_text(&c.cpu);
            if !c.served {
                text.push_str(" *");
            }
            if with_previous && let Some(change) = &c.vs_previous {
                let _ = write!(text, " ({})", change_text(change));
            }
            text
        }
    };
    for row in &ablation.steps {
        let _ = write!(out, "| {} | {} |", row.server, row.adds.unwrap_or(""));
        for cell in &row.cells {
            let _ = write!(out, " {} |", cell_text(cell, true));
        }
        out.push('\n');
    }
    for row in &ablation.others {
        let _ = write!(out, "| {} | (another model) |", row.server);
        for cell in &row.cells {
            let _ = write!(out, " {} |", cell_text(cell, false));
        }
        out.push('\n');
    }
    if ablation
        .steps
        .iter()
        .any(|r| r.cells.iter().flatten().any(|c| c.vs_mio.is_some()))
    {
        out.push_str("\nEach step against `mio` at the same point, paired by round (`+`: costs more than mio; in bold where the rounds cannot separate them by more than ±5%):\n\n| step |");
        for (_, label) in &ablation.loads {
            let _ = write!(out, " {label} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(ablation.loads.len()));
        out.push('\n');
        for row in &ablation.steps {
            let _ = write!(out, "| {} |", row.server);
            for cell in &row.cells {
                let text = match cell.as_ref().and_then(|c| c.vs_mio.as_ref()) {
                    None => "–".to_owned(),
                    Some(change) if Cell::verdict(change) == Verdict::NoChange => {
                        format!("**{}**", change_text(change))
                    }
                    Some(change) => change_text(change),
                };
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

/// `ablation.svg`: server CPU per message at each step (x), one line per load, with the
/// rounds' intervals; `mio` at the same load as a dotted line of the same colour.
pub fn draw(dir: &Path, ablation: &Ablation) -> std::io::Result<Vec<PathBuf>> {
    let step_x = |i: usize| (i + 1) as f64;
    let mut lines = Vec::new();
    let mio = ablation
        .others
        .iter()
        .find(|r| r.server == Server::Model(Model::Mio));
    for (l, (_, label)) in ablation.loads.iter().enumerate() {
        let style = SeriesStyle::nth(l);
        let points: Vec<Point> = ablation
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let cell = row.cells.get(l)?.as_ref()?;
                Some(Point {
                    x: step_x(i),
                    y: cell.cpu.median,
                    interval: Some((cell.cpu.low, cell.cpu.high)),
                    mark: if cell.served {
                        Mark::Filled
                    } else {
                        Mark::Hollow
                    },
                })
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        lines.push(Line {
            name: label.clone(),
            style: SeriesStyle {
                dash: Dash::Solid,
                ..style
            },
            points,
            note: None,
        });
        if let Some(cell) = mio.and_then(|m| m.cells.get(l)?.as_ref()) {
            let y = cell.cpu.median;
            lines.push(Line {
                name: format!("mio, {label}"),
                style: SeriesStyle {
                    dash: Dash::Dotted,
                    ..style
                },
                points: [0, ablation.steps.len() - 1]
                    .into_iter()
                    .map(|i| Point {
                        x: step_x(i),
                        y,
                        interval: None,
                        mark: Mark::None,
                    })
                    .collect(),
                note: None,
            });
        }
    }
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let ticks = ablation
        .steps
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let name = row.server.name();
            (
                step_x(i),
                name.strip_prefix("io-uring.").unwrap_or(name).to_owned(),
            )
        })
        .collect();
    let path = dir.join("ablation.svg");
    canvas::draw(
        &path,
        &Figure {
            title: "io-uring, one technique at a time: server CPU per message".to_owned(),
            x: Axis::new(
                "step (each adds one technique to the one before)",
                Scale::Linear,
            )
            .with_range(0.6, ablation.steps.len() as f64 + 0.4)
            .with_ticks(ticks),
            y: Axis::new("server CPU per message, µs (log scale)", Scale::Log),
            panels: vec![Panel { title: None, lines }],
            notes: vec![
                "Medians over the rounds, bars their 95% interval.".to_owned(),
                "Dotted: mio at the same point.".to_owned(),
            ],
        },
    )?;
    Ok(vec![path])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::SuiteRun;

    /// A run of three rounds at one ping-pong point: mio at 4 µs per message, the steps from
    /// 8 µs down by 1 µs each (the last, the model itself, at 3 µs), each round a little
    /// noisy in the same direction for everyone.
    fn run() -> SuiteRun {
        let mut points = Vec::new();
        let servers: Vec<(String, f64)> = std::iter::once(("mio".to_owned(), 4.0))
            .chain(
                Server::uring_steps()
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.name().to_owned(), 8.0 - i as f64)),
            )
            .collect();
        for round in 0..3 {
            for (name, us) in &servers {
                let cpu_s = us * (1.0 + 0.01 * round as f64) * 1e-6 * 1e5;
                points.push(serde_json::json!({
                    "point": {"model": name, "workload": "ping-pong", "connections": 256,
                              "payload": 64, "round": round},
                    "status": "ok",
                    "report": {"messages": 100000, "throughput_rps": 20000.0,
                               "server": {"pid": 1, "cpu_s": cpu_s, "cpu_cores": 0.5}},
                }));
            }
        }
        serde_json::from_value(serde_json::json!({
            "schema": 3, "profile": "ablation", "command": "x",
            "meta": {"host": "h", "time": "t"}, "duration_s": 0.45, "warmup_s": 0.15,
            "rounds": 3, "points": points,
        }))
        .unwrap()
    }

    #[test]
    fn each_step_is_compared_with_the_one_before_and_with_mio() {
        let all = crate::suite::advice::aggregate(&run());
        let ablation = of(&all).expect("steps were measured");
        assert_eq!(ablation.loads.len(), 1);
        assert_eq!(ablation.loads[0].1, "256 × 64 B");
        assert_eq!(ablation.steps.len(), 6);
        assert_eq!(ablation.steps[0].server.name(), "io-uring.plain");
        assert_eq!(ablation.steps[5].server, Server::Model(Model::IoUring));
        assert_eq!(ablation.others.len(), 1, "mio");
        let first = ablation.steps[0].cells[0].as_ref().unwrap();
        assert!((first.cpu.median - 8.08).abs() < 0.01, "{first:?}");
        assert!(
            first.vs_previous.is_none(),
            "the first step has none before it"
        );
        // 8 → 7 µs: −12.5%, every round alike.
        let second = ablation.steps[1].cells[0].as_ref().unwrap();
        let change = second.vs_previous.as_ref().unwrap();
        assert!((change.change_pct + 12.5).abs() < 0.5, "{change:?}");
        assert_eq!(Cell::verdict(change), Verdict::Improved);
        // The model itself, 3 µs, against mio's 4: −25%, separated.
        let last = ablation.steps[5].cells[0].as_ref().unwrap();
        let vs_mio = last.vs_mio.as_ref().unwrap();
        assert!((vs_mio.change_pct + 25.0).abs() < 0.5, "{vs_mio:?}");
        // io-uring.accept (7 µs) against mio (4 µs): +75%, costs more.
        let accept = ablation.steps[1].cells[0].as_ref().unwrap();
        assert_eq!(
            Cell::verdict(accept.vs_mio.as_ref().unwrap()),
            Verdict::Regressed
        );
        let text = table(&ablation);
        assert!(
            text.contains("| io-uring.accept | multishot accept | 7.07 µs"),
            "{text}"
        );
        assert!(
            text.contains("(−12% [−12%, −12%])") || text.contains("(−13% [−13%, −13%])"),
            "{text}"
        );
        assert!(text.contains("| mio | (another model) | 4.04 µs"), "{text}");
    }

    #[test]
    fn a_run_without_steps_has_no_ablation() {
        let mut run = run();
        run.points
            .retain(|p| p.point.model == Server::Model(Model::Mio));
        assert!(of(&crate::suite::advice::aggregate(&run)).is_none());
    }

    #[test]
    fn the_chart_draws_a_line_per_load_and_mio_beside_it() {
        let all = crate::suite::advice::aggregate(&run());
        let ablation = of(&all).unwrap();
        let dir = std::env::temp_dir().join(format!("ablation-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let written = draw(&dir, &ablation).unwrap();
        let svg = std::fs::read_to_string(&written[0]).unwrap();
        assert!(
            svg.contains("256 × 64 B") && svg.contains("mio, 256 × 64 B"),
            "legend"
        );
        assert!(svg.contains("plain") && svg.contains("defer"), "step ticks");
        std::fs::remove_dir_all(&dir).ok();
    }
}
