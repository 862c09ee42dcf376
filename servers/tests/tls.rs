//! `tls:` on every model, generated from the registry: a model that serves TLS echoes every byte
//! through a rustls client that trusts only the server's own self-signed certificate, sends
//! `close_notify` after the client's, answers a garbage ClientHello with an alert or a close and
//! goes on serving, and closes a handshake that stalls once its timeout has passed while others
//! are served; the binary prints the certificate's file and fingerprint and removes the file at
//! exit. A model that does not serve TLS refuses `tls:` (an `Unsupported` error through the trait,
//! exit 2 through the binary).
//!
//! Bounds: every socket has read and write timeouts, every wait a deadline; all traffic goes to
//! 127.0.0.1.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_servers::{Endpoint, Model, ServerConfig, TlsServer, TlsVersions, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);

fn tls_config(versions: TlsVersions) -> ServerConfig {
    let tls = TlsServer::self_signed(versions)
        .unwrap()
        .with_handshake_timeout(HANDSHAKE_TIMEOUT);
    ServerConfig {
        tls: Some(tls),
        ..ServerConfig::at(Endpoint::Tls("127.0.0.1:0".parse().unwrap()))
    }
}

/// A client configuration that trusts only the certificates in `ca` and offers `versions`.
fn client_config(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tcp(endpoint: &Endpoint) -> TcpStream {
    let addr = endpoint
        .socket_addr()
        .expect("a tls: endpoint has an address");
    let socket = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    socket
}

fn connect(endpoint: &Endpoint, config: Arc<rustls::ClientConfig>) -> TlsClient {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    rustls::StreamOwned::new(conn, tcp(endpoint))
}

/// Sends `sizes` messages of patterned bytes and checks each echo, byte for byte.
fn echoes(client: &mut TlsClient, sizes: &[usize]) {
    for (i, &size) in sizes.iter().enumerate() {
        let message: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
        client.write_all(&message).unwrap();
        client.flush().unwrap();
        let mut echoed = vec![0; size];
        client.read_exact(&mut echoed).unwrap();
        assert!(
            echoed == message,
            "message {i} ({size} bytes) came back changed"
        );
    }
}

/// Closes the client's side with `close_notify` and checks that the server answers with its own:
/// rustls reads `Ok(0)` only after a `close_notify`, and an error after a bare TCP close.
fn closes_cleanly(mut client: TlsClient) {
    client.conn.send_close_notify();
    client.flush().unwrap();
    let mut rest = Vec::new();
    match client.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{} stray bytes after the echo", rest.len()),
        Err(err) => panic!("no close_notify from the server: {err}"),
    }
}

fn serves_tls(model: Model) {
    let config = tls_config(TlsVersions::TLS13);
    let ca = config.tls.as_ref().unwrap().ca_file().unwrap().to_owned();
    let server = model.server().start(&config).unwrap();
    let endpoint = server.endpoint().clone();
    assert_eq!(endpoint.transport(), Transport::Tls, "{endpoint}");
    let trusted = client_config(&ca, &[&rustls::version::TLS13]);

    let mut client = connect(&endpoint, Arc::clone(&trusted));
    // 20,000 bytes span two TLS records.
    echoes(&mut client, &[1, 64, 4096, 20_000, 3]);
    assert_eq!(
        client.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    closes_cleanly(client);

    // Garbage where a ClientHello belongs: an alert or a close, never a hang or a crash.
    let mut garbage = tcp(&endpoint);
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = [0u8; 64];
    match garbage.read(&mut reply) {
        Ok(0) => {}
        Ok(_) => assert_eq!(reply[0], 0x15, "not a TLS alert record: {reply:?}"),
        Err(err) => assert_ne!(err.kind(), ErrorKind::WouldBlock, "no answer to garbage"),
    }

    // A handshake that stalls after a record header: closed once the timeout has passed; a
    // model that serves clients at once meanwhile serves another.
    let mut stalled = tcp(&endpoint);
    stalled.write_all(&[0x16, 0x03, 0x01, 0x00, 0xf0]).unwrap();
    let stalled_at = Instant::now();
    if model.serves_concurrently() {
        let mut other = connect(&endpoint, Arc::clone(&trusted));
        echoes(&mut other, &[100]);
        closes_cleanly(other);
    }
    // A read a signal interrupts (EINTR) is read again, a bounded number of times: only the
    // server's close ends the wait, and the socket's read timeout bounds each read.
    let mut closed = stalled.read(&mut reply);
    for _ in 0..1000 {
        match &closed {
            Err(err) if err.kind() == ErrorKind::Interrupted => closed = stalled.read(&mut reply),
            _ => break,
        }
    }
    let waited = stalled_at.elapsed();
    assert!(
        matches!(closed, Ok(0)) || matches!(&closed, Err(e) if e.kind() != ErrorKind::WouldBlock),
        "a stalled handshake was not closed: {closed:?} after {waited:?}"
    );
    assert!(
        waited >= HANDSHAKE_TIMEOUT - Duration::from_millis(50) && waited < Duration::from_secs(5),
        "closed after {waited:?}, the timeout is {HANDSHAKE_TIMEOUT:?}"
    );

    // Still serving after all of that.
    let mut client = connect(&endpoint, trusted);
    echoes(&mut client, &[10]);
    closes_cleanly(client);
    server.shutdown().unwrap();
}

/// `--tls-versions 1.2`: a TLS 1.2 client is served, a client offering only TLS 1.3 is refused.
fn serves_tls12_when_asked(model: Model) {
    let config = tls_config(TlsVersions::TLS12);
    let ca = config.tls.as_ref().unwrap().ca_file().unwrap().to_owned();
    let server = model.server().start(&config).unwrap();
    let endpoint = server.endpoint().clone();
    let mut client = connect(&endpoint, client_config(&ca, &[&rustls::version::TLS12]));
    echoes(&mut client, &[64, 20_000]);
    assert_eq!(
        client.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    closes_cleanly(client);
    let mut refused = connect(&endpoint, client_config(&ca, &[&rustls::version::TLS13]));
    assert!(
        refused
            .write_all(b"x")
            .and_then(|()| refused.flush())
            .and_then(|()| {
                let mut byte = [0];
                refused.read_exact(&mut byte)
            })
            .is_err()
    );
    drop(refused);
    server.shutdown().unwrap();
}

/// The binary on `tls:`: `listening on tls:ADDR`, `driver: ...`, then `tls: sha256=HEX ca=PATH`;
/// a client trusting that file is served; SIGTERM ends it with exit 0 and the file is gone.
fn binary_prints_what_to_trust(model: Model) {
    binary_serves_what_it_prints(model, &[]);
}

/// Kills the child it holds if a test fails before it reaped it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts the binary of `model` on tls: with `extra` arguments, checks its three lines, echoes
/// through a client that trusts only the certificate it printed, stops it with SIGTERM (exit 0,
/// the certificate's file removed), and returns the certificate it served.
fn binary_serves_what_it_prints(model: Model, extra: &[&str]) -> CertificateDer<'static> {
    let child = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .args([
            "--model",
            model.name(),
            "--threads",
            "2",
            "--listen",
            "tls:127.0.0.1:0",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().take(3) {
            let _ = lines_tx.send(line.unwrap_or_default());
        }
    });
    let next = || {
        lines
            .recv_timeout(IO_TIMEOUT)
            .expect("a line from echo-server")
    };
    let listening = next();
    let endpoint: Endpoint = listening
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{listening}"))
        .parse()
        .unwrap();
    assert_eq!(endpoint.transport(), Transport::Tls);
    assert!(next().starts_with("driver: "));
    let tls = next();
    let fields: Vec<&str> = tls
        .strip_prefix("tls: ")
        .expect("a tls: line")
        .split(' ')
        .collect();
    let fingerprint = fields[0].strip_prefix("sha256=").unwrap();
    assert_eq!(fingerprint.len(), 64, "{tls}");
    let ca = PathBuf::from(fields[1].strip_prefix("ca=").unwrap());
    let mut client = connect(&endpoint, client_config(&ca, &[&rustls::version::TLS13]));
    echoes(&mut client, &[5]);
    let served = client.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    closes_cleanly(client);
    // SAFETY: kill with a pid this test spawned and has not reaped.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + IO_TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "echo-server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert!(!ca.exists(), "{} left behind", ca.display());
    served
}

/// `--tls-cert-kind rsa2048` serves an RSA certificate (its key carries the rsaEncryption OID,
/// 1.2.840.113549.1.1.1); the default is ECDSA (id-ecPublicKey, 1.2.840.10045.2.1).
#[test]
fn the_binary_serves_an_rsa_certificate_when_asked() {
    const RSA_ENCRYPTION: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let holds = |cert: &CertificateDer<'_>, oid: &[u8]| cert.windows(oid.len()).any(|w| w == oid);
    let rsa = binary_serves_what_it_prints(Model::Tokio, &["--tls-cert-kind", "rsa2048"]);
    assert!(holds(&rsa, RSA_ENCRYPTION) && !holds(&rsa, EC_PUBLIC_KEY));
    let ecdsa = binary_serves_what_it_prints(Model::Tokio, &[]);
    assert!(holds(&ecdsa, EC_PUBLIC_KEY) && !holds(&ecdsa, RSA_ENCRYPTION));
}

/// A model without a TLS path refuses `tls:`: `Unsupported` through the trait, exit 2 and one
/// line naming the models that serve it through the binary.
fn refuses_tls(model: Model) {
    if model.available().is_ok() {
        let err = model
            .server()
            .start(&tls_config(TlsVersions::TLS13))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .args(["--model", model.name(), "--listen", "tls:127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for serving in Model::ALL.iter().filter(|m| m.serves(Transport::Tls)) {
        assert!(stderr.contains(serving.name()), "{stderr}");
    }
}

macro_rules! tls_tests {
    ($($module:ident => $model:expr),* $(,)?) => {
        $(mod $module {
            use super::*;

            fn run(check: fn(Model)) {
                let model: Model = $model;
                if model.serves(Transport::Tls) {
                    check(model);
                } else {
                    refuses_tls(model);
                }
            }

            #[test]
            fn serves_tls() {
                run(super::serves_tls);
            }

            #[test]
            fn serves_tls12_when_asked() {
                run(super::serves_tls12_when_asked);
            }

            #[test]
            fn binary_prints_what_to_trust() {
                run(super::binary_prints_what_to_trust);
            }
        })*
    };
}

echo_servers::for_each_model!(tls_tests);

/// The models with an idiomatic rustls path serve `tls:`; the others are the ones whose
/// refusal the README explains.
#[test]
fn the_tls_models_are_the_documented_ones() {
    let serving: Vec<&str> = Model::ALL
        .iter()
        .filter(|m| m.serves(Transport::Tls))
        .map(|m| m.name())
        .collect();
    assert_eq!(
        serving,
        [
            "blocking",
            "thread-per-connection",
            "thread-pool",
            "mio",
            "mio-per-core",
            "tokio",
            "tokio-current-thread",
            "tokio-rayon",
            "async-std",
            "smol",
            "may",
            "monoio",
            "compio",
            "glommio"
        ]
    );
}

/// `--cert` without `--key`, a key file that is not PEM, `--cert` for a plain address: exit 2,
/// one line each.
#[test]
fn bad_certificate_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "junk").unwrap();
    let junk = junk.to_str().unwrap();
    for args in [
        vec!["--listen", "tls:127.0.0.1:0", "--cert", junk],
        vec!["--listen", "tls:127.0.0.1:0", "--cert", junk, "--key", junk],
        vec!["--listen", "127.0.0.1:0", "--cert", junk, "--key", junk],
        vec!["--listen", "tls:127.0.0.1:0", "--tls-versions", "1.1"],
        vec!["--listen", "127.0.0.1:0", "--tls-cert-kind", "rsa2048"],
        vec!["--listen", "tls:127.0.0.1:0", "--tls-cert-kind", "dsa"],
        vec![
            "--listen",
            "tls:127.0.0.1:0",
            "--cert",
            junk,
            "--key",
            junk,
            "--tls-cert-kind",
            "rsa2048",
        ],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_echo-server"))
            .args(["--model", "tokio"])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
}
