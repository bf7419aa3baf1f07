//! Crash and pause points for the crash and concurrency tests. In a debug
//! build a process whose `MDP_CRASH_AT` names a point (`name`, or `name#N`
//! for its N-th pass) kills itself there with SIGKILL, as a power cut or an
//! OOM kill would; `MDP_PAUSE_AT=name:MILLIS` sleeps there, so two runs can
//! be made to overlap exactly where a race would hurt. Tests then check
//! that the next run repairs everything. Release builds (the Lambda
//! packages, `make mdp`) compile the points to nothing.

/// A crash or pause point named `name` (debug builds only).
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    debug::point(name);
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(debug_assertions)]
mod debug {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    struct Plan {
        crash: Option<(String, u32)>,
        pause: Option<(String, u64)>,
        passes: Mutex<HashMap<String, u32>>,
    }

    fn plan() -> &'static Plan {
        static PLAN: OnceLock<Plan> = OnceLock::new();
        PLAN.get_or_init(|| Plan {
            crash: std::env::var("MDP_CRASH_AT")
                .ok()
                .map(|v| match v.split_once('#') {
                    Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                    None => (v, 1),
                }),
            pause: std::env::var("MDP_PAUSE_AT").ok().and_then(|v| {
                let (name, ms) = v.split_once(':')?;
                Some((name.to_string(), ms.parse().ok()?))
            }),
            passes: Mutex::default(),
        })
    }

    pub fn point(name: &str) {
        let plan = plan();
        if let Some((pause, ms)) = &plan.pause
            && pause == name
        {
            std::thread::sleep(std::time::Duration::from_millis(*ms));
        }
        let Some((crash, at)) = &plan.crash else {
            return;
        };
        if crash != name {
            return;
        }
        let pass = {
            let mut passes = plan.passes.lock().unwrap_or_else(|p| p.into_inner());
            let n = passes.entry(name.to_string()).or_default();
            *n += 1;
            *n
        };
        if pass == *at {
            eprintln!("MDP_CRASH_AT={name}#{pass}: killing the process");
            // SIGKILL to ourselves: no destructor, no flush, no unwinding.
            let _ = std::process::Command::new("kill")
                .args(["-9", &std::process::id().to_string()])
                .status();
            std::process::abort();
        }
    }
}
