//! Isolation-forest models: their features, their file format, training from recordings, and
//! import from ONNX. Scoring and growing trees are compute kernels (`vigil_kernels::iforest`).

pub mod features;
pub mod model;
pub mod onnx;

use rayon::prelude::*;
use vigil_kernels::iforest::{Forest, Scorer};

/// Rows per rayon task when scoring a large offline batch.
const PARALLEL_ROWS: usize = 16_384;

/// Scores many rows (row-major, `forest.n_features()` each) on every core with rayon: for
/// offline work (training thresholds, evaluation). The stream scores a shard's batch on its own
/// thread instead. The result is the same as one [`Scorer::score`] call.
pub fn score_parallel(scorer: Scorer, forest: &Forest, x: &[f32], out: &mut [f32]) {
    let f = forest.n_features();
    x.par_chunks(PARALLEL_ROWS * f)
        .zip(out.par_chunks_mut(PARALLEL_ROWS))
        .for_each(|(x, out)| scorer.score(forest, x, out));
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_kernels::iforest::train::{train, TrainParams};
    use vigil_kernels::isa::Isa;

    #[test]
    fn parallel_scoring_equals_one_call() {
        let f = 3;
        let x: Vec<f32> = (0..100_003 * f)
            .map(|i| ((i * 7919) % 1013) as f32 * 0.01)
            .collect();
        let forest = train(&x[..3000 * f], f, &TrainParams::default()).expect("trains");
        let scorer = Scorer::new(Isa::best(), &forest).expect("available");
        let (mut a, mut b) = (vec![0.0; 100_003], vec![0.0; 100_003]);
        scorer.score(&forest, &x, &mut a);
        score_parallel(scorer, &forest, &x, &mut b);
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}
