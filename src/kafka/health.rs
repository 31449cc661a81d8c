//! Whether the scorer reaches its cluster and whether its alerts are being delivered: what
//! `/readyz`, the metrics and the log say while a broker is away. Fed by librdkafka's statistics
//! (every [`STATS_INTERVAL_MS`]) of the consumer and the producer, and by the delivery reports.

use rdkafka::statistics::Statistics;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often librdkafka reports its statistics to the clients' contexts.
pub const STATS_INTERVAL_MS: &str = "1000";

/// Undelivered alerts or dead letters with no delivery report for this long are stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);

/// What the consumer and the producer last said of the cluster. All times are milliseconds since
/// `epoch`, plus one (0: not set).
#[derive(Debug)]
pub struct Health {
    epoch: Instant,
    /// Since when the consumer has had no broker connection up (0: it has one, or never had).
    consumer_down: AtomicU64,
    /// Whether the consumer ever had a broker connection up.
    consumer_seen_up: AtomicBool,
    /// Messages in the producer's queues, not yet acknowledged (its last statistics).
    undelivered: AtomicU64,
    /// The last delivery report, or when the producer's queue last became non-empty.
    progress: AtomicU64,
    /// Whether the current stall has been logged.
    stuck_logged: AtomicBool,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            epoch: Instant::now(),
            consumer_down: AtomicU64::new(0),
            consumer_seen_up: AtomicBool::new(false),
            undelivered: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            stuck_logged: AtomicBool::new(false),
        }
    }
}

impl Health {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn since(&self, at: u64) -> Duration {
        Duration::from_millis(self.now().saturating_sub(at))
    }

    /// The consumer's statistics: is any broker connection up?
    pub fn consumer_stats(&self, stats: &Statistics) {
        self.consumer_up(stats.brokers.values().any(|b| b.state == "UP"));
    }

    /// Whether the consumer has a broker connection up.
    fn consumer_up(&self, up: bool) {
        let down = self.consumer_down.load(Ordering::Relaxed);
        if up {
            self.consumer_seen_up.store(true, Ordering::Relaxed);
            if down != 0 {
                self.consumer_down.store(0, Ordering::Relaxed);
                tracing::info!(
                    "the cluster is reachable again after {} s",
                    self.since(down).as_secs()
                );
            }
        } else if down == 0 && self.consumer_seen_up.load(Ordering::Relaxed) {
            self.consumer_down.store(self.now(), Ordering::Relaxed);
            tracing::warn!(
                "lost the connection to every broker: waiting for the cluster (/readyz reports \
                 not ready meanwhile)"
            );
        }
    }

    /// The producer's statistics: how many messages wait for the broker's acknowledgement.
    pub fn producer_stats(&self, stats: &Statistics) {
        self.producer_queue(stats.msg_cnt);
    }

    /// `waiting` messages in the producer's queues.
    fn producer_queue(&self, waiting: u64) {
        let before = self.undelivered.swap(waiting, Ordering::Relaxed);
        if before == 0 && waiting > 0 {
            // The stall clock starts when something is first waiting.
            self.progress.store(self.now(), Ordering::Relaxed);
        }
        match self.stuck_for() {
            Some(d) if !self.stuck_logged.swap(true, Ordering::Relaxed) => tracing::warn!(
                "{} alerts or dead letters undelivered, none acknowledged for {} s: the broker \
                 is away or refuses them (/readyz reports not ready meanwhile)",
                waiting,
                d.as_secs()
            ),
            None if waiting == 0 && self.stuck_logged.swap(false, Ordering::Relaxed) => {
                tracing::info!("every undelivered alert is delivered again")
            }
            _ => {}
        }
    }

    /// A delivery report arrived (delivered or failed for good).
    pub fn delivered(&self) {
        self.progress.store(self.now(), Ordering::Relaxed);
    }

    /// How long the consumer has had no broker, if it has none now.
    pub fn broker_down_for(&self) -> Option<Duration> {
        match self.consumer_down.load(Ordering::Relaxed) {
            0 => None,
            at => Some(self.since(at)),
        }
    }

    /// Messages waiting for the broker's acknowledgement.
    pub fn undelivered(&self) -> u64 {
        self.undelivered.load(Ordering::Relaxed)
    }

    /// How long deliveries have made no progress while messages wait, once that is
    /// [`STUCK_AFTER`] or more.
    pub fn stuck_for(&self) -> Option<Duration> {
        if self.undelivered() == 0 {
            return None;
        }
        let d = self.since(self.progress.load(Ordering::Relaxed));
        (d >= STUCK_AFTER).then_some(d)
    }

    /// Why the scorer is not ready, if it is not for the cluster's sake.
    pub fn not_ready(&self) -> Option<String> {
        if let Some(d) = self.broker_down_for() {
            return Some(format!(
                "not ready: no broker reachable for {} s\n",
                d.as_secs()
            ));
        }
        self.stuck_for().map(|d| {
            format!(
                "not ready: {} alerts or dead letters undelivered, none acknowledged for {} s\n",
                self.undelivered(),
                d.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_that_loses_every_broker_is_not_ready_until_one_is_back() {
        let h = Health::default();
        // Never connected yet: not called down (the assignment tells readiness then).
        h.consumer_up(false);
        assert!(h.not_ready().is_none());
        h.consumer_up(true);
        assert!(h.not_ready().is_none());
        h.consumer_up(false);
        let why = h.not_ready().expect("not ready");
        assert!(why.contains("no broker reachable"), "{why}");
        assert!(h.broker_down_for().is_some());
        h.consumer_up(true);
        assert!(h.not_ready().is_none());
        assert!(h.broker_down_for().is_none());
    }

    #[test]
    fn deliveries_that_make_no_progress_are_stuck_after_a_while() {
        // A clock that started long enough ago for a stall to count.
        let h = Health {
            epoch: Instant::now() - STUCK_AFTER - Duration::from_secs(1),
            ..Health::default()
        };
        h.producer_queue(3);
        assert_eq!(h.undelivered(), 3);
        assert!(h.stuck_for().is_none(), "just queued");
        // Nothing delivered since the epoch.
        h.progress.store(1, Ordering::Relaxed);
        let why = h.not_ready().expect("stuck");
        assert!(
            why.contains("3 alerts or dead letters undelivered"),
            "{why}"
        );
        h.delivered();
        assert!(h.stuck_for().is_none(), "a delivery is progress");
        h.progress.store(1, Ordering::Relaxed);
        h.producer_queue(0);
        assert!(h.not_ready().is_none(), "nothing waits");
    }
}
