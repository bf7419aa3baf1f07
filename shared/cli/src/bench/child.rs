//! A benchmarked command run as a child process: its wall time from spawn to
//! exit and its peak resident memory.
//!
//! The peak is the child's own `VmHWM` (`/proc/<pid>/status`), read every
//! [`SAMPLE_EVERY`] while it runs: a high-water mark, so the last reading is
//! the peak up to a few milliseconds before the exit. The kernel's
//! `ru_maxrss` (`wait4`, GNU time's `%M` of its direct child) would not do:
//! it also counts the memory of the process that spawned the child (the
//! address space the child had before `exec`), which here is this benchmark,
//! holding hundreds of megabytes of chart series.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mdp_core::StageError;

/// How often the child's `VmHWM` is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// What a finished child did.
pub struct ChildRun {
    pub wall: Duration,
    pub peak_rss_mb: f64,
    pub stdout: String,
}

/// Runs `command` to the end; a failed exit is an error carrying its output.
/// `what` names the command in that error.
pub async fn run_child(mut command: Command, what: &str) -> Result<ChildRun, StageError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| StageError::permanent(format!("starting {what}: {e}")))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let exited = Arc::new(AtomicBool::new(false));
    let sampler = sample_peak_rss(child.id(), exited.clone());
    // Blocks until the child exits: off the runtime's worker threads, which
    // serve the chart server the child is talking to.
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .map_err(|e| StageError::permanent(format!("waiting for {what}: {e}")))?
        .map_err(|e| StageError::permanent(format!("waiting for {what}: {e}")))?;
    let wall = started.elapsed();
    exited.store(true, Ordering::Relaxed);
    let peak_kb = sampler.join().unwrap_or(0);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(StageError::permanent(format!(
            "{what} failed ({status}):\n{stdout}{stderr}"
        )));
    }
    Ok(ChildRun {
        wall,
        peak_rss_mb: peak_kb as f64 / 1024.0,
        stdout,
    })
}

/// Reads a pipe to its end on a thread of its own (so a full stderr pipe
/// never stalls a child that is still writing stdout).
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Reads `VmHWM` of process `pid` until `exited` is set or the process is
/// gone; gives the highest value read, in kB.
fn sample_peak_rss(pid: u32, exited: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let path = format!("/proc/{pid}/status");
    std::thread::spawn(move || {
        let mut peak = 0;
        while !exited.load(Ordering::Relaxed) {
            let Ok(status) = std::fs::read_to_string(&path) else {
                break;
            };
            // A process that has exited but is not yet reaped has no VmHWM line.
            if let Some(kb) = vm_hwm_kb(&status) {
                peak = peak.max(kb);
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
        peak
    })
}

/// The `VmHWM` of a `/proc/<pid>/status` text, in kB.
pub fn vm_hwm_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_kilobytes() {
        let status = "Name:\tmdp\nVmPeak:\t  300000 kB\nVmHWM:\t   65536 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(vm_hwm_kb(status), Some(65536));
        assert_eq!(vm_hwm_kb("Name:\tzombie\nState:\tZ (zombie)\n"), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_child_is_timed_and_its_own_peak_memory_read() {
        // Allocates and touches ~48 MB, then holds it a moment.
        let mut cmd = Command::new("python3");
        cmd.args([
            "-c",
            "import time; b = bytearray(48 << 20); time.sleep(0.2); print('done')",
        ]);
        let run = run_child(cmd, "python3").await.unwrap();
        assert_eq!(run.stdout.trim(), "done");
        assert!(run.wall >= Duration::from_millis(200), "{:?}", run.wall);
        assert!(
            (48.0..200.0).contains(&run.peak_rss_mb),
            "peak {} MB",
            run.peak_rss_mb
        );
    }

    #[tokio::test]
    async fn a_failing_child_is_an_error_with_its_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo partial; echo broken >&2; exit 3"]);
        let err = run_child(cmd, "the script").await.err().unwrap().message();
        assert!(
            err.contains("the script failed") && err.contains("partial") && err.contains("broken"),
            "{err}"
        );
    }
}
