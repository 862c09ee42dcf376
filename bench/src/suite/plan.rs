//! Which points a suite run measures, and in what order: the profiles, the selection flags, and
//! the schedule of interleaved rounds.
//!
//! Every point is measured once per round. Within a round, the models of each point run in an
//! order shuffled from the run's seed, so a burst of background load or a slow drift of the
//! machine lands on different models in different rounds and shows up as spread, not as rank.
//!
//! It is long because it is the profiles' table, with a test of each profile's shape and of
//! which servers (models, variants, outside servers) each transport measures.

use echo_servers::{Model, Transport};

use super::Server;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

pub use echo_analysis::point::{
    ABLATION_MODELS, Load, Point, Profile, driver_name, model_name, size_label, transport_name,
};
use echo_loadgen::config::Workload;

/// Narrowing of a profile by the selection flags; `None` keeps the profile's own choice.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Models to run.
    pub models: Option<Vec<Model>>,
    /// Outside servers to measure beside them (`--server`), at the points without handler
    /// work (their handlers cannot be told to work), over TCP, or over TLS alone for one whose
    /// command takes `{cert}` or `{key}`.
    pub outside: Vec<Server>,
    /// Workloads to run.
    pub workloads: Option<Vec<Workload>>,
    /// Connection counts for ping-pong (and stream, rate).
    pub connections: Option<Vec<usize>>,
    /// Payloads for ping-pong.
    pub payloads: Option<Vec<usize>>,
    /// Rounds.
    pub rounds: Option<usize>,
    /// CPU work per message to sweep, µs (the first for every point, the others for ping-pong
    /// with the smallest payload).
    pub work_us: Option<Vec<u64>>,
    /// Transports to measure (default: TCP alone).
    pub transports: Option<Vec<Transport>>,
}

/// The work sweep of the full profile: none, a cheap handler, and one that costs more than the
/// echo itself (µs of CPU per message).
pub const FULL_WORK_US: [u64; 3] = [0, 50, 500];

/// The open-loop point of the quick profile: a rate every unbounded model sustains on one server
/// core, so models are compared on server CPU per message and p99 at equal offered load, which
/// the client's limits do not distort.
pub const QUICK_RATE: (usize, f64) = (64, 20_000.0);

/// The points of `profile` narrowed by `selection`, one per model and load (round 0); see
/// [`schedule`] for the rounds. Long because it is the profiles' table: one arm per workload,
/// each saying which points that profile measures.
pub fn points(profile: Profile, selection: &Selection) -> Vec<Point> {
    let models = selection.models.clone().unwrap_or_else(|| match profile {
        Profile::Ablation => ABLATION_MODELS
            .iter()
            .filter_map(|name| name.parse().ok())
            .collect(),
        _ => Model::ALL.to_vec(),
    });
    let (connections, payloads, workloads): (Vec<usize>, Vec<usize>, Vec<Workload>) = match profile
    {
        // Seventeen models fit in three minutes at four points: the ablation keeps the other two
        // (one connection, where every model waits on wake-ups alike, and stream).
        Profile::Quick => (
            vec![256],
            vec![64, 4096],
            vec![Workload::PingPong, Workload::Churn, Workload::Rate],
        ),
        Profile::Ablation => (
            vec![1, 256],
            vec![64, 4096],
            vec![
                Workload::PingPong,
                Workload::Churn,
                Workload::Stream,
                Workload::Rate,
            ],
        ),
        Profile::Full => (
            vec![1, 10, 100, 1000, 10_000],
            vec![64, 1024, 16 * 1024, 64 * 1024],
            vec![
                Workload::PingPong,
                Workload::Rate,
                Workload::Churn,
                Workload::Stream,
            ],
        ),
        Profile::Tiny => (vec![4], vec![64], vec![Workload::PingPong]),
        // Its own measurement (suite::c10k), not points.
        Profile::C10k | Profile::Capacity => return Vec::new(),
    };
    let connections = selection.connections.clone().unwrap_or(connections);
    let payloads = selection.payloads.clone().unwrap_or(payloads);
    let workloads = selection.workloads.clone().unwrap_or(workloads);
    let works = selection.work_us.clone().unwrap_or_else(|| match profile {
        Profile::Full => FULL_WORK_US.to_vec(),
        _ => vec![0],
    });
    let first_work = works.first().copied().unwrap_or(0);
    let steps = match profile {
        Profile::Ablation => Server::uring_steps(),
        _ => Vec::new(),
    };
    let servers: Vec<Server> = models
        .iter()
        .map(|&m| Server::Model(m))
        .filter(|s| !steps.contains(s))
        .chain(steps.iter().cloned())
        .chain(selection.outside.iter().cloned())
        .collect();
    let mut points = Vec::new();
    let transports = selection
        .transports
        .clone()
        .unwrap_or_else(|| match profile {
            // TLS is part of the full profile, opt-in (`--transports tcp,tls`) elsewhere.
            Profile::Full => vec![Transport::Tcp, Transport::Tls],
            _ => vec![Transport::Tcp],
        });
    if transports.contains(&Transport::Tcp) {
        // Every model; the outside servers whose commands take no certificate.
        let tcp: Vec<Server> = servers
            .iter()
            .filter(|s| s.serves(Transport::Tcp))
            .cloned()
            .collect();
        stream_points(
            profile,
            &tcp,
            &workloads,
            &connections,
            &payloads,
            &works,
            selection,
            Transport::Tcp,
            &mut points,
        );
    }
    // An outside server is measured over TLS when its command takes `{cert}` or `{key}`, and
    // then over TLS alone (`Server::serves`); never over Unix, as no command need take a path.
    // In the quick profile each other stream transport measures only the points it is about:
    // over Unix, ping-pong and open loop (the per-message cost; churn and stream would double
    // its time for little); over TLS, those and churn, the handshake point (every connection a
    // full handshake: what TLS costs per connection).
    for (transport, quick) in [
        (Transport::Unix, &[Workload::PingPong, Workload::Rate][..]),
        (
            Transport::Tls,
            &[Workload::PingPong, Workload::Rate, Workload::Churn][..],
        ),
    ] {
        if !transports.contains(&transport) {
            continue;
        }
        let models: Vec<Server> = servers
            .iter()
            .filter(|s| s.serves(transport))
            .cloned()
            .collect();
        let (workloads, works) = if profile.quick_points() && selection.workloads.is_none() {
            (quick.to_vec(), vec![first_work])
        } else {
            (workloads.clone(), works.clone())
        };
        stream_points(
            profile,
            &models,
            &workloads,
            &connections,
            &payloads,
            &works,
            selection,
            transport,
            &mut points,
        );
    }
    if transports.contains(&Transport::Udp) {
        datagram_points(
            profile,
            &servers,
            &workloads,
            selection,
            first_work,
            &mut points,
        );
    }
    points
}

/// The datagram points: the models that serve UDP, at ping-pong from one socket and from many,
/// and open loop at the quick profile's rate (full: its rate sweep). UDP has no connections to
/// churn and no stream.
fn datagram_points(
    profile: Profile,
    servers: &[Server],
    workloads: &[Workload],
    selection: &Selection,
    work_us: u64,
    points: &mut Vec<Point>,
) {
    let sockets = selection
        .connections
        .clone()
        .unwrap_or_else(|| match profile {
            Profile::Full => vec![1, 16, 256],
            Profile::Tiny => vec![4],
            _ => vec![1, 64],
        });
    for model in servers {
        if !model.model().is_some_and(|m| m.serves(Transport::Udp)) {
            continue;
        }
        let mut push = |workload, connections, rate| {
            points.push(Point {
                model: model.clone(),
                transport: Transport::Udp,
                workload,
                connections,
                payload: 64,
                rate,
                work_us,
                tls_resume: false,
                round: 0,
            });
        };
        for &workload in workloads {
            match workload {
                Workload::PingPong => sockets.iter().for_each(|&c| push(workload, c, None)),
                Workload::Rate if profile == Profile::Full => {
                    for rate in [10_000.0, 25_000.0, 50_000.0, 100_000.0] {
                        push(workload, 100, Some(rate));
                    }
                }
                Workload::Rate => push(workload, QUICK_RATE.0, Some(QUICK_RATE.1)),
                Workload::Churn | Workload::Stream => {}
            }
        }
    }
}

/// The stream points of `profile` on `transport` for `servers`. Long because it is the
/// profiles' table: one arm per workload, each saying which points that profile measures.
#[allow(clippy::too_many_arguments)]
fn stream_points(
    profile: Profile,
    servers: &[Server],
    workloads: &[Workload],
    connections: &[usize],
    payloads: &[usize],
    works: &[u64],
    selection: &Selection,
    transport: Transport,
    points: &mut Vec<Point>,
) {
    let first_work = works.first().copied().unwrap_or(0);
    for model in servers {
        let mut push = |workload, connections, payload, rate, work_us, tls_resume| {
            if model.is_outside() && work_us > 0 {
                return; // an outside server's handler cannot be told to work
            }
            points.push(Point {
                model: model.clone(),
                transport,
                workload,
                connections,
                payload,
                rate,
                work_us,
                tls_resume,
                round: 0,
            });
        };
        for &workload in workloads {
            match workload {
                Workload::PingPong if profile.quick_points() && selection.connections.is_none() => {
                    // Small messages at the fewest and the most connections; large ones at a
                    // middling count, where they are neither latency- nor connection-bound.
                    let small = payloads.iter().copied().min().unwrap_or(64);
                    let large = payloads.iter().copied().max().unwrap_or(4096);
                    for &c in connections {
                        push(workload, c, small, None, first_work, false);
                    }
                    if large != small {
                        push(workload, 16, large, None, first_work, false);
                    }
                }
                Workload::PingPong => {
                    for &payload in payloads {
                        for &c in connections {
                            push(workload, c, payload, None, first_work, false);
                        }
                    }
                    // The work sweep at the smallest payload, where the work dominates.
                    let payload = payloads.iter().copied().min().unwrap_or(64);
                    for &work in works.iter().skip(1) {
                        for &c in connections {
                            push(workload, c, payload, None, work, false);
                        }
                    }
                }
                Workload::Churn => {
                    let concurrent = if profile == Profile::Full {
                        vec![1, 16]
                    } else {
                        vec![4]
                    };
                    for c in concurrent {
                        push(workload, c, 64, None, first_work, false);
                        // Over TLS, the handshake point twice: full handshakes, then resumed
                        // ones (the client keeps the server's tickets).
                        if transport == Transport::Tls {
                            push(workload, c, 64, None, first_work, true);
                        }
                    }
                }
                Workload::Stream => {
                    let concurrent = if profile == Profile::Full {
                        vec![1, 16]
                    } else {
                        vec![4]
                    };
                    for c in concurrent {
                        push(workload, c, 16 * 1024, None, first_work, false);
                    }
                }
                Workload::Rate if profile.quick_points() => {
                    let (connections, rate) = QUICK_RATE;
                    push(workload, connections, 64, Some(rate), first_work, false);
                }
                Workload::Rate => {
                    for rate in [10_000.0, 25_000.0, 50_000.0, 100_000.0] {
                        push(workload, 100, 64, Some(rate), first_work, false);
                    }
                }
            }
        }
    }
}

/// The order of a run: `rounds` rounds of `points`; in each round, the loads in plan order and
/// the models of each load shuffled from `seed`. The same seed gives the same order.
pub fn schedule(points: &[Point], rounds: usize, seed: u64) -> Vec<Point> {
    let mut loads: Vec<Load> = Vec::new();
    for point in points {
        if !loads.contains(&point.load()) {
            loads.push(point.load());
        }
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    // Reserved up to a bound: the front ends bound points × rounds, a library caller may not.
    let mut order = Vec::with_capacity(points.len().saturating_mul(rounds).min(1 << 16));
    for round in 0..rounds {
        for load in &loads {
            let mut models: Vec<&Point> = points.iter().filter(|p| p.load() == *load).collect();
            models.shuffle(&mut rng);
            order.extend(models.into_iter().map(|p| Point { round, ..p.clone() }));
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_profile_shape() {
        let points = points(Profile::Quick, &Selection::default());
        // 2 ping-pong points (256 × 64 B, 16 × 4 KiB) + churn + one open-loop point, per model.
        assert_eq!(points.len(), Model::ALL.len() * 4);
        let rate: Vec<&Point> = points
            .iter()
            .filter(|p| p.workload == Workload::Rate)
            .collect();
        assert_eq!(rate.len(), Model::ALL.len());
        assert_eq!((rate[0].connections, rate[0].rate), (64, Some(20_000.0)));
        let narrowed = super::points(
            Profile::Quick,
            &Selection {
                models: Some(vec![Model::Mio]),
                workloads: Some(vec![Workload::PingPong]),
                connections: Some(vec![2]),
                payloads: Some(vec![10]),
                rounds: Some(2),
                work_us: None,
                outside: Vec::new(),
                transports: None,
            },
        );
        assert_eq!(narrowed.len(), 1);
        assert_eq!(schedule(&narrowed, 2, 1)[1].round, 1);
        assert!(points.iter().all(|p| p.work_us == 0));
    }

    #[test]
    fn transports_add_their_points_unix_for_every_model_udp_for_those_that_serve_it() {
        let selection = |transports: Vec<Transport>| Selection {
            transports: Some(transports),
            ..Selection::default()
        };
        let tcp = points(Profile::Quick, &selection(vec![Transport::Tcp]));
        assert_eq!(tcp, points(Profile::Quick, &Selection::default()));
        let unix = points(Profile::Quick, &selection(vec![Transport::Unix]));
        assert!(unix.iter().all(|p| p.transport == Transport::Unix));
        // Ping-pong (256 × 64 B, 16 × 4 KiB) and open loop, every model.
        assert_eq!(unix.len(), Model::ALL.len() * 3);
        let udp = points(Profile::Quick, &selection(vec![Transport::Udp]));
        let serving = Model::ALL
            .iter()
            .filter(|m| m.serves(Transport::Udp))
            .count();
        assert!(serving >= 5);
        // Ping-pong from 1 and 64 sockets, and open loop, 64 B.
        assert_eq!(udp.len(), serving * 3);
        assert!(udp.iter().all(|p| {
            p.transport == Transport::Udp
                && p.payload == 64
                && matches!(p.workload, Workload::PingPong | Workload::Rate)
                && p.model.model().is_some_and(|m| m.serves(Transport::Udp))
        }));
        let all = points(
            Profile::Quick,
            &selection(vec![Transport::Tcp, Transport::Unix, Transport::Udp]),
        );
        assert_eq!(all.len(), tcp.len() + unix.len() + udp.len());
        assert!(udp[0].label().ends_with("over udp"), "{}", udp[0].label());
    }

    #[test]
    fn tls_points_are_the_tls_models_with_a_handshake_point_and_part_of_the_full_profile() {
        let selection = Selection {
            transports: Some(vec![Transport::Tls]),
            ..Selection::default()
        };
        let tls = points(Profile::Quick, &selection);
        let serving = Model::ALL
            .iter()
            .filter(|m| m.serves(Transport::Tls))
            .count();
        assert!(serving >= 8);
        // Ping-pong (256 × 64 B, 16 × 4 KiB), open loop and churn (4 loops), once with full
        // handshakes and once with resumed ones.
        assert_eq!(tls.len(), serving * 5);
        assert!(tls.iter().all(|p| {
            p.transport == Transport::Tls
                && p.model.model().is_some_and(|m| m.serves(Transport::Tls))
        }));
        let churn = |resumed: bool| {
            tls.iter()
                .filter(|p| p.workload == Workload::Churn && p.tls_resume == resumed)
                .count()
        };
        assert_eq!((churn(false), churn(true)), (serving, serving));
        assert!(
            tls.iter()
                .all(|p| !p.tls_resume || p.workload == Workload::Churn)
        );
        let tcp = points(Profile::Quick, &Selection::default());
        assert!(
            tcp.iter().all(|p| !p.tls_resume),
            "TCP has no session to resume"
        );
        let full = points(Profile::Full, &Selection::default());
        assert!(full.iter().any(|p| p.transport == Transport::Tls));
        assert!(full.iter().any(|p| p.transport == Transport::Tcp));
        let quick = points(Profile::Quick, &Selection::default());
        assert!(
            quick.iter().all(|p| p.transport == Transport::Tcp),
            "TLS is opt-in in the quick profile"
        );
    }

    #[test]
    fn an_outside_server_with_a_certificate_gets_the_tls_points_and_one_without_the_tcp_points() {
        let plain = Server::parse_outside("plain=srv {addr}").unwrap();
        let secure = Server::parse_outside("secure=srv {addr} {cert} {key}").unwrap();
        let selection = Selection {
            models: Some(vec![Model::Mio]),
            outside: vec![plain.clone(), secure.clone()],
            transports: Some(vec![Transport::Tcp, Transport::Unix, Transport::Tls]),
            ..Selection::default()
        };
        let points = points(Profile::Quick, &selection);
        let of = |server: &Server| -> Vec<&Point> {
            points.iter().filter(|p| p.model == *server).collect()
        };
        let mio = of(&Server::Model(Model::Mio));
        let at = |list: &[&Point], transport| {
            list.iter()
                .filter(|p| p.transport == transport)
                .map(|p| p.load())
                .collect::<Vec<Load>>()
        };
        // The secure one: the models' TLS points (ping-pong ×2, open loop, churn with full and
        // with resumed handshakes), nothing else.
        assert_eq!(at(&of(&secure), Transport::Tls), at(&mio, Transport::Tls));
        assert_eq!(of(&secure).len(), 5);
        // The plain one: the models' TCP points, nothing over TLS or Unix.
        assert_eq!(at(&of(&plain), Transport::Tcp), at(&mio, Transport::Tcp));
        assert!(of(&plain).iter().all(|p| p.transport == Transport::Tcp));
        assert!(!at(&mio, Transport::Unix).is_empty() && !at(&mio, Transport::Tls).is_empty());
        // Over TCP alone, the secure one has no point at all.
        let tcp = super::points(
            Profile::Quick,
            &Selection {
                transports: Some(vec![Transport::Tcp]),
                ..selection
            },
        );
        assert!(!tcp.iter().any(|p| p.model == secure));
        assert!(tcp.iter().any(|p| p.model == plain));
    }

    #[test]
    fn a_schedule_shuffles_models_within_rounds_and_is_reproducible_from_its_seed() {
        let points = points(Profile::Quick, &Selection::default());
        let order = schedule(&points, 3, 42);
        assert_eq!(order.len(), points.len() * 3);
        assert_eq!(order, schedule(&points, 3, 42));
        assert_ne!(order, schedule(&points, 3, 43));
        // Each round measures every point once, a load's models back to back.
        for round in 0..3 {
            let in_round: Vec<&Point> = order.iter().filter(|p| p.round == round).collect();
            assert_eq!(in_round.len(), points.len());
            for point in &points {
                assert_eq!(
                    in_round.iter().filter(|p| p.key() == point.key()).count(),
                    1
                );
            }
        }
        // The models' order differs between rounds (12 models: equal by chance 1 in 12!).
        let models = |round: usize| -> Vec<Server> {
            order
                .iter()
                .filter(|p| p.round == round && p.load() == points[0].load())
                .map(|p| p.model.clone())
                .collect()
        };
        assert_ne!(models(0), models(1));
    }

    #[test]
    fn the_work_sweep_covers_ping_pong_at_the_smallest_payload() {
        let selection = Selection {
            models: Some(vec![Model::Tokio, Model::TokioRayon]),
            workloads: Some(vec![Workload::PingPong, Workload::Churn]),
            connections: Some(vec![1, 100]),
            payloads: Some(vec![64, 4096]),
            rounds: Some(1),
            work_us: None,
            outside: vec![Server::parse_outside("plan-test=python3 x.py {addr}").unwrap()],
            // TCP's points alone (the full profile adds TLS's, the same sweep again).
            transports: Some(vec![Transport::Tcp]),
        };
        let points = points(Profile::Full, &selection);
        let outside: Vec<&Point> = points.iter().filter(|p| p.model.is_outside()).collect();
        assert!(
            !outside.is_empty(),
            "an outside server gets the models' points"
        );
        assert!(
            outside.iter().all(|p| p.work_us == 0),
            "but not the work sweep: its handler cannot be told to work"
        );
        let points: Vec<Point> = points
            .into_iter()
            .filter(|p| !p.model.is_outside())
            .collect();
        for work in FULL_WORK_US {
            let swept: Vec<&Point> = points.iter().filter(|p| p.work_us == work).collect();
            // Work 0: 2 payloads × 2 connection counts + 2 churn points, per model; the others
            // 2 connection counts at 64 B.
            let expected = if work == 0 { 2 * (4 + 2) } else { 2 * 2 };
            assert_eq!(swept.len(), expected, "work {work}");
            if work > 0 {
                assert!(
                    swept
                        .iter()
                        .all(|p| p.payload == 64 && p.workload == Workload::PingPong)
                );
                assert!(swept[0].label().contains(&format!("work={work}µs")));
            }
        }
    }

    #[test]
    fn the_ablation_measures_every_step_at_six_points_beside_its_models() {
        let quick_loads: Vec<Load> = points(Profile::Quick, &Selection::default())
            .iter()
            .filter(|p| p.model == Server::Model(Model::Mio))
            .map(Point::load)
            .collect();
        let ablation = points(Profile::Ablation, &Selection::default());
        for server in Server::uring_steps()
            .into_iter()
            .chain([Server::Model(Model::Mio), Server::Model(Model::Tokio)])
        {
            let loads: Vec<Load> = ablation
                .iter()
                .filter(|p| p.model == server)
                .map(Point::load)
                .collect();
            assert_eq!(loads.len(), 6, "{server}");
            assert!(quick_loads.iter().all(|l| loads.contains(l)), "{server}");
        }
        assert!(
            !ablation
                .iter()
                .any(|p| p.model == Server::Model(Model::Blocking)),
            "only the models the question is about"
        );
        let variant = ablation
            .iter()
            .find(|p| p.model.name() == "io-uring.plain")
            .unwrap();
        assert_eq!(variant.model.model(), Some(Model::IoUring));
        assert_eq!(variant.model.server_args(), ["--uring-features", "none"]);
        assert_eq!(Server::known("io-uring.plain"), Some(variant.model.clone()));
        assert!(Server::outside("io-uring.plain", "x {addr}").is_err());
    }
}
