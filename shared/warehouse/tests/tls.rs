//! TLS to a Postgres or Redshift warehouse, against a fake server on
//! 127.0.0.1: it answers the SSLRequest with `S`, performs a real TLS
//! handshake (tokio-rustls) with a certificate made here (rcgen), records
//! every byte the client sends (on the wire, and decrypted after the
//! handshake), asks for a cleartext password and then ends the session with
//! an error. The client is the warehouse's own connect (`connect_rows`,
//! `connect`, `PostgresWarehouse::connect`), so the options builder, the
//! TLS mode chosen by `mdp_core::connection` and the CA bundle
//! (`sslrootcert` / `WAREHOUSE_SSL_ROOT_CERT`) are all the real ones.
//!
//! What is proved: with `verify-full` a certificate for another name, or
//! from an unknown issuer, is refused before the startup message, so the
//! password never leaves the client; a CA bundle makes a certificate from a
//! private CA (as RDS's) acceptable; and the default for a server that is
//! not a local Postgres is that verification (`require`, the old default,
//! sends the password to any server that speaks TLS).
//!
//! Offline and bounded: every await has a timeout, the server only listens
//! on loopback and stops with the test.

use std::error::Error as _;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use mdp_core::connection::{ServerTarget, WarehouseConnection};
use mdp_core::{Config, ErrorClass};
use mdp_warehouse::{PostgresWarehouse, TableSettings, WarehouseError, connect, connect_rows};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{ServerConfig, crypto::ring};

const PASSWORD: &str = "hunter2";
/// The longest any single step of the fake server or the client may take.
const STEP: Duration = Duration::from_secs(10);
/// The client's whole connect (its own connect timeout is 15 s).
const CONNECT: Duration = Duration::from_secs(30);
/// Postgres' SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// AuthenticationCleartextPassword: the client answers with its password.
const ASK_PASSWORD: [u8; 9] = [b'R', 0, 0, 0, 8, 0, 0, 0, 3];
/// What the fake server says once it has the password (SQLSTATE 28000).
const FAKE_ERROR: &str = "fake server: the test ends here";
/// Part of any startup message of user `etl`.
const STARTUP_USER: &[u8] = b"user\0etl\0";

// ---------------------------------------------------------------------------
// Certificates, made at test time

/// A certificate authority of the test's own (as the Amazon RDS CA is to the
/// built-in roots: unknown unless given as a bundle).
fn test_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "mdp test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A server certificate and its key.
struct ServerCert {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

/// A server certificate for `name`, signed by `ca`, or self-signed.
fn server_cert(name: &str, ca: Option<&CertifiedIssuer<'static, KeyPair>>) -> ServerCert {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = match ca {
        Some(ca) => params.signed_by(&key, &**ca).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    ServerCert {
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

/// Writes the CA's PEM into `dir`, as an operator ships a bundle.
fn ca_file(dir: &Path, ca: &CertifiedIssuer<'static, KeyPair>) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    path
}

// ---------------------------------------------------------------------------
// The fake server

/// What one client connection sent.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Every byte received on the TCP connection, TLS records included.
    raw: Vec<u8>,
    /// The connection started with an SSLRequest (answered `S`).
    ssl_request: bool,
    /// The server side of the TLS handshake: None when none was attempted.
    handshake: Option<Result<(), String>>,
    /// Every byte received after the handshake, decrypted.
    decrypted: Vec<u8>,
}

/// A TCP stream that appends every byte it reads to the connection's record.
struct Recorded {
    inner: TcpStream,
    seen: Arc<Mutex<Seen>>,
}

impl AsyncRead for Recorded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let new = &buf.filled()[before..];
            this.seen.lock().unwrap().raw.extend_from_slice(new);
        }
        poll
    }
}

impl AsyncWrite for Recorded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// One accepted connection: its record and its handler.
type Connection = (Arc<Mutex<Seen>>, JoinHandle<()>);

/// A fake Postgres server on 127.0.0.1 presenting one certificate.
struct FakeServer {
    port: u16,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Vec<Connection>>>,
}

impl FakeServer {
    async fn start(cert: ServerCert) -> FakeServer {
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert], cert.key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accepted = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let seen = Arc::new(Mutex::new(Seen::default()));
                let stream = Recorded {
                    inner: tcp,
                    seen: seen.clone(),
                };
                let handler = tokio::spawn(serve(stream, acceptor.clone(), seen.clone()));
                accepted.lock().unwrap().push((seen, handler));
            }
        });
        FakeServer {
            port,
            accept,
            connections,
        }
    }

    /// Stops listening, lets every connection's handler end (each step is
    /// bounded) and returns what each connection sent, in order.
    async fn finish(self) -> Vec<Seen> {
        self.accept.abort();
        let _ = self.accept.await;
        let connections = std::mem::take(&mut *self.connections.lock().unwrap());
        let mut seen = Vec::new();
        for (log, handler) in connections {
            timeout(STEP * 2, handler)
                .await
                .expect("the fake server's handler ends")
                .expect("the fake server's handler does not panic");
            seen.push(log.lock().unwrap().clone());
        }
        seen
    }
}

/// One connection: SSLRequest → `S` → TLS handshake → the Postgres startup
/// on the encrypted stream. A client that skips the SSLRequest is served in
/// plaintext the same way (its bytes are in `raw`).
async fn serve(mut tcp: Recorded, acceptor: TlsAcceptor, seen: Arc<Mutex<Seen>>) {
    let mut first = [0u8; 8];
    if !matches!(timeout(STEP, tcp.read_exact(&mut first)).await, Ok(Ok(_))) {
        return;
    }
    if first != SSL_REQUEST {
        speak_postgres(tcp, first.to_vec(), None).await;
        return;
    }
    seen.lock().unwrap().ssl_request = true;
    if !matches!(timeout(STEP, tcp.write_all(b"S")).await, Ok(Ok(()))) {
        return;
    }
    let handshake = match timeout(STEP, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the handshake timed out".to_string()),
    };
    match handshake {
        Ok(tls) => {
            seen.lock().unwrap().handshake = Some(Ok(()));
            speak_postgres(tls, Vec::new(), Some(&seen)).await;
        }
        Err(e) => seen.lock().unwrap().handshake = Some(Err(e)),
    }
}

/// The length of a whole Postgres message starting at `at` (after `tag`
/// bytes of type), if `buf` already holds all of it.
fn whole_message(buf: &[u8], at: usize, tag: usize) -> Option<usize> {
    let len = buf.get(at + tag..at + tag + 4)?;
    let len = tag + u32::from_be_bytes(len.try_into().unwrap()) as usize;
    (buf.len() >= at + len).then_some(len)
}

/// Reads the startup message, asks for the password in cleartext, reads it,
/// answers with an error and closes. Decrypted bytes go to `decrypted`.
async fn speak_postgres<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut buf: Vec<u8>,
    decrypted: Option<&Mutex<Seen>>,
) {
    let mut startup_len = None;
    let mut chunk = [0u8; 4096];
    loop {
        if startup_len.is_none()
            && let Some(len) = whole_message(&buf, 0, 0)
        {
            startup_len = Some(len);
            if !matches!(
                timeout(STEP, stream.write_all(&ASK_PASSWORD)).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
        if let Some(at) = startup_len
            && whole_message(&buf, at, 1).is_some()
        {
            let _ = timeout(STEP, stream.write_all(&error_response())).await;
            let _ = timeout(STEP, stream.shutdown()).await;
            return;
        }
        let n = match timeout(STEP, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(seen) = decrypted {
            seen.lock()
                .unwrap()
                .decrypted
                .extend_from_slice(&chunk[..n]);
        }
    }
}

/// ErrorResponse: FATAL, SQLSTATE 28000, [`FAKE_ERROR`].
fn error_response() -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "28000"),
        (b'M', FAKE_ERROR),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&body);
    message
}

// ---------------------------------------------------------------------------
// The client: the warehouse's own connect

fn config(vars: &[(&str, String)]) -> Config {
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("valid test configuration")
}

/// `connect_rows` (SQLite or Postgres) on this configuration; it never
/// succeeds against the fake server.
async fn connect_postgres(vars: &[(&str, String)]) -> WarehouseError {
    let config = config(vars);
    match timeout(CONNECT, connect_rows(&config)).await {
        Ok(Ok(_)) => panic!("the fake server never lets a client in"),
        Ok(Err(e)) => e,
        Err(_) => panic!("connect did not end within {CONNECT:?}"),
    }
}

/// The error with all its sources, as the logs print it.
fn chain(err: &WarehouseError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The client asked for TLS, refused the server's certificate, and sent
/// nothing else: no startup message and no password, on any connection
/// (one connection: no retry, no fallback to plaintext).
fn assert_refused_before_startup(seen: &[Seen]) {
    assert_eq!(seen.len(), 1, "one connection: {seen:?}");
    let s = &seen[0];
    assert!(s.ssl_request, "the client asked for TLS first");
    assert!(
        matches!(s.handshake, Some(Err(_))),
        "the handshake failed: {:?}",
        s.handshake
    );
    assert!(s.decrypted.is_empty(), "nothing after the handshake");
    assert!(!contains(&s.raw, PASSWORD.as_bytes()), "no password bytes");
    assert!(!contains(&s.raw, STARTUP_USER), "no startup message");
}

/// The client verified the server and then spoke Postgres over TLS only:
/// the startup message and the password arrived encrypted.
fn assert_spoke_over_tls(seen: &[Seen]) {
    assert_eq!(seen.len(), 1, "one connection: {seen:?}");
    let s = &seen[0];
    assert!(s.ssl_request);
    assert_eq!(s.handshake, Some(Ok(())));
    assert!(
        contains(&s.decrypted, STARTUP_USER),
        "the startup message arrived after the handshake"
    );
    assert!(contains(&s.decrypted, PASSWORD.as_bytes()));
    assert!(
        !contains(&s.raw, PASSWORD.as_bytes()),
        "never in plaintext on the wire"
    );
}

// ---------------------------------------------------------------------------
// Tests

/// A certificate from a trusted CA, but for another name: refused by the
/// name check before the client sends its startup message or password.
#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name_before_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca();
    let bundle = ca_file(dir.path(), &ca);
    let server = FakeServer::start(server_cert("other.example", Some(&ca))).await;
    let url = format!(
        "postgres://etl:{PASSWORD}@127.0.0.1:{}/db?sslmode=verify-full&sslrootcert={}",
        server.port,
        bundle.display()
    );
    let err = connect_postgres(&[("WAREHOUSE_URL", url)]).await;
    let text = chain(&err);
    assert!(
        text.contains("certificate not valid for name \"127.0.0.1\""),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
    assert_refused_before_startup(&server.finish().await);
}

/// Retrying cannot fix a certificate that does not fit: the load must go to
/// the dead-letter queue at once, not be redelivered again and again.
///
/// Ignored until `shared/warehouse/src/errors.rs` classifies certificate
/// failures as permanent: sqlx reports them as `Error::Io` wrapping a
/// `rustls::Error::InvalidCertificate`, which `class_of` counts transient.
#[tokio::test]
async fn a_refused_certificate_is_a_permanent_failure() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca();
    let bundle = ca_file(dir.path(), &ca);
    let server = FakeServer::start(server_cert("other.example", Some(&ca))).await;
    let url = format!(
        "postgres://etl:{PASSWORD}@127.0.0.1:{}/db?sslmode=verify-full&sslrootcert={}",
        server.port,
        bundle.display()
    );
    let name = connect_postgres(&[("WAREHOUSE_URL", url)]).await;
    assert_eq!(name.class(), ErrorClass::Permanent, "{}", chain(&name));
    server.finish().await;

    let server = FakeServer::start(server_cert("localhost", Some(&ca))).await;
    let url = format!(
        "postgres://etl:{PASSWORD}@localhost:{}/db?sslmode=verify-full",
        server.port
    );
    let issuer = connect_postgres(&[("WAREHOUSE_URL", url)]).await;
    assert_eq!(issuer.class(), ErrorClass::Permanent, "{}", chain(&issuer));
    server.finish().await;
}

/// A CA bundle that cannot be read refuses the connection before any byte
/// is sent (never a fallback to an unverified or plaintext connection), as a
/// permanent configuration error naming the file.
#[tokio::test]
async fn a_missing_ca_bundle_refuses_before_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca();
    let server = FakeServer::start(server_cert("localhost", Some(&ca))).await;
    let url = format!(
        "postgres://etl:{PASSWORD}@localhost:{}/db?sslmode=verify-full",
        server.port
    );
    let missing = dir.path().join("no-such-bundle.pem");
    let err = connect_postgres(&[
        ("WAREHOUSE_URL", url),
        ("WAREHOUSE_SSL_ROOT_CERT", missing.display().to_string()),
    ])
    .await;
    assert!(!chain(&err).contains(PASSWORD), "{}", chain(&err));
    assert_eq!(err.class(), ErrorClass::Permanent, "{}", chain(&err));
    assert!(
        chain(&err).contains("no-such-bundle.pem"),
        "{}",
        chain(&err)
    );
    let seen = server.finish().await;
    assert!(seen.is_empty(), "nothing reached the server: {seen:?}");
}

/// A certificate for `localhost` from a private CA (as RDS's): accepted
/// with the CA bundle, given in the URL or in `WAREHOUSE_SSL_ROOT_CERT`;
/// the client then sends its startup message and password, encrypted.
/// `verify-ca` uses the bundle too, without the name check.
#[tokio::test]
async fn a_ca_bundle_lets_verify_full_through() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca();
    let bundle = ca_file(dir.path(), &ca);
    let cases = [
        // The bundle in the URL.
        (
            "localhost",
            "verify-full",
            format!("&sslrootcert={}", bundle.display()),
            None,
        ),
        // The bundle from WAREHOUSE_SSL_ROOT_CERT.
        (
            "localhost",
            "verify-full",
            String::new(),
            Some(bundle.display().to_string()),
        ),
        // verify-ca: the chain is checked, not the name (127.0.0.1 ≠ localhost).
        (
            "127.0.0.1",
            "verify-ca",
            format!("&sslrootcert={}", bundle.display()),
            None,
        ),
    ];
    for (host, mode, query, env_bundle) in cases {
        let server = FakeServer::start(server_cert("localhost", Some(&ca))).await;
        let url = format!(
            "postgres://etl:{PASSWORD}@{host}:{}/db?sslmode={mode}{query}",
            server.port
        );
        let mut vars = vec![("WAREHOUSE_URL", url)];
        if let Some(path) = env_bundle.clone() {
            vars.push(("WAREHOUSE_SSL_ROOT_CERT", path));
        }
        let err = connect_postgres(&vars).await;
        let text = chain(&err);
        // The client got past the handshake: the error is the fake server's own.
        assert!(
            text.contains(FAKE_ERROR),
            "{host} {mode} {env_bundle:?}: {text}"
        );
        assert_spoke_over_tls(&server.finish().await);
    }
}

/// The same server without the CA bundle: its issuer is unknown to the
/// built-in roots, so the certificate is refused before the startup.
#[tokio::test]
async fn without_the_ca_bundle_the_same_server_is_refused() {
    let ca = test_ca();
    let server = FakeServer::start(server_cert("localhost", Some(&ca))).await;
    let url = format!(
        "postgres://etl:{PASSWORD}@localhost:{}/db?sslmode=verify-full",
        server.port
    );
    let err = connect_postgres(&[("WAREHOUSE_URL", url)]).await;
    let text = chain(&err);
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert_refused_before_startup(&server.finish().await);
}

/// The default, end to end. A Redshift URL without `sslmode` is verified
/// even on loopback (a tunnel), and a remote Postgres URL's default is
/// verified too: a self-signed certificate for another name is refused
/// before any password. Under the old default (`require`) both connections
/// were accepted and the password sent, as an explicit `sslmode=require`
/// still does.
#[tokio::test]
async fn by_default_a_server_certificate_is_verified() {
    const ROLE: &str = "arn:aws:iam::123456789012:role/mdp-copy";
    let redshift = |port: u16, query: &str| {
        config(&[
            (
                "WAREHOUSE_URL",
                format!("redshift://etl:{PASSWORD}@127.0.0.1:{port}/dev{query}"),
            ),
            ("WAREHOUSE_REDSHIFT_IAM_ROLE", ROLE.to_string()),
        ])
    };

    // Redshift on loopback, no sslmode: verify-full.
    let server = FakeServer::start(server_cert("other.example", None)).await;
    let err = match timeout(CONNECT, connect(&redshift(server.port, ""))).await {
        Ok(Ok(_)) => panic!("connected to a server with a self-signed certificate"),
        Ok(Err(e)) => e,
        Err(_) => panic!("connect did not end within {CONNECT:?}"),
    };
    let text = chain(&err);
    assert!(text.contains("invalid peer certificate"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert_refused_before_startup(&server.finish().await);

    // A remote Postgres URL without sslmode: the mode it gets by default,
    // used against the fake server (the host is the only field changed).
    let server = FakeServer::start(server_cert("other.example", None)).await;
    let remote = format!(
        "postgres://etl:{PASSWORD}@db.example.com:{}/db",
        server.port
    );
    let WarehouseConnection::Server(remote) =
        WarehouseConnection::parse(&remote, |_| None).unwrap()
    else {
        panic!("a server URL")
    };
    let target = ServerTarget {
        host: "127.0.0.1".into(),
        ..remote
    };
    let settings = TableSettings {
        schema: "public".into(),
        table: "fact_market_data".into(),
        batch_size: 1000,
        direct_load_max_rows: 1000,
        pool_size: 1,
    };
    let err = match timeout(CONNECT, PostgresWarehouse::connect(&target, &settings)).await {
        Ok(Ok(_)) => panic!("connected to a server with a self-signed certificate"),
        Ok(Err(e)) => e,
        Err(_) => panic!("connect did not end within {CONNECT:?}"),
    };
    assert!(chain(&err).contains("invalid peer certificate"), "{err}");
    assert_refused_before_startup(&server.finish().await);

    // What `require` (the old default) does with the same server: accepts
    // any certificate for any name, and sends the password.
    let server = FakeServer::start(server_cert("other.example", None)).await;
    let err = match timeout(CONNECT, connect(&redshift(server.port, "?sslmode=require"))).await {
        Ok(Ok(_)) => panic!("the fake server never lets a client in"),
        Ok(Err(e)) => e,
        Err(_) => panic!("connect did not end within {CONNECT:?}"),
    };
    assert!(chain(&err).contains(FAKE_ERROR), "{}", chain(&err));
    assert_spoke_over_tls(&server.finish().await);
}
