//! Any byte sequence given to the model loader gives a model or an error, never a panic,
//! a hang or an exhausted memory; a loaded model predicts without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sagestep::model::{self, Matrix, TreeLimit};

fuzz_target!(|data: &[u8]| {
    if let Ok(loaded) = model::load(data) {
        let forest = &loaded.forest;
        let cols = forest.num_feature.clamp(1, 64);
        let rows: Vec<f32> = (0..cols * 3).map(|i| if i % 5 == 0 { f32::NAN } else { i as f32 * 0.37 - 3.0 }).collect();
        let _ = forest.predict(&Matrix::new(&rows, cols), TreeLimit::All);
        let _ = forest.predict(&Matrix::new(&rows, cols), TreeLimit::SageMaker);
        let _ = model::to_ubjson(forest);
    }
});
