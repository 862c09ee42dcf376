//! The client side of `tls:`: which server to trust ([`Trust`]), the one rustls client
//! configuration every connection of a run shares ([`TlsClient`]), and [`TlsStream`], a blocking
//! TLS connection whose handles can be cloned so that one thread writes while another reads, as
//! the plain sockets' handles can.
//!
//! rustls runs on ring, as on the servers. Full handshakes are the default: the configuration
//! keeps no session, so every connection pays for its key exchange and the server's signature.
//! With resumption on (`--tls-resume`), the configuration keeps the tickets servers send
//! (rustls's in-memory store), and a new connection to the same server resumes with one.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use echo_cli::TlsVersions;
use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme};

/// Which certificate a `tls:` client accepts from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The certificates in this PEM file (`--ca`), such as the one `echo-server` prints.
    Ca(PathBuf),
    /// Any certificate (`--insecure`), for a self-signed test server whose file is not at hand.
    /// The handshake's signatures are still checked, so its cost is the real one.
    Insecure,
}

/// Why a TLS client could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsClientError {
    /// The `--ca` file could not be read.
    #[error("cannot read the CA file {path}: {source}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The `--ca` file holds no certificate rustls accepts.
    #[error("the CA file {0} holds no usable certificate (PEM \"CERTIFICATE\" blocks)")]
    NoCertificate(PathBuf),
    /// The versions or the name were refused by rustls.
    #[error("{0}")]
    Rustls(String),
}

/// The shared client configuration of a run's `tls:` connections, and the name each asks for.
/// Cloning shares the configuration, and so the tickets of a resuming client.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    resume: bool,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("name", &self.name)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// A configuration that trusts `trust`, offers `versions`, and resumes sessions with tickets
    /// when `resume` is set. `name` is the server name to ask for and verify: by default the
    /// target's IP address, which `echo-server`'s self-signed certificate names.
    pub fn new(
        trust: &Trust,
        versions: TlsVersions,
        resume: bool,
        name: ServerName<'static>,
    ) -> Result<Self, TlsClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&protocols(versions))
            .map_err(|e| TlsClientError::Rustls(e.to_string()))?;
        let mut config = match trust {
            Trust::Ca(path) => builder
                .with_root_certificates(roots(path)?)
                .with_no_client_auth(),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
        };
        config.resumption = if resume {
            Resumption::default()
        } else {
            Resumption::disabled()
        };
        Ok(Self {
            config: Arc::new(config),
            name,
            resume,
        })
    }

    /// The name for a target at `ip` when none is given.
    pub fn name_for(ip: IpAddr) -> ServerName<'static> {
        ServerName::IpAddress(ip.into())
    }

    /// Whether sessions are resumed.
    pub fn resumes(&self) -> bool {
        self.resume
    }

    /// A new client connection, not yet shaken hands.
    pub fn connection(&self) -> io::Result<ClientConnection> {
        ClientConnection::new(Arc::clone(&self.config), self.name.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }
}

/// The rustls protocol versions of `versions`.
fn protocols(versions: TlsVersions) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut protocols = Vec::with_capacity(2);
    if versions.tls13() {
        protocols.push(&rustls::version::TLS13);
    }
    if versions.tls12() {
        protocols.push(&rustls::version::TLS12);
    }
    protocols
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsClientError> {
    let read_error = |source| TlsClientError::Ca {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        let cert = cert.map_err(|e| read_error(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        roots
            .add(cert)
            .map_err(|e| TlsClientError::Rustls(format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(TlsClientError::NoCertificate(path.to_owned()));
    }
    Ok(roots)
}

/// `--insecure`: accepts any certificate, but verifies the handshake's signatures with the
/// provider's algorithms, so that the client does the work a verifying client does apart from
/// the chain.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A blocking TLS connection over TCP. Handles made by [`TlsStream::try_clone`] share the
/// session: one thread may write while another reads, as with a plain socket's handles.
///
/// The socket is read without any lock, so a reader blocked on it never stops a writer; the
/// session is locked only to decrypt or encrypt. Ciphertext goes out under the `output` lock,
/// which keeps records in order and holds what a non-blocking socket did not take yet. A reader
/// that leaves records to send (a TLS 1.3 key update's answer) sends them only if no writer is
/// sending; a writer re-checks for such records before it lets go of `output`, under the session
/// lock, so none is left behind.
#[derive(Debug, Clone)]
pub struct TlsStream {
    shared: Arc<Shared>,
    socket: Arc<TcpStream>,
}

#[derive(Debug)]
struct Shared {
    session: Mutex<Session>,
    /// Ciphertext taken from the session that the socket has not taken yet.
    output: Mutex<Vec<u8>>,
}

/// The session, and the ciphertext read from the socket that it has not taken yet.
#[derive(Debug)]
struct Session {
    connection: ClientConnection,
    inbox: Vec<u8>,
}

/// The largest TLS record with its header, so that one socket read can carry a whole one.
const RECORD: usize = 16 * 1024 + 256;

impl TlsStream {
    /// Shakes hands over `socket`, which should have its timeouts set: the handshake is bounded
    /// by them.
    pub fn handshake(mut socket: TcpStream, mut session: ClientConnection) -> io::Result<Self> {
        while session.is_handshaking() {
            session.complete_io(&mut socket)?;
        }
        // The client's Finished may still be queued.
        while session.wants_write() {
            session.write_tls(&mut socket)?;
        }
        Ok(Self {
            shared: Arc::new(Shared {
                session: Mutex::new(Session {
                    connection: session,
                    inbox: Vec::new(),
                }),
                output: Mutex::new(Vec::new()),
            }),
            socket: Arc::new(socket),
        })
    }

    /// The TCP socket under the session (for its timeouts and blocking mode).
    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Another handle to the same session.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(self.clone())
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.session().connection.protocol_version()
    }

    /// Whether the handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        !matches!(
            self.session().connection.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
                | Some(rustls::HandshakeKind::FullWithHelloRetryRequest)
        )
    }

    /// Shuts down one or both directions. Closing the write side alone sends `close_notify`
    /// first, which is how a TLS peer learns that no more data comes. Closing both is an abort:
    /// the socket is shut at once, with no `close_notify` (which would have to wait for a writer
    /// blocked on a peer that does not read), and that wakes every handle blocked on it.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if how == Shutdown::Write {
            let output = self.output();
            self.session().connection.send_close_notify();
            self.send(output)?;
        }
        self.socket.shutdown(how)
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        self.shared
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn output(&self) -> MutexGuard<'_, Vec<u8>> {
        self.shared
            .output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends what `output` holds and whatever the session has queued, until both are empty or
    /// the socket would block (what is left stays in `output`). `output` is let go while the
    /// session is locked and has nothing queued, so a reader that queues records after that
    /// finds `output` free and sends them itself.
    fn send(&self, mut output: MutexGuard<'_, Vec<u8>>) -> io::Result<()> {
        loop {
            write_out(&self.socket, &mut output)?;
            let mut session = self.session();
            if !session.connection.wants_write() {
                drop(output);
                return Ok(());
            }
            while session.connection.wants_write() {
                session.connection.write_tls(&mut *output)?;
            }
        }
    }

    /// Sends records a read left queued, unless a writer is sending (it will send them).
    fn send_if_idle(&self) -> io::Result<()> {
        match self.shared.output.try_lock() {
            Ok(output) => match self.send(output) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                other => other,
            },
            Err(_) => Ok(()),
        }
    }
}

/// Writes all of `output` to `socket`, taking off what was written; on an error (`WouldBlock`
/// for a non-blocking socket) the rest stays.
fn write_out(socket: &TcpStream, output: &mut Vec<u8>) -> io::Result<()> {
    while !output.is_empty() {
        match (&*socket).write(output) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                output.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Read for &TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut ciphertext = [0u8; RECORD];
        loop {
            let wants_write = {
                let mut session = self.session();
                if let Some(read) = session.plaintext(buf)? {
                    return Ok(read);
                }
                session.connection.wants_write()
            };
            if wants_write {
                self.send_if_idle()?;
            }
            let n = loop {
                match (&*self.socket).read(&mut ciphertext) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            let mut session = self.session();
            if n == 0 {
                // An empty read tells rustls the peer closed: its reader then says whether
                // that came after a close_notify (end of file) or not (an error).
                session.connection.read_tls(&mut io::empty())?;
            } else {
                session.inbox.extend_from_slice(&ciphertext[..n]);
            }
        }
    }
}

impl Session {
    /// Plaintext into `buf`, decrypting what the inbox holds as far as needed: `None` once
    /// both are empty and more must be read from the socket. rustls refuses ciphertext while
    /// more than 16 KiB of plaintext waits, so ciphertext is handed over only once the
    /// plaintext is taken, and the rest stays in the inbox.
    fn plaintext(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.connection.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other.map(Some),
            }
            if self.inbox.is_empty() {
                return Ok(None);
            }
            let inbox = std::mem::take(&mut self.inbox);
            let mut rest = &inbox[..];
            let took = self.connection.read_tls(&mut rest)?;
            self.connection
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // Nothing is taken after a close_notify: what follows it is not data.
            if took > 0 {
                self.inbox = rest.to_vec();
            }
        }
    }
}

impl Write for &TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut output = self.output();
        // What an earlier write left (non-blocking socket) goes first; until it is gone no
        // more plaintext is taken, so the caller sees WouldBlock.
        write_out(&self.socket, &mut output)?;
        let accepted = self.session().connection.writer().write(buf)?;
        match self.send(output) {
            // The plaintext is taken and its ciphertext kept: it goes out with the next call.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(accepted),
            Err(e) => Err(e),
            Ok(()) => Ok(accepted),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send(self.output())
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}
