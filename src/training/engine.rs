//! What a boosting engine offers the training job: rounds with their metric values, the
//! model so far, and checkpoints. Two engines serve: our quantized `hist` trainer (XGBoost's
//! cuts and arithmetic; `tree_method` `hist` and `auto`) and hessboost (`exact`, `approx`,
//! DART, `gblinear`, and objectives the hist trainer leaves to it).

use std::ops::ControlFlow;

use super::error::Error;
use crate::model::forest::Forest;

/// One round's metric values: `(data set, metric, value)` in XGBoost's order.
pub type Scores = Vec<(String, String, f64)>;

pub trait Engine {
    /// Rounds in the model so far.
    fn rounds(&self) -> usize;

    /// Run up to `n` more rounds; `on_round(iteration, scores)` after each may stop early.
    fn train(
        &mut self,
        n: usize,
        on_round: &mut (dyn FnMut(usize, &Scores) -> ControlFlow<()> + Send),
    ) -> Result<(), Error>;

    /// The model so far, as XGBoost would save it.
    fn forest(&self) -> Result<Forest, Error>;

    /// The model so far in the engine's checkpoint format (continued exactly on resume).
    fn checkpoint(&self) -> Result<Vec<u8>, Error>;

    /// The most rounds to run between two points where a checkpoint may be written.
    fn max_chunk(&self) -> usize {
        usize::MAX
    }
}
