//! Where records come from. Replay reads files ([`file`]); `vigil score` reads
//! Kafka topics ([`kafka`]) or an MQTT broker ([`mqtt`]); every source feeds the same pipeline.

pub mod file;
pub mod kafka;
pub mod mqtt;

use crate::decode::Input;
use crossbeam_channel::{SendTimeoutError, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Sends `input` down the pipeline: waits for room (backpressure) while watching `stop`, calling
/// `waiting` every 100 ms meanwhile. A stop while waiting drops the input (it was never
/// acknowledged, so it is read again). If the pipeline has stopped, says so and sets `stop`.
pub(crate) fn send(
    out: &Sender<Input>,
    mut input: Input,
    stop: &AtomicBool,
    mut waiting: impl FnMut(),
) {
    loop {
        match out.send_timeout(input, Duration::from_millis(100)) {
            Ok(()) => return,
            Err(SendTimeoutError::Timeout(back)) if !stop.load(Ordering::Relaxed) => {
                input = back;
                waiting();
            }
            Err(SendTimeoutError::Timeout(_)) => return,
            Err(SendTimeoutError::Disconnected(_)) => {
                tracing::error!("the pipeline stopped; stopping the source");
                stop.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}
