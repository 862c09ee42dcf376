//! TLS for the stream models (`tls:HOST:PORT`): the server's identity ([`TlsServer`]: a
//! certificate and key from PEM files, or a self-signed ECDSA P-256 certificate made at start),
//! the one rustls configuration every model shares, and the blocking handshake of the models
//! written over `Read + Write`.
//!
//! A model that serves TLS binds its listener through `net::split_tls`, which hands the transport seam
//! ([`crate::net`]) a plain TCP address: `net` itself refuses `tls:`, so a model that has no TLS
//! path refuses it without a line of its own.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_cli::TlsVersions;
use rustls::ServerConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client may take over its handshake by default before the server closes the
/// connection: long enough for a loaded machine, short enough that a client stalling mid-handshake
/// (slowloris at the handshake) cannot hold a connection for long.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The key a self-signed certificate is made with (`--tls-cert-kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CertKind {
    /// ECDSA over P-256: what a modern deployment serves; signing costs tens of microseconds.
    #[default]
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    /// RSA-2048 (signed with PKCS#1 v1.5 or PSS and SHA-256): still the most common web
    /// certificate; signing costs about a millisecond, so a full handshake is dearer and
    /// resumption, which skips the signature, saves more.
    #[value(name = "rsa2048")]
    Rsa2048,
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertKind::EcdsaP256 => "ECDSA P-256",
            CertKind::Rsa2048 => "RSA-2048",
        })
    }
}

/// A server's TLS identity and settings: what every connection of a `tls:` listener is wrapped
/// in. Cloning shares the configuration (and the self-signed certificate's file).
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, in hex: how a client or a person checks what it trusts.
    fingerprint: String,
    /// The self-signed certificate as a PEM file a client can trust (`--ca`), in a folder only
    /// this user can read, removed with the last clone.
    ca_file: Option<Arc<CaFile>>,
    versions: TlsVersions,
    handshake_timeout: Duration,
}

/// The PEM file of a self-signed certificate, in a private temporary folder of its own.
struct CaFile {
    path: PathBuf,
    /// Removed (with the file) when dropped.
    _folder: tempfile::TempDir,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer")
            .field("fingerprint", &self.fingerprint)
            .field("ca_file", &self.ca_file())
            .field("versions", &self.versions)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsServer {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
            && self.versions == other.versions
            && self.handshake_timeout == other.handshake_timeout
    }
}

impl Eq for TlsServer {}

impl TlsServer {
    /// A self-signed ECDSA P-256 certificate for `localhost`, `127.0.0.1` and `::1`, made now
    /// (rcgen), its PEM written to a new private folder under the system's temporary folder.
    pub fn self_signed(versions: TlsVersions) -> io::Result<Self> {
        Self::self_signed_with(CertKind::EcdsaP256, versions)
    }

    /// [`TlsServer::self_signed`] with a key of `kind` (an RSA-2048 key takes the RSA crate a
    /// fraction of a second to find).
    pub fn self_signed_with(kind: CertKind, versions: TlsVersions) -> io::Result<Self> {
        let certified = certified(kind)?;
        let folder = private_folder("echo-server-tls-")?;
        let path = folder.path().join("ca.pem");
        write_new(&path, certified.cert.pem().as_bytes())?;
        let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .map_err(io::Error::other)?;
        let mut server = Self::new(vec![certified.cert.der().clone()], key, versions)?;
        server.ca_file = Some(Arc::new(CaFile {
            path,
            _folder: folder,
        }));
        Ok(server)
    }

    /// The certificate chain in `cert` (PEM, leaf first) and the private key in `key` (PEM:
    /// PKCS#8, PKCS#1 or SEC1), as a deployment would give them.
    pub fn from_pem_files(cert: &Path, key: &Path, versions: TlsVersions) -> io::Result<Self> {
        let bad = |path: &Path, what: &str, err: &dyn fmt::Display| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {what}: {err}", path.display()),
            )
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(cert, "not a PEM certificate file", &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, "not a PEM certificate file", &e))?;
        if chain.is_empty() {
            return Err(bad(cert, "no certificate", &"the file holds none"));
        }
        let key_der =
            PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, "no private key", &e))?;
        Self::new(chain, key_der, versions)
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        versions: TlsVersions,
    ) -> io::Result<Self> {
        let fingerprint = hex(ring::digest::digest(&ring::digest::SHA256, &chain[0]).as_ref());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut protocols = Vec::new();
        if versions.tls13() {
            protocols.push(&rustls::version::TLS13);
        }
        if versions.tls12() {
            protocols.push(&rustls::version::TLS12);
        }
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&protocols)
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Stateless resumption (RFC 5077 tickets, TLS 1.3 PSKs): a resumed handshake then costs
        // no server-side session cache, as servers that resume at scale run it.
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(io::Error::other)?;
        Ok(Self {
            config: Arc::new(config),
            fingerprint,
            ca_file: None,
            versions,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// The same server with another handshake timeout (at least 1 ms).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The rustls configuration every connection is accepted with.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config)
    }

    /// The leaf certificate's SHA-256, in lower-case hex.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The self-signed certificate's PEM file, for a client to trust (`None` for a certificate
    /// given as files: the client is given its CA the same way).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref().map(|f| f.path.as_path())
    }

    /// How long a handshake may take before the connection is closed.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The protocol versions accepted.
    pub fn versions(&self) -> TlsVersions {
        self.versions
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1` with a new key of `kind`.
fn certified(kind: CertKind) -> io::Result<rcgen::CertifiedKey<rcgen::KeyPair>> {
    let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let signing_key = match kind {
        CertKind::EcdsaP256 => rcgen::KeyPair::generate(),
        CertKind::Rsa2048 => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .map_err(io::Error::other)?;
            let der = key.to_pkcs8_der().map_err(io::Error::other)?;
            let der = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
        }
    }
    .map_err(io::Error::other)?;
    let cert = rcgen::CertificateParams::new(names)
        .and_then(|params| params.self_signed(&signing_key))
        .map_err(io::Error::other)?;
    Ok(rcgen::CertifiedKey { cert, signing_key })
}

/// A new folder under the system's temporary folder that only this user may enter, whatever
/// the umask (it holds what a client is to trust, or a private key), removed when dropped.
fn private_folder(prefix: &str) -> io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let folder = tempfile::Builder::new().prefix(prefix).tempdir()?;
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(folder)
}

/// Writes `bytes` to `path` in a folder of ours through a temporary file (mode 0600) and a
/// rename, so no reader ever sees half a file.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(folder)?;
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A self-signed certificate and its private key as PEM files, for a server that is given its
/// identity as files (an outside server's `{cert}` and `{key}` in the suite): both in a new
/// private folder (0700) that goes, with them, when this is dropped.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    /// Removed (with both files) when dropped.
    _folder: tempfile::TempDir,
}

impl CertFiles {
    /// A new ECDSA P-256 certificate for `localhost`, `127.0.0.1` and `::1` (the names
    /// [`TlsServer::self_signed`] gives), written as `cert.pem` and `key.pem` (PKCS#8).
    pub fn self_signed() -> io::Result<Self> {
        let certified = certified(CertKind::EcdsaP256)?;
        let folder = private_folder("echo-bench-tls-")?;
        let (cert, key) = (
            folder.path().join("cert.pem"),
            folder.path().join("key.pem"),
        );
        write_new(&cert, certified.cert.pem().as_bytes())?;
        write_new(&key, certified.signing_key.serialize_pem().as_bytes())?;
        Ok(Self {
            cert,
            key,
            _folder: folder,
        })
    }

    /// The certificate's PEM file: what a server serves, and a client may trust (`--ca`).
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// The private key's PEM file (PKCS#8).
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The private folder both are in, which goes when this is dropped.
    pub fn folder(&self) -> &Path {
        self._folder.path()
    }
}

/// Runs the server side of a handshake over a blocking socket to its end, within the server's
/// handshake timeout (a deadline for the whole handshake, not for each read, so a client that
/// trickles a byte at a time is closed as one that sends nothing). `set_read_timeout` sets the
/// socket's read timeout (`None`: none), which is restored to none after.
///
/// A bad ClientHello gets rustls's alert before the error is returned.
pub(crate) fn handshake<S>(
    conn: &mut ServerConnection,
    mut socket: S,
    timeout: Duration,
    set_read_timeout: impl Fn(&S, Option<Duration>) -> io::Result<()>,
) -> io::Result<()>
where
    S: Read + Write,
{
    let deadline = Instant::now() + timeout;
    while conn.is_handshaking() {
        while conn.wants_write() {
            conn.write_tls(&mut socket)?;
        }
        if !conn.is_handshaking() {
            break;
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?;
        set_read_timeout(&socket, Some(left))?;
        if conn.read_tls(&mut socket)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Err(err) = conn.process_new_packets() {
            // The alert rustls queued says why to the peer; the connection ends either way.
            let _ = conn.write_tls(&mut socket);
            return Err(io::Error::new(io::ErrorKind::InvalidData, err));
        }
    }
    // The server's last flight (session tickets) may still be queued.
    while conn.wants_write() {
        conn.write_tls(&mut socket)?;
    }
    set_read_timeout(&socket, None)
}

/// Echoes a blocking connection over TLS: the handshake, then [`crate::blocking_io::echo`] over
/// rustls's `StreamOwned`, then `close_notify` once the client has closed its side cleanly.
pub(crate) fn echo_blocking<S>(
    socket: S,
    tls: &TlsServer,
    set_read_timeout: impl Fn(&S, Option<Duration>) -> io::Result<()>,
    echo: impl FnOnce(&mut rustls::StreamOwned<ServerConnection, S>) -> io::Result<()>,
) -> io::Result<()>
where
    S: Read + Write,
{
    let mut conn = ServerConnection::new(tls.config()).map_err(io::Error::other)?;
    let mut socket = socket;
    handshake(
        &mut conn,
        &mut socket,
        tls.handshake_timeout,
        |s: &&mut S, t| set_read_timeout(s, t),
    )?;
    let mut stream = rustls::StreamOwned::new(conn, socket);
    echo(&mut stream)?;
    stream.conn.send_close_notify();
    stream.flush()
}

/// A client configuration that trusts only `tls`'s self-signed certificate (TLS 1.2 and 1.3),
/// for the unit tests that shake hands with a model.
#[cfg(test)]
pub(crate) fn client_trusting(tls: &TlsServer) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = tls.ca_file().expect("a self-signed certificate has a file");
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_server_writes_its_certificate_privately_and_removes_it() {
        use std::os::unix::fs::PermissionsExt;
        let server = TlsServer::self_signed(TlsVersions::TLS13).unwrap();
        let path = server.ca_file().unwrap().to_owned();
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        let folder = path.parent().unwrap();
        let mode = std::fs::metadata(folder).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the folder is open to others: {mode:o}");
        assert_eq!(server.fingerprint().len(), 64);
        let clone = server.clone();
        drop(server);
        assert!(path.exists(), "a clone still uses the file");
        drop(clone);
        assert!(!path.exists() && !folder.exists());
    }

    /// An RSA-2048 self-signed server completes a handshake with a client that trusts only its
    /// certificate, and signs with RSA.
    #[test]
    fn an_rsa_certificate_serves_a_handshake_signed_with_rsa() {
        let server = TlsServer::self_signed_with(CertKind::Rsa2048, TlsVersions::TLS13).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(client_trusting(&server), name).unwrap();
        let mut conn = ServerConnection::new(server.config()).unwrap();
        // In memory: each side's flight goes straight to the other, a bounded number of times.
        for _ in 0..10 {
            if !client.is_handshaking() && !conn.is_handshaking() {
                break;
            }
            let mut flight = Vec::new();
            client.write_tls(&mut flight).unwrap();
            conn.read_tls(&mut flight.as_slice()).unwrap();
            conn.process_new_packets().unwrap();
            let mut flight = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut flight).unwrap();
            }
            client.read_tls(&mut flight.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!client.is_handshaking() && !conn.is_handshaking());
        let chain = client.peer_certificates().unwrap();
        assert!(
            holds_an_rsa_key(&chain[0]),
            "the certificate's key is not RSA"
        );
    }

    /// Whether `cert` holds an RSA public key: its DER carries the rsaEncryption OID
    /// (1.2.840.113549.1.1.1).
    fn holds_an_rsa_key(cert: &CertificateDer<'_>) -> bool {
        const RSA_ENCRYPTION: &[u8] = &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
        ];
        cert.windows(RSA_ENCRYPTION.len())
            .any(|w| w == RSA_ENCRYPTION)
    }

    #[test]
    fn cert_files_load_as_a_server_identity_privately_and_go_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let files = CertFiles::self_signed().unwrap();
        let server = TlsServer::from_pem_files(files.cert(), files.key(), TlsVersions::TLS13)
            .expect("the pair loads as --cert and --key do");
        assert_eq!(server.fingerprint().len(), 64);
        let folder = files.cert().parent().unwrap().to_owned();
        assert_eq!(files.key().parent(), Some(folder.as_path()));
        let mode = std::fs::metadata(&folder).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the folder is open to others: {mode:o}");
        let key_mode = std::fs::metadata(files.key()).unwrap().permissions().mode();
        assert_eq!(
            key_mode & 0o077,
            0,
            "the key is open to others: {key_mode:o}"
        );
        drop(files);
        assert!(!folder.exists(), "the folder goes with the files");
    }

    #[test]
    fn certificate_files_that_are_not_pem_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = TlsServer::from_pem_files(&junk, &junk, TlsVersions::TLS13).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("junk.pem"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        let missing = dir.path().join("missing.pem");
        assert!(TlsServer::from_pem_files(&missing, &junk, TlsVersions::TLS13).is_err());
    }
}
