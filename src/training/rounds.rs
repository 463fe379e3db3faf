//! The round loop every engine runs under: XGBoost's per-round metric lines, early stopping
//! as `xgboost.callback.EarlyStopping(save_best=True)` (the built-in's setting), a
//! checkpoint every few rounds, and SIGTERM between rounds.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::checkpoint;
use super::engine::{Engine, Scores};
use super::error::Error;

/// How to run the rounds.
pub struct Plan<'a> {
    pub num_round: usize,
    pub checkpoint_every: usize,
    pub checkpoint_dir: &'a Path,
    /// `(rounds, maximize)`: stop after this many rounds without improvement of the last
    /// validation metric.
    pub early_stopping: Option<(usize, bool)>,
    pub stop: Arc<AtomicBool>,
    /// Write checkpoints (on several hosts, the first host does).
    pub save_checkpoints: bool,
}

/// How the rounds ended.
pub struct Ran {
    /// Per round trained in this run: its iteration and metric values.
    pub history: Vec<(usize, Scores)>,
    /// `(best_iteration, best_score)` as early stopping recorded them.
    pub best: Option<(usize, f64)>,
    pub stopped_by_signal: bool,
}

impl Ran {
    /// The metric values of `iteration`, if it ran in this run.
    pub fn scores_of(&self, iteration: usize) -> Option<&Scores> {
        self.history.iter().find(|(i, _)| *i == iteration).map(|(_, s)| s)
    }
}

/// XGBoost's `EarlyStopping` on one metric. Scores are compared as the Python callback sees
/// them: the value printed with 17 decimals and parsed back.
#[derive(Debug)]
pub struct EarlyStop {
    rounds: usize,
    maximize: bool,
    best: Option<(usize, f64)>,
    since_best: usize,
}

impl EarlyStop {
    pub fn new(rounds: usize, maximize: bool) -> Self {
        Self { rounds, maximize, best: None, since_best: 0 }
    }

    /// Record a round's score; true when training should stop.
    pub fn observe(&mut self, iteration: usize, value: f64) -> bool {
        let score: f64 = format!("{value:.17}").parse().unwrap_or(value);
        let improved = match self.best {
            None => true,
            Some((_, best)) => {
                if self.maximize {
                    score > best
                } else {
                    best > score
                }
            }
        };
        if improved {
            self.best = Some((iteration, score));
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        self.since_best >= self.rounds
    }

    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }
}

/// Train `engine` to `plan.num_round` rounds (or until early stopping or SIGTERM), printing
/// each round's metric line and checkpointing.
pub fn run(engine: &mut dyn Engine, plan: &Plan<'_>) -> Result<Ran, Error> {
    let mut early = plan.early_stopping.map(|(rounds, maximize)| EarlyStop::new(rounds, maximize));
    let mut ran = Ran { history: Vec::new(), best: None, stopped_by_signal: false };
    let every = plan.checkpoint_every.max(1);
    let mut finished = false;
    while engine.rounds() < plan.num_round && !finished && !ran.stopped_by_signal {
        let done = engine.rounds();
        let chunk = (every - done % every).min(plan.num_round - done).min(engine.max_chunk());
        let stop = &plan.stop;
        let mut on_round = |iteration: usize, scores: &Scores| {
            let mut line = format!("[{iteration}]");
            for (set, metric, value) in scores {
                line.push_str(&format!("\t{set}-{metric}:{value:.5}"));
            }
            println!("{line}");
            let _ = std::io::stdout().flush();
            ran.history.push((iteration, scores.clone()));
            if let Some(e) = &mut early
                && let Some((_, _, value)) = scores.iter().rfind(|(set, _, _)| set == "validation")
                && e.observe(iteration, *value)
            {
                finished = true;
                return ControlFlow::Break(());
            }
            if stop.load(Ordering::SeqCst) {
                ran.stopped_by_signal = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        };
        engine.train(chunk, &mut on_round)?;
        let rounds = engine.rounds();
        if plan.save_checkpoints
            && (rounds.is_multiple_of(every) || rounds >= plan.num_round || finished || ran.stopped_by_signal)
        {
            checkpoint::save(plan.checkpoint_dir, rounds, &engine.checkpoint()?)?;
        }
    }
    if ran.stopped_by_signal {
        tracing::warn!("SIGTERM: stopped between rounds after a checkpoint");
    }
    ran.best = early.as_ref().and_then(EarlyStop::best);
    Ok(ran)
}

/// Python's `repr` of a float, as XGBoost's callback writes `best_score` (`str(float)`).
pub fn python_float(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    // The shortest digits that round-trip, as `d.ddde±x`.
    let sci = format!("{v:e}");
    let (mantissa, exponent) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{text}")
    } else {
        let rest = if digits.len() > 1 { format!(".{}", &digits[1..]) } else { String::new() };
        let esign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{}{rest}e{esign}{:02}", &digits[..1], exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_prints_them() {
        for (v, text) in [
            (2.868_406_129_312_515, "2.868406129312515"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e16, "1.5e+16"),
            (123.0, "123.0"),
            (-0.25, "-0.25"),
            (1e15, "1000000000000000.0"),
            (0.0, "0.0"),
        ] {
            assert_eq!(python_float(v), text);
        }
    }

    #[test]
    fn early_stopping_counts_rounds_since_the_best() {
        let mut e = EarlyStop::new(2, false);
        assert!(!e.observe(0, 3.0));
        assert!(!e.observe(1, 2.0));
        assert!(!e.observe(2, 2.0), "equal is not better");
        assert!(e.observe(3, 2.5));
        assert_eq!(e.best(), Some((1, 2.0)));
    }
}
