//! One interface for every output format, as hyperfine has: an [`Exporter`] turns a result
//! into the bytes of its format, and [`Exports`] writes each requested format to its path and
//! says which it could not. The run's formats (JSON, CSV, the HDR histogram) are here; `ab`'s
//! (JSON, Markdown, BMF, github-action) implement the same trait over its report.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2Serializer};

use crate::report::Report;

/// A format a result can be written in.
pub trait Exporter<R: ?Sized> {
    /// The format's name, for error messages ("JSON", "CSV", ...).
    fn name(&self) -> &'static str;
    /// The bytes of `result` in this format.
    fn render(&self, result: &R) -> std::io::Result<Vec<u8>>;
}

/// The formats asked for, each with its path.
pub struct Exports<'e, R: ?Sized> {
    requested: Vec<(Box<dyn Exporter<R> + 'e>, PathBuf)>,
}

impl<R: ?Sized> std::fmt::Debug for Exports<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<(&str, &PathBuf)> =
            self.requested.iter().map(|(e, p)| (e.name(), p)).collect();
        f.debug_list().entries(list).finish()
    }
}

impl<R: ?Sized> Default for Exports<'_, R> {
    fn default() -> Self {
        Self {
            requested: Vec::new(),
        }
    }
}

impl<'e, R: ?Sized> Exports<'e, R> {
    /// Adds `exporter` when a path was given for it.
    pub fn add(&mut self, exporter: impl Exporter<R> + 'e, path: Option<&Path>) {
        if let Some(path) = path {
            self.requested.push((Box::new(exporter), path.to_owned()));
        }
    }

    /// Checks, before a run, that every requested path can be written
    /// ([`crate::files::check_writable`]: nothing is created, emptied or left behind): `Err`
    /// names the first format and path that cannot.
    pub fn check_writable(&self) -> Result<(), String> {
        for (exporter, path) in &self.requested {
            crate::files::check_writable(path)
                .map_err(|why| format!("{} output: {why}", exporter.name()))?;
        }
        Ok(())
    }

    /// Writes every requested format of `result`; `Err` holds one line per format that could
    /// not be written, naming it and its path.
    pub fn write(&self, result: &R) -> Result<(), Vec<String>> {
        let failures: Vec<String> = self
            .requested
            .iter()
            .filter_map(|(exporter, path)| {
                let written = exporter
                    .render(result)
                    .and_then(|bytes| crate::files::write(path, bytes));
                written.err().map(|err| {
                    format!(
                        "cannot write {} to {}: {err}",
                        exporter.name(),
                        path.display()
                    )
                })
            })
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }
}

/// What a run's formats are made from: its report and its latency histogram.
#[derive(Debug, Clone, Copy)]
pub struct RunResult<'a> {
    /// The report.
    pub report: &'a Report,
    /// Every message's latency, µs.
    pub latency: &'a Histogram<u64>,
}

/// The whole report as pretty JSON (its field names are an interface).
#[derive(Debug, Clone, Copy)]
pub struct Json;

impl Exporter<RunResult<'_>> for Json {
    fn name(&self) -> &'static str {
        "JSON"
    }

    fn render(&self, run: &RunResult<'_>) -> std::io::Result<Vec<u8>> {
        let json = serde_json::to_string_pretty(run.report).map_err(std::io::Error::other)?;
        Ok((json + "\n").into_bytes())
    }
}

/// The header and one row of the headline figures.
#[derive(Debug, Clone, Copy)]
pub struct Csv;

impl Exporter<RunResult<'_>> for Csv {
    fn name(&self) -> &'static str {
        "CSV"
    }

    fn render(&self, run: &RunResult<'_>) -> std::io::Result<Vec<u8>> {
        Ok(format!("{}\n{}\n", Report::CSV_HEADER, run.report.csv_row()).into_bytes())
    }
}

/// The latency histogram in the HdrHistogram V2 format (mergeable across runs and hosts).
#[derive(Debug, Clone, Copy)]
pub struct Hdr;

impl Exporter<RunResult<'_>> for Hdr {
    fn name(&self) -> &'static str {
        "HDR histogram"
    }

    fn render(&self, run: &RunResult<'_>) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(run.latency, &mut bytes)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_requested_format_is_written_and_a_failure_names_its_path() {
        let dir = std::env::temp_dir().join(format!("echo-loadgen-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let report = Report::default();
        let mut latency = Histogram::<u64>::new(3).unwrap();
        latency.record(42).unwrap();
        let run = RunResult {
            report: &report,
            latency: &latency,
        };
        let (json, csv) = (dir.join("r.json"), dir.join("r.csv"));
        let missing = dir.join("no/such/dir/r.hdr");
        let mut exports = Exports::default();
        exports.add(Json, Some(&json));
        exports.add(Csv, Some(&csv));
        exports.add(Hdr, Some(&missing));
        exports.add(Json, None);
        let failures = exports.write(&run).unwrap_err();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].starts_with("cannot write HDR histogram to "),
            "{failures:?}"
        );
        assert!(failures[0].contains("no/such/dir"), "{failures:?}");
        let read: Report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(read, report);
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text.lines().next(), Some(Report::CSV_HEADER));
        std::fs::remove_dir_all(&dir).ok();
    }
}
