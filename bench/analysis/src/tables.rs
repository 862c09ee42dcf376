//! The results tables as data: per workload, one column per point and one row per server, each
//! column's leading group by the workload's measure (or by server CPU per message where the
//! client saturated). The renderers choose what each cell says.

use echo_loadgen::config::Workload;

use crate::aggregate::{Aggregate, Measure};
use crate::rank::{measure_for, rank};
use crate::server::Server;

/// One workload's table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table<'a> {
    /// Its columns, in the order first measured.
    pub columns: Vec<Column<'a>>,
    /// Its rows' servers, in the registry's order (whatever order the rounds ran in).
    pub servers: Vec<Server>,
}

/// One column: the points of one load, one per server measured there.
#[derive(Debug, Clone, PartialEq)]
pub struct Column<'a> {
    /// Its points; the first names the column.
    pub points: Vec<&'a Aggregate>,
    /// Its leading group (empty for a table that ranks nothing).
    pub leading: Vec<Server>,
    /// Whether the client saturated there, so the group is by server CPU per message.
    pub by_cpu: bool,
}

impl<'a> Column<'a> {
    /// `server`'s point in this column, if it was measured there.
    pub fn of(&self, server: &Server) -> Option<&'a Aggregate> {
        self.points.iter().copied().find(|a| a.model == *server)
    }
}

/// The table of `workload`'s points in `aggregates`: a column per load (connections, payload,
/// rate, work, resumed), ranked by `preferred` (`None`: no ranking).
pub fn table(
    aggregates: &[Aggregate],
    workload: Workload,
    preferred: Option<Measure>,
) -> Table<'_> {
    let points: Vec<&Aggregate> = aggregates
        .iter()
        .filter(|a| a.load.workload == workload)
        .collect();
    let column_of = |a: &Aggregate| {
        (
            a.load.connections,
            a.load.payload,
            a.load.rate,
            a.load.work_us,
            a.load.tls_resume,
        )
    };
    let mut keys = Vec::new();
    let mut servers = Vec::new();
    for a in &points {
        if !keys.contains(&column_of(a)) {
            keys.push(column_of(a));
        }
        if !servers.contains(&a.model) {
            servers.push(a.model.clone());
        }
    }
    servers.sort();
    let columns = keys
        .iter()
        .map(|key| {
            let points: Vec<&Aggregate> = points
                .iter()
                .copied()
                .filter(|a| column_of(a) == *key)
                .collect();
            let (leading, by_cpu) = preferred.map_or((Vec::new(), false), |preferred| {
                let measure = measure_for(&points, preferred);
                let group = rank(&points, measure).map_or_else(Vec::new, |r| r.group());
                (group, measure != preferred)
            });
            Column {
                points,
                leading,
                by_cpu,
            }
        })
        .collect();
    Table { columns, servers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{saturated, trial};
    use crate::run::SuiteRun;
    use echo_servers::Model;

    #[test]
    fn a_table_has_a_column_per_load_and_its_leading_group() {
        let mut run = SuiteRun::default();
        for round in 0..3 {
            let drift = 1.0 + 0.1 * round as f64;
            // At 16 connections mio is 50% ahead in every round; at 256, tokio and mio tie.
            run.points
                .push(trial(Model::Tokio, 16, round, 60_000.0 * drift, 0.5));
            run.points
                .push(trial(Model::Mio, 16, round, 90_000.0 * drift, 0.5));
            run.points
                .push(trial(Model::Mio, 256, round, 100_000.0 * drift, 0.5));
            let tokio = [101_000.0, 99_000.0, 100_500.0][round];
            run.points
                .push(trial(Model::Tokio, 256, round, tokio * drift, 0.5));
        }
        let all = crate::aggregate::aggregate(&run);
        let t = table(&all, Workload::PingPong, Some(Measure::Throughput));
        assert_eq!(
            t.servers,
            [Model::Mio.into(), Model::Tokio.into()],
            "registry order"
        );
        assert_eq!(t.columns.len(), 2);
        assert_eq!(t.columns[0].points[0].load.connections, 16);
        assert_eq!(t.columns[0].leading, [Server::from(Model::Mio)]);
        assert_eq!(
            t.columns[1].leading.len(),
            2,
            "tied: {:?}",
            t.columns[1].leading
        );
        assert!(!t.columns[0].by_cpu);
        assert_eq!(
            t.columns[1]
                .of(&Model::Tokio.into())
                .map(|a| a.load.connections),
            Some(256)
        );
        assert!(t.columns[0].of(&Model::Blocking.into()).is_none());
        let unranked = table(&all, Workload::PingPong, None);
        assert!(unranked.columns.iter().all(|c| c.leading.is_empty()));
        assert!(table(&all, Workload::Churn, None).columns.is_empty());
    }

    #[test]
    fn where_the_client_saturated_the_column_ranks_by_server_cpu() {
        let mut run = SuiteRun::default();
        for round in 0..3 {
            run.points
                .push(saturated(trial(Model::Mio, 16, round, 100_000.0, 0.5)));
            run.points
                .push(saturated(trial(Model::Tokio, 16, round, 100_000.0, 0.5)));
        }
        let all = crate::aggregate::aggregate(&run);
        let t = table(&all, Workload::PingPong, Some(Measure::Throughput));
        assert!(t.columns[0].by_cpu);
    }
}
