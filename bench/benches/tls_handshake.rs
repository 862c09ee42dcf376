//! `tls-handshake/{full,resumed}` and `tls-handshake-rsa2048/{full,resumed}`: the server's side of one TLS 1.3 handshake, in memory, with no
//! socket and no concurrency model: the ceiling a server model's handshakes per core are judged
//! against (`echo-bench run --workload churn` over `tls:`, whose report gives the server's CPU
//! per handshake). The server configuration is the one every model serves with
//! (`TlsServer::self_signed`: ECDSA P-256, X25519, stateless tickets; the `-rsa2048` group with
//! `--tls-cert-kind rsa2048`'s RSA-2048 certificate instead); the client trusts its
//! certificate and, for `resumed`, keeps the tickets. Only the time spent in the server's calls
//! is counted (`iter_custom`), as rustls's own benchmarks count one side; the client's work is
//! done but not timed. Each iteration also sends 64 bytes and reads them back, so the server
//! has completed the handshake from its side (TLS 1.3's Finished and its tickets).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main};
use echo_servers::{CertKind, TlsServer, TlsVersions};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, ServerConnection};

/// The client configuration: trusts `tls`'s certificate, keeps tickets if `resume`.
fn client_config(tls: &TlsServer, resume: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = tls.ca_file().expect("a self-signed certificate has a file");
    for cert in CertificateDer::pem_file_iter(ca).expect("the CA file") {
        roots.add(cert.expect("a certificate")).expect("added");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = if resume {
        Resumption::default()
    } else {
        Resumption::disabled()
    };
    Arc::new(config)
}

/// One handshake and one 64-byte exchange; returns the time spent in the server's calls, and
/// whether the handshake resumed a session.
fn handshake(
    server_config: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
) -> (Duration, bool) {
    let name = ServerName::try_from("localhost").expect("a name");
    let mut client = ClientConnection::new(Arc::clone(client), name).expect("client");
    let mut in_server = Duration::ZERO;
    let began = Instant::now();
    let mut server = ServerConnection::new(Arc::clone(server_config)).expect("server");
    in_server += began.elapsed();
    let mut wire = Vec::with_capacity(8192);
    let mut echoed = [0u8; 64];
    client.writer().write_all(&[7; 64]).expect("queued");
    for _ in 0..16 {
        wire.clear();
        while client.wants_write() {
            client.write_tls(&mut wire).expect("client records");
        }
        let began = Instant::now();
        let mut incoming = &wire[..];
        while !incoming.is_empty() {
            server.read_tls(&mut incoming).expect("server reads");
            server.process_new_packets().expect("server handshake");
        }
        let mut plain = [0u8; 64];
        let mut got = 0;
        while let Ok(n) = server.reader().read(&mut plain[got..]) {
            if n == 0 {
                break;
            }
            got += n;
        }
        if got > 0 {
            server
                .writer()
                .write_all(&plain[..got])
                .expect("echo queued");
        }
        wire.clear();
        while server.wants_write() {
            server.write_tls(&mut wire).expect("server records");
        }
        in_server += began.elapsed();
        let mut incoming = &wire[..];
        while !incoming.is_empty() {
            client.read_tls(&mut incoming).expect("client reads");
            client.process_new_packets().expect("client handshake");
        }
        if client.reader().read_exact(&mut echoed).is_ok() {
            assert_eq!(echoed, [7; 64], "the echo came back changed");
            let resumed = client.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            return (in_server, resumed);
        }
    }
    panic!("no echo after 16 flights");
}

fn handshakes(c: &mut criterion::Criterion) {
    for (group, kind) in [
        ("tls-handshake", CertKind::EcdsaP256),
        ("tls-handshake-rsa2048", CertKind::Rsa2048),
    ] {
        handshakes_with(c, group, kind);
    }
}

fn handshakes_with(c: &mut criterion::Criterion, group: &str, kind: CertKind) {
    let tls = TlsServer::self_signed_with(kind, TlsVersions::TLS13).expect("a certificate");
    let server_config = tls.config();
    let mut group = c.benchmark_group(group);
    for (name, resume) in [("full", false), ("resumed", true)] {
        let client = client_config(&tls, resume);
        // A first handshake leaves the tickets a resumed one uses.
        handshake(&server_config, &client);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (time, resumed) = handshake(&server_config, &client);
                        assert_eq!(resumed, resume, "{name}: resumed {resumed}");
                        time
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = handshakes
}
criterion_main!(benches);
