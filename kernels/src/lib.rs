//! Vigil's compute kernels: pure arithmetic over columns of state, with a portable scalar path and
//! hand-written SIMD paths chosen once at run time. No I/O, no allocation on the hot path.
//!
//! ```
//! use vigil_kernels::isa::Isa;
//! use vigil_kernels::zscore::{ZParams, ZScore, ZSlots};
//!
//! let params = ZParams::new(60.0, 3, 1e-3, 4.0).unwrap();
//! let kernel = ZScore::new(Isa::best(), params).unwrap();
//! let mut slots = ZSlots::new(4); // e.g. one pump: pressure, flow, temperature, vibration
//! let mut score = [0.0; 4];
//! for _ in 0..10 {
//!     kernel.update(&mut slots, 0, &[5.0, 20.0, 60.0, 0.1], &mut score);
//! }
//! kernel.update(&mut slots, 0, &[9.0, 20.0, 60.0, 0.1], &mut score);
//! assert!(score[0] > 100.0 && score[1] == 0.0);
//! ```

pub mod bandwidth;
pub mod baseline;
pub mod iforest;
pub mod isa;
pub mod likelihood;
pub mod pca;
pub mod rng;
pub mod sequence;
pub mod zscore;
