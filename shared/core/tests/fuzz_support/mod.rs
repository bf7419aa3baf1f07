//! What the fuzz targets of this crate share (`mod fuzz_support;` in each
//! `fuzz_*.rs`): the proptest configuration. 10,000 cases per property by
//! default, `MDP_FUZZ_CASES` overrides it (`make fuzz`); a fixed seed per
//! property, which `MDP_FUZZ_SEED=N` replaces (`random` picks one and prints
//! it); no failure persistence, so nothing is written into the repository.

use proptest::prelude::ProptestConfig;
use proptest::test_runner::{RngAlgorithm, RngSeed};

const DEFAULT_CASES: u32 = 10_000;

/// The configuration of a property whose fixed seed is `seed`.
pub fn fuzz_config(seed: u64) -> ProptestConfig {
    let cases = std::env::var("MDP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed = match std::env::var("MDP_FUZZ_SEED").as_deref() {
        Ok("random") => {
            use std::hash::{BuildHasher, RandomState};
            let seed = RandomState::new().hash_one(std::time::SystemTime::now());
            // Shown with a failure: the run it replays.
            eprintln!("MDP_FUZZ_SEED={seed}");
            seed
        }
        Ok(v) => v.parse().expect("MDP_FUZZ_SEED is a number or `random`"),
        Err(_) => seed,
    };
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        // ChaCha, the default, is most of the time of a debug-build case.
        rng_algorithm: RngAlgorithm::XorShift,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}
