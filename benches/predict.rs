//! Rust side of benches/predict.sh: time `Forest::predict` on the model and rows that
//! benches/predict.py made, at 1, 1,000 and 100,000 rows.

use std::time::Instant;

use sagestep::model::{self, Matrix, TreeLimit};

fn main() {
    let work = std::env::args().nth(1).unwrap_or_else(|| "target/bench/predict".into());
    let work = std::path::Path::new(&work);
    let Ok(model_bytes) = std::fs::read(work.join("xgboost-model")) else {
        eprintln!("no model in {}: run benches/predict.sh", work.display());
        return;
    };
    let forest = model::load(&model_bytes).expect("the model loads").forest;
    let raw = std::fs::read(work.join("rows.f32")).expect("rows.f32");
    let rows: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let cols = forest.num_feature;

    // Same predictions as Python's, to the bit.
    if let Ok(text) = std::fs::read_to_string(work.join("python-pred.csv")) {
        let python: Vec<f32> = text.lines().map(|l| l.parse().unwrap()).collect();
        let ours = forest.predict(&Matrix::new(&rows[..1000 * cols], cols), TreeLimit::All);
        let same = ours.iter().zip(&python).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
        println!("agreement with python on 1,000 rows: {same}/1000 bit-identical");
    }
    for (n, repeats) in [(1usize, 200_000usize), (1_000, 2_000), (100_000, 20)] {
        let batch = Matrix::new(&rows[..n * cols], cols);
        std::hint::black_box(forest.predict(&batch, TreeLimit::All));
        let start = Instant::now();
        for _ in 0..repeats {
            std::hint::black_box(forest.predict(std::hint::black_box(&batch), TreeLimit::All));
        }
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "sagestep Forest::predict              {n:>7} rows: {:>14} rows/s  ({:.1} us per call)",
            format_thousands((n * repeats) as f64 / seconds),
            seconds / repeats as f64 * 1e6
        );
    }
}

fn format_thousands(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
