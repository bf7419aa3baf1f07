//! A local S3, SQS and Secrets Manager for tests: a `moto_server` child
//! process (PyPI package `moto[server]`) on a free port of 127.0.0.1, stopped
//! when dropped.
//!
//! ```no_run
//! # fn demo() -> std::io::Result<()> {
//! let moto = mdp_devtools::MotoServer::start()?;
//! // With mdp-aws: `mdp_aws::s3_client(&mdp_aws::sdk_config_for(&moto.endpoint).await)`.
//! println!("AWS_ENDPOINT_URL={}", moto.endpoint);
//! # Ok(()) }
//! ```

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long a starting server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports tried when another process takes the free port first.
const PORT_ATTEMPTS: usize = 3;

/// A running moto server; the child process is killed on drop. Its output
/// goes to a log file, shown only in the error when it fails to start.
#[derive(Debug)]
pub struct MotoServer {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL` or `mdp_aws::sdk_config_for`.
    pub endpoint: String,
    child: Child,
    log: PathBuf,
}

impl MotoServer {
    /// Starts `moto_server -H 127.0.0.1 -p PORT` (or, if that executable is
    /// missing or exits at once, `python3 -m moto.server …`) on a free port
    /// and waits until it answers HTTP, at most 20 seconds.
    pub fn start() -> io::Result<MotoServer> {
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            for (program, prefix_args) in [
                ("moto_server", &[][..]),
                ("python3", &["-m", "moto.server"][..]),
            ] {
                match start_one(program, prefix_args, port) {
                    Ok(server) => return Ok(server),
                    Err(e) => failures.push(format!("{program}: {e}")),
                }
            }
        }
        Err(io::Error::other(format!(
            "could not start a moto server (pip install 'moto[server]'):\n{}",
            failures.join("\n")
        )))
    }

    /// A server shared by every caller that holds it at the same time: the
    /// first caller starts it, and it stops when the last `Arc` is dropped
    /// (a later caller then starts a new one). Tests running in parallel in
    /// one binary thus share one server and no process outlives the tests.
    pub fn shared() -> io::Result<Arc<MotoServer>> {
        static SHARED: Mutex<Weak<MotoServer>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = slot.upgrade() {
            return Ok(server);
        }
        let server = Arc::new(MotoServer::start()?);
        *slot = Arc::downgrade(&server);
        Ok(server)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the endpoint ends with the port")
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn start_one(program: &str, prefix_args: &[&str], port: u16) -> io::Result<MotoServer> {
    static STARTS: AtomicU64 = AtomicU64::new(0);
    let log = std::env::temp_dir().join(format!(
        "mdp-moto-{}-{port}-{}.log",
        std::process::id(),
        STARTS.fetch_add(1, Ordering::Relaxed)
    ));
    let out = File::create(&log)?;
    let spawned = Command::new(program)
        .args(prefix_args)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = std::fs::remove_file(&log);
            return Err(e);
        }
    };
    // From here on, dropping `server` kills the child and removes the log.
    let mut server = MotoServer {
        endpoint: format!("http://127.0.0.1:{port}"),
        child,
        log,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = server.child.try_wait()? {
            return Err(io::Error::other(format!(
                "exited with {status} before answering; its output ends with:\n{}",
                log_tail(&server.log)
            )));
        }
        if answers_http(addr) {
            return Ok(server);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer on {addr} within {START_TIMEOUT:?}; its output ends with:\n{}",
                    log_tail(&server.log)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True once `GET /moto-api/` gets an HTTP response.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /moto-api/ HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    head[..read].starts_with(b"HTTP/")
}

/// The last few KiB of the server's log.
fn log_tail(path: &PathBuf) -> String {
    const TAIL: u64 = 4096;
    let Ok(mut f) = File::open(path) else {
        return "(no log)".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).trim_end().to_string()
}
