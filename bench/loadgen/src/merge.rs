//! Several load generators' reports of one server, measured at the same time, combined into one:
//! what `echo-bench merge` does when one machine cannot load a server alone.
//!
//! Counts add up (messages, bytes, throughput, errors by kind, client CPU), percentiles do not:
//! latency comes from the agents' HDR histograms merged, never from averaged percentiles.
//! Fairness is Jain's index over every agent's connections, which each agent's connection
//! count, mean and index determine exactly: with `n` connections of mean `m` and index `J`, the
//! agent's messages sum to `n·m` and their squares to `(n·m)² / (n·J)`.

use serde::{Deserialize, Serialize};

use crate::report::{Fairness, Latency, Report};
use crate::stats::{Errors, StoredHistograms, encode_histogram};

/// One agent's part of a merged report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Where its report came from (the file named on the command line).
    pub source: String,
    /// The host it ran on.
    pub host: String,
    /// Its target address.
    pub target: String,
    /// Its connections.
    pub connections: usize,
    /// Its messages in its window.
    pub messages: u64,
    /// Its throughput, messages/s.
    pub throughput_rps: f64,
    /// Its p99, µs.
    pub p99_us: u64,
    /// Its errors.
    pub errors: Errors,
    /// Its client CPU, cores.
    pub client_cpu_cores: f64,
    /// Whether its client was saturated (its share of the load is then a lower bound).
    pub client_saturated: bool,
    /// Its measured window: start (Unix seconds) and length (seconds).
    pub window_start_unix_s: f64,
    /// Over `tls:`: the p99 of its handshakes, µs (agents keep no handshake histogram, so this
    /// percentile is not merged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_p99_us: Option<u64>,
    /// See `window_start_unix_s`.
    pub window_s: f64,
}

/// The merged report: the combined figures, then each agent's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Merged {
    /// Messages echoed per second, summed over the agents.
    pub throughput_rps: f64,
    /// Payload MiB echoed per second, summed.
    pub throughput_mib_s: f64,
    /// Messages completed, summed.
    pub messages: u64,
    /// Payload bytes echoed and verified, summed.
    pub bytes: u64,
    /// Latency from the merged histograms.
    pub latency_us: Latency,
    /// Errors by kind, summed.
    pub errors: Errors,
    /// Jain's index and the rest over every agent's connections.
    pub fairness: Fairness,
    /// Connections over all agents.
    pub connections: usize,
    /// The time every agent was measuring: the windows' overlap, seconds.
    pub overlap_s: f64,
    /// The merged latency histograms.
    pub histograms: StoredHistograms,
    /// Over `tls:`, when every agent's report has TLS figures: their handshakes combined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<MergedTls>,
    /// Each agent's part.
    pub agents: Vec<Agent>,
    /// What a reader must know to trust the sums (windows that do not overlap, different
    /// targets, saturated agents).
    pub warnings: Vec<String>,
}

/// The agents' handshakes, summed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MergedTls {
    /// Handshakes completed in the agents' windows.
    pub handshakes: u64,
    /// Of those, the ones that resumed a session.
    pub resumed: u64,
    /// Handshakes per second, summed over the agents.
    pub handshakes_per_s: f64,
}

/// Share of the longest window below which the windows are said not to overlap enough to add
/// their throughputs.
const MIN_OVERLAP: f64 = 0.9;

/// Merges `reports`, each named by its source. `Err` when there are fewer than two, when one
/// report is given twice (its counts would be doubled), when a report lacks the histogram its
/// latency must be merged from, or when the counts' sums overflow (no real report's could).
pub fn merge(reports: &[(String, Report)]) -> Result<Merged, String> {
    if reports.len() < 2 {
        return Err("merge needs the reports of at least two agents".to_owned());
    }
    for (i, (source, report)) in reports.iter().enumerate() {
        if let Some((again, _)) = reports[..i].iter().find(|(_, r)| r == report) {
            return Err(format!(
                "{source} and {again} are the same report: each agent's report goes in once, or \
                 its counts would be doubled"
            ));
        }
    }
    let overflow =
        |what: &str| format!("the agents' {what} overflow when summed: not real reports");
    let sum_u64 = |what: &str, of: fn(&Report) -> u64| {
        reports
            .iter()
            .try_fold(0u64, |sum, (_, r)| sum.checked_add(of(r)))
            .ok_or_else(|| overflow(what))
    };
    let messages = sum_u64("message counts", |r| r.messages)?;
    let bytes = sum_u64("byte counts", |r| r.bytes)?;
    reports
        .iter()
        .try_fold(0usize, |sum, (_, r)| sum.checked_add(r.config.connections))
        .ok_or_else(|| overflow("connection counts"))?;
    reports
        .iter()
        .try_fold(0u64, |sum, (_, r)| sum.checked_add(r.fairness.starved))
        .ok_or_else(|| overflow("starved counts"))?;
    let mut latency = None;
    let mut uncorrected = None;
    for (source, report) in reports {
        let stored = report.histograms.as_ref().ok_or_else(|| {
            format!("{source} holds no latency histogram (written by an older echo-bench run?)")
        })?;
        let h = stored.latency().map_err(|e| format!("{source}: {e}"))?;
        add(&mut latency, h, source)?;
        if let Some(u) = stored.latency_uncorrected() {
            add(
                &mut uncorrected,
                u.map_err(|e| format!("{source}: {e}"))?,
                source,
            )?;
        }
    }
    let latency = latency.expect("at least two reports");

    let mut errors = Errors::default();
    let (mut sum, mut squares, mut connections) = (0.0f64, 0.0f64, 0usize);
    for (_, r) in reports {
        errors.add(&r.errors);
        let n = r.config.connections;
        let total = n as f64 * r.fairness.mean;
        sum += total;
        if r.fairness.jain > 0.0 {
            squares += total * total / (n as f64 * r.fairness.jain);
        }
        connections += n;
    }
    let fairness = Fairness {
        jain: if squares > 0.0 {
            sum * sum / (connections as f64 * squares)
        } else {
            0.0
        },
        min: reports
            .iter()
            .map(|(_, r)| r.fairness.min)
            .min()
            .unwrap_or(0),
        max: reports
            .iter()
            .map(|(_, r)| r.fairness.max)
            .max()
            .unwrap_or(0),
        mean: sum / connections.max(1) as f64,
        starved: reports.iter().map(|(_, r)| r.fairness.starved).sum(),
    };
    let agents: Vec<Agent> = reports.iter().map(|(s, r)| agent(s, r)).collect();
    let overlap_s = overlap(&agents);
    let tls = reports
        .iter()
        .map(|(_, r)| r.tls.as_ref())
        .collect::<Option<Vec<_>>>()
        .map(|parts| -> Result<MergedTls, String> {
            let sum = |of: fn(&crate::report::TlsFigures) -> u64| {
                parts
                    .iter()
                    .try_fold(0u64, |sum, t| sum.checked_add(of(t)))
                    .ok_or_else(|| overflow("handshake counts"))
            };
            Ok(MergedTls {
                handshakes: sum(|t| t.handshakes)?,
                resumed: sum(|t| t.resumed)?,
                handshakes_per_s: parts.iter().map(|t| t.handshakes_per_s).sum(),
            })
        })
        .transpose()?;
    let mut warnings = warnings(&agents, overlap_s);
    let over_tls = reports.iter().filter(|(_, r)| r.tls.is_some()).count();
    if over_tls > 0 && over_tls < reports.len() {
        warnings.push(format!(
            "{over_tls} of {} agents ran over tls: and the others did not: their handshakes are \
             left out of the merged figures",
            reports.len()
        ));
    }
    Ok(Merged {
        throughput_rps: reports.iter().map(|(_, r)| r.throughput_rps).sum(),
        throughput_mib_s: reports.iter().map(|(_, r)| r.throughput_mib_s).sum(),
        messages,
        bytes,
        latency_us: Latency::of(&latency),
        errors,
        fairness,
        connections,
        overlap_s,
        histograms: StoredHistograms {
            latency: encode_histogram(&latency),
            latency_uncorrected: uncorrected.as_ref().map(encode_histogram),
        },
        warnings,
        tls,
        agents,
    })
}

fn add(
    into: &mut Option<hdrhistogram::Histogram<u64>>,
    h: hdrhistogram::Histogram<u64>,
    source: &str,
) -> Result<(), String> {
    match into {
        None => *into = Some(h),
        Some(sum) => sum
            .add(&h)
            .map_err(|e| format!("{source}: histogram cannot be merged: {e:?}"))?,
    }
    Ok(())
}

fn agent(source: &str, r: &Report) -> Agent {
    Agent {
        source: source.to_owned(),
        host: r.meta.host.clone(),
        target: r.config.target.to_string(),
        connections: r.config.connections,
        messages: r.messages,
        throughput_rps: r.throughput_rps,
        p99_us: r.latency_us.p99,
        errors: r.errors,
        client_cpu_cores: r.client.cpu_cores,
        client_saturated: r.client.saturated,
        window_start_unix_s: r.window_start_unix_s,
        window_s: r.duration_s,
        handshake_p99_us: r.tls.as_ref().map(|t| t.handshake_latency_us.p99),
    }
}

/// The time every agent was measuring, seconds (0 when some window is unknown).
fn overlap(agents: &[Agent]) -> f64 {
    if agents.iter().any(|a| a.window_start_unix_s <= 0.0) {
        return 0.0;
    }
    let start = agents
        .iter()
        .map(|a| a.window_start_unix_s)
        .fold(f64::MIN, f64::max);
    let end = agents
        .iter()
        .map(|a| a.window_start_unix_s + a.window_s)
        .fold(f64::MAX, f64::min);
    (end - start).max(0.0)
}

fn warnings(agents: &[Agent], overlap_s: f64) -> Vec<String> {
    let mut warnings = Vec::new();
    let longest = agents.iter().map(|a| a.window_s).fold(0.0, f64::max);
    if agents.iter().any(|a| a.window_start_unix_s <= 0.0) {
        warnings.push(
            "some report does not record when its window opened: cannot check that the agents \
             measured at the same time"
                .to_owned(),
        );
    } else if overlap_s < MIN_OVERLAP * longest {
        warnings.push(format!(
            "the measured windows overlap for {overlap_s:.2} s of {longest:.2} s: the agents did \
             not load the server at the same time, so the summed throughput is not one load \
             (start them together with `run --start-at`)"
        ));
    }
    let mut targets: Vec<&str> = agents.iter().map(|a| a.target.as_str()).collect();
    targets.sort_unstable();
    targets.dedup();
    if targets.len() > 1 {
        warnings.push(format!(
            "the agents drove different addresses ({}): fine for one server on several \
             interfaces, wrong otherwise",
            targets.join(", ")
        ));
    }
    let saturated: Vec<&str> = agents
        .iter()
        .filter(|a| a.client_saturated)
        .map(|a| a.source.as_str())
        .collect();
    if !saturated.is_empty() {
        warnings.push(format!(
            "client saturated in {}: their share of the load is a lower bound",
            saturated.join(", ")
        ));
    }
    warnings
}

impl Merged {
    /// The readable summary: the combined figures, then a line per agent.
    pub fn summary(&self) -> String {
        let l = &self.latency_us;
        let mut out = format!(
            "merged {} agents: {} connections, {:.2} s measured by all at once\n\
             throughput   {:>12.0} msg/s   {:>9.2} MiB/s   ({} messages)\n\
             latency µs   p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (merged histograms)\n\
             fairness     Jain {:.3} over all connections, {} starved\n\
             errors       {} in all\n",
            self.agents.len(),
            self.connections,
            self.overlap_s,
            self.throughput_rps,
            self.throughput_mib_s,
            self.messages,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.p9999,
            l.max,
            self.fairness.jain,
            self.fairness.starved,
            self.errors.total(),
        );
        if let Some(t) = &self.tls {
            out.push_str(&format!(
                "tls          {} handshakes ({} resumed), {:.0}/s   (handshake percentiles per agent)\n",
                t.handshakes, t.resumed, t.handshakes_per_s
            ));
        }
        for a in &self.agents {
            let handshake = a
                .handshake_p99_us
                .map_or_else(String::new, |us| format!(", handshake p99 {us} µs"));
            out.push_str(&format!(
                "  agent {} ({}): {} conn, {:.0} msg/s, p99 {} µs{handshake}, {} errors, client {:.2} cores{}\n",
                a.source,
                a.host,
                a.connections,
                a.throughput_rps,
                a.p99_us,
                a.errors.total(),
                a.client_cpu_cores,
                if a.client_saturated { " (saturated)" } else { "" }
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    /// An agent's report: `connections` each completing `per_connection` messages, latencies
    /// `latencies_us`, window from `start` for 2 s.
    fn report(latencies_us: &[u64], connections: usize, start: f64) -> Report {
        let mut h = new_histogram();
        for &us in latencies_us {
            h.record(us).unwrap();
        }
        let mut r = Report {
            throughput_rps: latencies_us.len() as f64 / 2.0,
            messages: latencies_us.len() as u64,
            bytes: latencies_us.len() as u64 * 64,
            latency_us: Latency::of(&h),
            duration_s: 2.0,
            window_start_unix_s: start,
            histograms: Some(StoredHistograms {
                latency: encode_histogram(&h),
                latency_uncorrected: None,
            }),
            ..Report::default()
        };
        r.config.connections = connections;
        r.fairness = Fairness {
            jain: 1.0,
            min: 0,
            max: 0,
            mean: latencies_us.len() as f64 / connections as f64,
            starved: 0,
        };
        r
    }

    #[test]
    fn counts_add_up_and_the_p99_lies_between_the_parts() {
        let fast: Vec<u64> = (1..=1000).map(|i| 50 + i % 50).collect();
        let slow: Vec<u64> = (1..=1000).map(|i| 500 + i % 500).collect();
        let (a, b) = (report(&fast, 4, 100.0), report(&slow, 4, 100.0));
        let merged = merge(&[("a".into(), a.clone()), ("b".into(), b.clone())]).unwrap();
        assert_eq!(merged.messages, a.messages + b.messages);
        assert_eq!(merged.throughput_rps, a.throughput_rps + b.throughput_rps);
        assert!(a.latency_us.p99 <= merged.latency_us.p99);
        assert!(merged.latency_us.p99 <= b.latency_us.p99);
        assert_eq!(merged.connections, 8);
        assert!((merged.overlap_s - 2.0).abs() < 1e-9);
        assert!(merged.warnings.is_empty(), "{:?}", merged.warnings);
    }

    #[test]
    fn fairness_is_jains_index_over_every_connection() {
        // Two perfectly even agents, one with four times the messages per connection: over
        // all 8 connections, (4·1 + 4·4)² / (8 · (4·1 + 4·16)) = 400 / 544.
        let a = report(&[100; 4], 4, 100.0);
        let b = report(&[100; 16], 4, 100.0);
        let merged = merge(&[("a".into(), a), ("b".into(), b)]).unwrap();
        assert!((merged.fairness.jain - 400.0 / 544.0).abs() < 1e-9);
    }

    #[test]
    fn errors_are_summed_by_kind() {
        let mut a = report(&[100; 10], 2, 100.0);
        a.errors.reset = 2;
        let mut b = report(&[100; 10], 2, 100.0);
        b.errors.reset = 1;
        b.errors.timeout = 3;
        let merged = merge(&[("a".into(), a), ("b".into(), b)]).unwrap();
        assert_eq!((merged.errors.reset, merged.errors.timeout), (3, 3));
        assert_eq!(merged.errors.total(), 6);
    }

    #[test]
    fn windows_that_do_not_overlap_are_said_to() {
        let merged = merge(&[
            ("a".into(), report(&[100; 10], 2, 100.0)),
            ("b".into(), report(&[100; 10], 2, 105.0)),
        ])
        .unwrap();
        assert_eq!(merged.overlap_s, 0.0);
        assert!(
            merged.warnings.iter().any(|w| w.contains("overlap")),
            "{:?}",
            merged.warnings
        );
    }

    fn over_tls(mut r: Report, handshakes: u64, resumed: u64, p99: u64) -> Report {
        r.tls = Some(crate::report::TlsFigures {
            handshakes,
            resumed,
            handshakes_per_s: handshakes as f64 / r.duration_s,
            handshake_latency_us: Latency {
                p99,
                ..Latency::default()
            },
            ..crate::report::TlsFigures::default()
        });
        r
    }

    #[test]
    fn handshakes_are_summed_and_their_p99_kept_per_agent() {
        let a = over_tls(report(&[100; 10], 2, 100.0), 300, 100, 900);
        let b = over_tls(report(&[100; 12], 2, 100.0), 500, 0, 1500);
        let merged = merge(&[("a".into(), a), ("b".into(), b)]).unwrap();
        let tls = merged.tls.expect("both agents ran over tls:");
        assert_eq!((tls.handshakes, tls.resumed), (800, 100));
        assert!((tls.handshakes_per_s - 400.0).abs() < 1e-9);
        let p99s: Vec<_> = merged.agents.iter().map(|a| a.handshake_p99_us).collect();
        assert_eq!(p99s, [Some(900), Some(1500)]);
        assert!(merged.summary().contains("800 handshakes (100 resumed)"));
        assert!(merged.warnings.is_empty(), "{:?}", merged.warnings);

        let plain = report(&[100; 10], 2, 100.0);
        let tls_agent = over_tls(report(&[100; 12], 2, 100.0), 500, 0, 1500);
        let mixed = merge(&[("plain".into(), plain), ("tls".into(), tls_agent)]).unwrap();
        assert_eq!(mixed.tls, None);
        assert!(
            mixed
                .warnings
                .iter()
                .any(|w| w.contains("1 of 2 agents ran over tls:")),
            "{:?}",
            mixed.warnings
        );
    }

    #[test]
    fn a_report_without_histograms_cannot_be_merged() {
        let mut old = report(&[100; 10], 2, 100.0);
        old.histograms = None;
        let err = merge(&[
            ("a".into(), report(&[100; 10], 2, 100.0)),
            ("old.json".into(), old),
        ])
        .unwrap_err();
        assert!(err.contains("old.json"), "{err}");
        assert!(merge(&[("a".into(), report(&[1], 1, 1.0))]).is_err());
    }
}
