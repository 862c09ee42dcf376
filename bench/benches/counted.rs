//! `counted/<workload>/<model>/1`: each model's user-space instructions per message (per
//! connection for churn), counted under valgrind as `echo-bench ab --metric instructions` counts
//! them (`echo_bench::ab::counted`): the `echo-bench` binary's server under callgrind (no cache
//! or branch simulation), a fixed number of messages from this process, the counts read while
//! the server runs (an empty window's taken from a window of N messages), so start-up and
//! shutdown are left out. A count does not depend on the machine's load, so these figures need
//! no quiet machine; they miss the kernel, waiting and contention, which only the timed benches
//! see.
//!
//! Not a criterion group: criterion times iterations, and a count comes from a whole server
//! process. `cargo bench --bench counted [FILTER]` counts ping-pong and churn of every model
//! this machine runs (FILTER: a substring of the name); in test mode (`cargo test --benches`)
//! it counts one model's ping-pong at 400 messages, to keep the path working. Without
//! valgrind it says so in one line and succeeds.

use std::path::PathBuf;

use echo_bench::ab::counted;
use echo_bench::ab::{BenchmarkSpec, Build};
use echo_servers::Model;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    let measuring = args.iter().any(|a| a == "--bench");
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let Some(valgrind) = counted::find_valgrind() else {
        println!("counted: skipped: valgrind not found (apt-get install valgrind)");
        return;
    };
    let build = Build {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_echo-bench")),
        server_args: Vec::new(),
        meta: None,
    };
    let (models, workloads, messages): (Vec<Model>, &[&str], u64) = if measuring {
        (
            Model::runnable(Model::ALL.iter().copied()),
            &["ping-pong", "churn"],
            counted::DEFAULT_MESSAGES,
        )
    } else {
        (vec![Model::Mio], &["ping-pong"], 400)
    };
    let mut failed = 0;
    for workload in workloads {
        for model in &models {
            let name = format!("{}{workload}/{model}/1", counted::PREFIX);
            if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                continue;
            }
            let spec = BenchmarkSpec::parse(&name, &Default::default())
                .expect("a counted benchmark's name");
            match counted::per_unit(&valgrind, &build, &spec, messages) {
                Ok(per_unit) => println!("{name:<45} {per_unit:>12.1} {}", spec.primary().unit()),
                Err(why) => {
                    println!("{name:<45} failed: {why}");
                    failed += 1;
                }
            }
        }
    }
    if failed > 0 {
        eprintln!("counted: {failed} benchmark(s) failed");
        std::process::exit(1);
    }
}
