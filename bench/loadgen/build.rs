//! Records the git revision and the rustc version in the binary, for every report's `meta`.
use std::process::Command;

fn main() {
    let output = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let mut revision = output("git", &["rev-parse", "--short=12", "HEAD"]);
    if revision != "unknown"
        && !output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty()
    {
        revision.push_str("-dirty");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    println!("cargo:rustc-env=ECHO_BENCH_GIT_REVISION={revision}");
    println!(
        "cargo:rustc-env=ECHO_BENCH_RUSTC={}",
        output(&rustc, &["--version"])
    );
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/index");
}
