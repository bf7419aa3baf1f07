//! Technical indicators of DESIGN.md section 5 (contract), over a ticker's
//! whole close series sorted by date.
//!
//! Written as plain loops over the closes rather than polars rolling
//! expressions on purpose: every windowed value is summed afresh from its
//! window (windows are 7–20 wide), so no running-sum drift accumulates over
//! decades of bars, a window of equal closes gives a standard deviation of
//! exactly 0 and an RSI of exactly 50, and there is no `min_periods` default
//! to get wrong. It is also faster than building the expressions for these
//! sizes (see `mdp bench`).

use mdp_core::Indicators;

pub const SMA_WINDOWS: [usize; 3] = [7, 14, 20];
pub const RSI_PERIOD: usize = 14;
pub const BB_WINDOW: usize = 20;
pub const BB_WIDTH: f64 = 2.0;
pub const VOLATILITY_WINDOW: usize = 20;

/// Closes before a bar that its indicators read: the 20 of the widest window
/// (the volatility's 20 returns need 20 earlier closes).
pub const LOOKBACK: usize = 20;

/// The exponential averages after a bar, the only indicator inputs that carry
/// over from the whole history (everything else reads the last [`LOOKBACK`]
/// closes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmaState {
    pub ema_12: f64,
    pub ema_26: f64,
    pub macd_signal: f64,
}

/// Where a computation resumes: how many bars came before, the last
/// [`LOOKBACK`] (or all, when fewer) of their closes, and the exponential
/// averages after the last of them. Resuming from the state a full
/// computation had at that bar gives bit-identical values, because every
/// value is computed by the same operations on the same operands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndicatorState {
    bars_before: u64,
    recent_closes: Vec<f64>,
    ema: Option<EmaState>,
}

impl IndicatorState {
    /// The state after `bars_before` bars, given the last
    /// min(bars_before, [`LOOKBACK`]) closes and, unless no bar came before,
    /// the averages after the last one; `None` when they do not fit together
    /// (a state read back from storage is checked, never trusted).
    pub fn new(
        bars_before: u64,
        recent_closes: Vec<f64>,
        ema: Option<EmaState>,
    ) -> Option<IndicatorState> {
        let expected = bars_before.min(LOOKBACK as u64) as usize;
        (recent_closes.len() == expected && ema.is_some() == (bars_before > 0)).then_some(
            IndicatorState {
                bars_before,
                recent_closes,
                ema,
            },
        )
    }
}

/// Indicators for every bar of `closes` (sorted by date, closes present).
pub fn compute_indicators(closes: &[f64]) -> Vec<Indicators> {
    resume_indicators(&IndicatorState::default(), closes).0
}

/// Indicators of `closes`, the bars that follow `state`, with the
/// exponential averages after each of them.
pub fn resume_indicators(
    state: &IndicatorState,
    new_closes: &[f64],
) -> (Vec<Indicators>, Vec<EmaState>) {
    let n_new = new_closes.len();
    if n_new == 0 {
        return (Vec::new(), Vec::new());
    }
    // The earlier closes, then the new ones; `skip` of them are context.
    let skip = state.recent_closes.len();
    let closes: Vec<f64> = state
        .recent_closes
        .iter()
        .chain(new_closes)
        .copied()
        .collect();
    let n = closes.len();
    // Absolute position of `closes[i]` in the ticker's history is `first + i`.
    // A state holds either every earlier close (first = 0) or the last
    // LOOKBACK of them, which is all any window below reaches back.
    let first = state.bars_before as usize - skip;

    let seeds = state.ema;
    let ema12 = ema(new_closes, 12, seeds.map(|s| s.ema_12));
    let ema26 = ema(new_closes, 26, seeds.map(|s| s.ema_26));
    let macd: Vec<f64> = ema12.iter().zip(&ema26).map(|(a, b)| a - b).collect();
    let signal = ema(&macd, 9, seeds.map(|s| s.macd_signal));
    let returns: Vec<Option<f64>> = (0..n)
        .map(|i| {
            if i == 0 {
                None
            } else {
                finite(closes[i] / closes[i - 1] - 1.0)
            }
        })
        .collect();

    // Close-to-close gains and losses (as positive numbers), once per bar.
    let mut gains = vec![0.0f64; n];
    let mut losses = vec![0.0f64; n];
    for i in 1..n {
        let change = closes[i] - closes[i - 1];
        if change > 0.0 {
            gains[i] = change;
        } else {
            losses[i] = -change;
        }
    }

    let mut out = vec![Indicators::default(); n_new];
    for (j, row) in out.iter_mut().enumerate() {
        let i = skip + j;
        let position = first + i;
        // The three SMA windows end at i and nest: sum the last 7 closes,
        // extend to 14, then to 20, each window still summed from its values.
        let mut sum = 0.0;
        for k in 0..SMA_WINDOWS[2].min(position + 1) {
            sum += closes[i - k];
            match k + 1 {
                7 => row.sma_7 = finite(sum / 7.0),
                14 => row.sma_14 = finite(sum / 14.0),
                20 => row.sma_20 = finite(sum / 20.0),
                _ => {}
            }
        }
        row.ema_12 = finite(ema12[j]);
        row.macd = finite(macd[j]);
        row.macd_signal = finite(signal[j]);
        row.macd_histogram = finite(macd[j] - signal[j]);
        if position >= RSI_PERIOD {
            row.rsi = rsi(
                &gains[i + 1 - RSI_PERIOD..=i],
                &losses[i + 1 - RSI_PERIOD..=i],
            );
        }
        row.bb_middle = row.sma_20;
        if let Some(mid) = row.sma_20
            && let Some(sd) = sample_std_around(&closes[i + 1 - BB_WINDOW..=i], mid)
        {
            row.bb_upper = finite(mid + BB_WIDTH * sd);
            row.bb_lower = finite(mid - BB_WIDTH * sd);
        }
        // The first close of a resumed computation is context: its return
        // belongs to an earlier bar, so no new bar's return is `returns[0]`
        // unless it is the history's first bar.
        row.daily_return = returns[i];
        row.daily_return_pct = returns[i].and_then(|r| finite(100.0 * r));
        if position >= VOLATILITY_WINDOW {
            row.volatility_20d = volatility(&returns[i + 1 - VOLATILITY_WINDOW..=i]);
        }
    }
    let emas = (0..n_new)
        .map(|j| EmaState {
            ema_12: ema12[j],
            ema_26: ema26[j],
            macd_signal: signal[j],
        })
        .collect();
    (out, emas)
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// EMA with alpha = 2/(span+1), seeded with the first value
/// (pandas `ewm(span, adjust=False)`), or continuing from `previous`, the
/// EMA after the bar before `values[0]`.
fn ema(values: &[f64], span: usize, previous: Option<f64>) -> Vec<f64> {
    let alpha = 2.0 / (span as f64 + 1.0);
    let mut out = Vec::with_capacity(values.len());
    let mut prev = previous;
    for &x in values {
        let next = match prev {
            None => x,
            Some(p) => (1.0 - alpha) * p + alpha * x,
        };
        out.push(next);
        prev = Some(next);
    }
    out
}

/// Sample standard deviation (n−1) of `window` around its mean `mean`
/// (the second pass of the two-pass formula; the mean is the window's SMA).
fn sample_std_around(window: &[f64], mean: f64) -> Option<f64> {
    if window.len() < 2 {
        return None;
    }
    let ss: f64 = window.iter().map(|x| (x - mean) * (x - mean)).sum();
    finite((ss / (window.len() - 1) as f64).sqrt())
}

/// RSI with simple averages over the last 14 close-to-close changes (the
/// gains and losses of the window).
fn rsi(gains: &[f64], losses: &[f64]) -> Option<f64> {
    let g = gains.iter().sum::<f64>() / RSI_PERIOD as f64;
    let l = losses.iter().sum::<f64>() / RSI_PERIOD as f64;
    if l == 0.0 {
        Some(if g == 0.0 { 50.0 } else { 100.0 })
    } else {
        finite(100.0 - 100.0 / (1.0 + g / l))
    }
}

/// 100 × sample standard deviation of 20 daily returns.
fn volatility(returns: &[Option<f64>]) -> Option<f64> {
    let mut window = [0.0f64; VOLATILITY_WINDOW];
    for (slot, r) in window.iter_mut().zip(returns) {
        *slot = (*r)?;
    }
    let mean = window.iter().sum::<f64>() / VOLATILITY_WINDOW as f64;
    sample_std_around(&window, mean).and_then(|sd| finite(100.0 * sd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-worked values on a short series (computed on paper, not by this code).
    #[test]
    fn hand_worked_small_series() {
        let closes = [10.0, 11.0, 12.0, 11.0, 13.0, 14.0, 13.0, 15.0];
        let ind = compute_indicators(&closes);
        // sma_7 on bar 7 (index 6): (10+11+12+11+13+14+13)/7 = 84/7 = 12
        assert_eq!(ind[5].sma_7, None);
        assert_eq!(ind[6].sma_7, Some(12.0));
        // index 7: (11+12+11+13+14+13+15)/7 = 89/7
        assert!((ind[7].sma_7.unwrap() - 89.0 / 7.0).abs() < 1e-12);
        // ema_12 seeded with the first close: ema1 = 10 + 2/13 * (11 - 10)
        assert_eq!(ind[0].ema_12, Some(10.0));
        assert!((ind[1].ema_12.unwrap() - (10.0 + 2.0 / 13.0)).abs() < 1e-12);
        // macd starts at 0, signal seeded with it.
        assert_eq!(
            (ind[0].macd, ind[0].macd_signal, ind[0].macd_histogram),
            (Some(0.0), Some(0.0), Some(0.0))
        );
        // ema26_1 = 10 + 2/27; macd_1 = 2/13 - 2/27; signal_1 = 0.2 * macd_1
        let macd1 = 2.0 / 13.0 - 2.0 / 27.0;
        assert!((ind[1].macd.unwrap() - macd1).abs() < 1e-12);
        assert!((ind[1].macd_signal.unwrap() - 0.2 * macd1).abs() < 1e-12);
        assert!((ind[1].macd_histogram.unwrap() - 0.8 * macd1).abs() < 1e-12);
        // Returns: 11/10 - 1 = 0.1
        assert_eq!(ind[0].daily_return, None);
        assert!((ind[1].daily_return.unwrap() - 0.1).abs() < 1e-15);
        assert!((ind[1].daily_return_pct.unwrap() - 10.0).abs() < 1e-12);
        // Too short for the 14/20 windows.
        assert!(ind.iter().all(|r| r.sma_14.is_none()
            && r.rsi.is_none()
            && r.bb_upper.is_none()
            && r.volatility_20d.is_none()));
    }

    #[test]
    fn rsi_edge_cases() {
        // 15 equal closes: 14 zero changes → G = L = 0 → 50.
        let flat = compute_indicators(&[5.0; 15]);
        assert_eq!(flat[13].rsi, None);
        assert_eq!(flat[14].rsi, Some(50.0));
        // Only rises → L = 0 < G → 100.
        let up: Vec<f64> = (0..15).map(|i| 1.0 + i as f64).collect();
        assert_eq!(compute_indicators(&up)[14].rsi, Some(100.0));
        // Only falls → G = 0 → 0.
        let down: Vec<f64> = (0..15).map(|i| 100.0 - i as f64).collect();
        assert_eq!(compute_indicators(&down)[14].rsi, Some(0.0));
        // 7 rises of 2 and 7 falls of 1: G = 1, L = 0.5 → 100 - 100/3.
        let mut zig = vec![50.0];
        for k in 0..14 {
            let last = *zig.last().unwrap();
            zig.push(if k % 2 == 0 { last + 2.0 } else { last - 1.0 });
        }
        let r = compute_indicators(&zig)[14].rsi.unwrap();
        assert!((r - (100.0 - 100.0 / 3.0)).abs() < 1e-12, "{r}");
    }

    #[test]
    fn flat_series_has_zero_spread_exactly() {
        let ind = compute_indicators(&[42.5; 25]);
        assert_eq!(ind[18].bb_upper, None);
        assert_eq!(
            (ind[19].bb_upper, ind[19].bb_middle, ind[19].bb_lower),
            (Some(42.5), Some(42.5), Some(42.5))
        );
        assert_eq!(ind[19].volatility_20d, None, "20 returns need 21 bars");
        assert_eq!(ind[20].volatility_20d, Some(0.0));
    }

    #[test]
    fn zero_close_gives_null_returns_not_infinity() {
        let mut closes = vec![1.0; 30];
        closes[10] = 0.0;
        let ind = compute_indicators(&closes);
        assert_eq!(ind[10].daily_return, Some(-1.0));
        assert_eq!(ind[11].daily_return, None, "division by a zero close");
        // The volatility window containing the missing return is null too.
        assert_eq!(ind[25].volatility_20d, None);
        assert!(
            ind.iter()
                .flat_map(|r| r.values())
                .flatten()
                .all(f64::is_finite)
        );
    }

    /// Resuming after any bar, from the state a full computation had there,
    /// gives the same bits as the full computation: early bars (windows not
    /// yet full), a zero close (missing returns), a flat run (zero spread).
    #[test]
    fn resuming_after_any_bar_gives_the_full_computation_bit_for_bit() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut closes: Vec<f64> = (0..90)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                50.0 + (rng % 10_000) as f64 / 97.0
            })
            .collect();
        closes[30] = 0.0;
        closes[50..60].fill(42.0);
        let full = compute_indicators(&closes);
        let (_, emas) = resume_indicators(&IndicatorState::default(), &closes);
        let bits = |r: &Indicators| r.values().map(|v| v.map(f64::to_bits));
        for split in 0..closes.len() {
            let recent = closes[split.saturating_sub(LOOKBACK)..split].to_vec();
            let ema = split.checked_sub(1).map(|i| emas[i]);
            let state = IndicatorState::new(split as u64, recent, ema).unwrap();
            let (resumed, resumed_emas) = resume_indicators(&state, &closes[split..]);
            for (i, row) in resumed.iter().enumerate() {
                assert_eq!(bits(row), bits(&full[split + i]), "split {split}, bar {i}");
            }
            assert_eq!(resumed_emas, emas[split..], "split {split}");
        }
        // A state whose closes do not fit its position is refused.
        assert_eq!(IndicatorState::new(25, vec![1.0; 19], Some(emas[24])), None);
        assert_eq!(IndicatorState::new(3, vec![1.0; 3], None), None);
    }

    #[test]
    fn empty_and_single_bar_series() {
        assert!(compute_indicators(&[]).is_empty());
        let one = compute_indicators(&[3.0]);
        assert_eq!(one[0].ema_12, Some(3.0));
        assert_eq!(one[0].sma_7, None);
    }
}
