//! glommio's Unix listener stays non-blocking while its executors accept. glommio's accept tries
//! the system call first, setting O_NONBLOCK for it and restoring the flags it read; every
//! executor's descriptor of a Unix listener shares those flags, so a listener that started
//! blocking could be left blocking just as another executor called accept, which then blocked
//! that executor's thread, and every connection on it, until the next client came (seen in CI
//! as one of 64 clients never answered). The listener must therefore be non-blocking before the
//! executors adopt it; this reads the flags of every descriptor of the listening socket from
//! `/proc/self/fdinfo` while clients connect.
//!
//! Bounds: every read has a timeout, connections are counted; all traffic goes to a socket file
//! in a private temporary folder.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use echo_servers::{Endpoint, Model, ServerConfig};

/// The inode of the listening Unix socket bound at `path`, from `/proc/net/unix`.
fn listener_inode(path: &std::path::Path) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/unix").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Num RefCount Protocol Flags Type St Inode Path; flags 00010000 is __SO_ACCEPTCON.
        let listening = fields.get(3).is_some_and(|f| f.ends_with("10000"));
        (listening && fields.get(7) == Some(&path.to_str()?))
            .then(|| fields.get(6)?.parse().ok())
            .flatten()
    })
}

/// The file status flags of every descriptor of this process that refers to socket `inode`.
fn flags_of_socket(inode: u64) -> Vec<u32> {
    let target = format!("socket:[{inode}]");
    let mut flags = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if std::fs::read_link(entry.path()).is_ok_and(|l| l.to_str() == Some(target.as_str())) {
            let info = std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                entry.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            if let Some(octal) = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .map(str::trim)
            {
                flags.push(u32::from_str_radix(octal, 8).unwrap());
            }
        }
    }
    flags
}

#[test]
fn the_unix_listener_stays_non_blocking_while_executors_accept() {
    if Model::runnable([Model::Glommio]).is_empty() {
        eprintln!("skipped: glommio cannot run here (io_uring refused)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let config = ServerConfig {
        threads: Some(2),
        ..ServerConfig::at(Endpoint::Unix(path.clone()))
    };
    let server = Model::Glommio.server().start(&config).unwrap();
    let inode = listener_inode(&path).expect("the listener is in /proc/net/unix");
    for round in 0..50 {
        let mut client = UnixStream::connect(&path).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client.write_all(b"ping").unwrap();
        let mut echoed = [0; 4];
        client.read_exact(&mut echoed).unwrap();
        assert_eq!(&echoed, b"ping");
        let flags = flags_of_socket(inode);
        assert!(flags.len() >= 2, "round {round}: descriptors {flags:?}");
        for f in &flags {
            assert!(
                f & libc::O_NONBLOCK as u32 != 0,
                "round {round}: the listener is blocking (flags {f:o})"
            );
        }
    }
    server.shutdown().unwrap();
}
