//! The order of a run: each round of benchmarks as trials in ABBA/BAAB blocks from the seed.

use super::*;

/// The trials of one round of benchmarks, in their ABBA/BAAB order.
pub(super) struct Plan<'a> {
    options: &'a AbOptions,
    benchmarks: &'a [usize],
    /// Per benchmark, whether each block of two pairs runs ABBA (`true`) or BAAB.
    blocks: Vec<Vec<bool>>,
    started: Instant,
}

impl<'a> Plan<'a> {
    pub(super) fn new(
        options: &'a AbOptions,
        benchmarks: &'a [usize],
        seed: u64,
        started: Instant,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let most = options.pairs.max(options.count.pairs);
        let blocks = benchmarks
            .iter()
            .map(|_| (0..most.div_ceil(2)).map(|_| rng.random()).collect())
            .collect();
        Self {
            options,
            benchmarks,
            blocks,
            started,
        }
    }

    /// Runs every pair: the rounds outermost, so each benchmark's pairs are spread over the
    /// whole run and a slow drift of the machine touches base and head alike.
    pub(super) fn run(
        &mut self,
        base: &mut Build,
        head: &mut Build,
        on_trial: &mut OnTrial<'_>,
    ) -> Vec<Vec<Pair>> {
        // A counted benchmark has its own number of pairs (its counts vary far less).
        let pairs_of = |spec: &BenchmarkSpec| {
            if spec.counted {
                self.options.count.pairs
            } else {
                self.options.pairs
            }
        };
        let total: usize = self
            .benchmarks
            .iter()
            .map(|&i| pairs_of(&self.options.benchmarks[i]) * 2)
            .sum();
        let rounds = self
            .benchmarks
            .iter()
            .map(|&i| pairs_of(&self.options.benchmarks[i]))
            .max()
            .unwrap_or(0);
        let mut done = 0;
        let mut pairs: Vec<Vec<Pair>> = vec![Vec::new(); self.benchmarks.len()];
        let options = self.options;
        let build = |side: Side| match side {
            Side::Base => &options.base,
            Side::Head => &options.head,
        };
        for round in 0..rounds {
            // ABBA: the block's first pair runs base first, its second head first.
            let sides_of = |slot: usize| {
                if self.blocks[slot][round / 2] == (round % 2 == 0) {
                    [Side::Base, Side::Head]
                } else {
                    [Side::Head, Side::Base]
                }
            };
            // The round's counted pairs go all at once, every server of every benchmark: a
            // count does not depend on the machine's load, and a server under valgrind spends
            // most of its time starting or waiting for the client.
            let counted_slots: Vec<usize> = (0..self.benchmarks.len())
                .filter(|&slot| {
                    let spec = &options.benchmarks[self.benchmarks[slot]];
                    spec.counted && round < pairs_of(spec)
                })
                .collect();
            let jobs: Vec<(&BenchmarkSpec, [(Side, &Build); 2])> = counted_slots
                .iter()
                .map(|&slot| {
                    let spec = &options.benchmarks[self.benchmarks[slot]];
                    (spec, sides_of(slot).map(|s| (s, build(s))))
                })
                .collect();
            let mut counted: BTreeMap<usize, [(Side, Sample); 2]> = counted_slots
                .into_iter()
                .zip(counted::pairs(options, &jobs, self.started))
                .collect();
            for (slot, &index) in self.benchmarks.iter().enumerate() {
                let spec = &options.benchmarks[index];
                if round >= pairs_of(spec) {
                    continue;
                }
                let sides = sides_of(slot);
                let order = if sides[0] == Side::Base { "AB" } else { "BA" };
                let mut pair = Pair {
                    order: order.to_owned(),
                    ..Pair::default()
                };
                let mut record = |side: Side, sample: Sample, pair: &mut Pair| {
                    done += 1;
                    on_trial(done, total, &format!("{} {}", spec.name(), side_name(side)));
                    match side {
                        Side::Base => pair.base = sample,
                        Side::Head => pair.head = sample,
                    }
                };
                if let Some(samples) = counted.remove(&slot) {
                    for (side, sample) in samples {
                        record(side, sample, &mut pair);
                    }
                } else if options.duet {
                    // Both at once, started in the pair's order, so the machine's noise at
                    // that moment hits both alike.
                    let running =
                        sides.map(|side| start_trial(options, build(side), spec, self.started));
                    for (side, running) in sides.into_iter().zip(running) {
                        let target = match side {
                            Side::Base => &mut *base,
                            Side::Head => &mut *head,
                        };
                        let sample = running.map_or_else(|s| s, |r| r.finish(target));
                        record(side, sample, &mut pair);
                    }
                } else {
                    for side in sides {
                        let target = match side {
                            Side::Base => &mut *base,
                            Side::Head => &mut *head,
                        };
                        let sample = start_trial(options, build(side), spec, self.started)
                            .map_or_else(|s| s, |r| r.finish(target));
                        record(side, sample, &mut pair);
                    }
                }
                check_saturation(
                    &mut pair,
                    spec,
                    options.duet,
                    options
                        .pinning
                        .server_cpus
                        .as_ref()
                        .map_or_else(echo_loadgen::config::default_threads, Vec::len),
                );
                pairs[slot].push(pair);
            }
        }
        pairs
    }
}

pub(super) fn side_name(side: Side) -> &'static str {
    match side {
        Side::Base => "base",
        Side::Head => "head",
    }
}
