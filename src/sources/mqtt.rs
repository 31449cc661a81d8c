//! Devices over MQTT: a persistent session on the broker, QoS 1, and each message acknowledged
//! only once every alert derived from it is durable (at least once, as the Kafka source).
//!
//! Two threads. `vigil-mqtt` drives the client's connection (reconnecting on its own) and hands
//! each incoming message, tagged with the connection it came on, to the source thread. The source
//! thread batches messages as tickets of the [`AckTracker`], one position per message in arrival
//! order, sends them down the pipeline, and acknowledges (PUBACK) the messages whose position the
//! tracker has passed, in arrival order. A message from an earlier connection is never
//! acknowledged on a later one: the broker sends it again (that is what the session is for).

use crate::ack::AckTracker;
use crate::config::MqttConfig;
use crate::decode::{Input, MessageBatch};
use crate::kafka::ConsumerStatus;
use crate::record::{Interner, Origin, SourceId, Ticket, TopicFields};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rumqttc::{Client, Connection, Event, MqttOptions, Outgoing, Packet, Publish, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most messages one ticket holds.
const MAX_BATCH: usize = 4096;
/// Messages the connection thread may hand over before it waits for the source thread (the
/// broker then holds the rest: it sends no more than its in-flight limit unacknowledged).
const HANDOVER: usize = 16_384;
/// Requests (acknowledgements, subscriptions) the client may queue for its connection.
const REQUESTS: usize = 65_536;
/// Largest payload accepted from the broker.
const MAX_PACKET: usize = 1 << 20;

/// What the connection thread hands to the source thread: a message, and the connection
/// (counted from 1) it arrived on.
type Incoming = (u64, Publish);

/// Reads records from an MQTT broker. See the module docs.
pub struct MqttSource {
    config: MqttConfig,
    client: Client,
    connection: Option<Connection>,
    sources: Interner,
    /// Per topic seen: its source id and what its layout says (see [`MqttSource::topic`]).
    topics: HashMap<String, (SourceId, Option<Arc<TopicFields>>)>,
    /// The session's own source id: its tickets' one "partition".
    session: SourceId,
    tracker: Arc<AckTracker>,
    status: Arc<Mutex<ConsumerStatus>>,
    /// The current connection, counted from 1 (0: never connected).
    generation: Arc<AtomicU64>,
    next_ticket: Ticket,
}

impl std::fmt::Debug for MqttSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSource")
            .field("config", &self.config)
            .field("next_ticket", &self.next_ticket)
            .finish_non_exhaustive()
    }
}

impl MqttSource {
    /// Sets up the client (it connects once [`MqttSource::run`] starts).
    pub fn new(
        config: &MqttConfig,
        mut sources: Interner,
        tracker: Arc<AckTracker>,
        status: Arc<Mutex<ConsumerStatus>>,
    ) -> MqttSource {
        let (host, port) = &config.broker;
        let mut options = MqttOptions::new(config.client_id.clone(), host.clone(), *port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(config.keep_alive)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_request_channel_capacity(REQUESTS);
        if let Some((user, password)) = &config.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        let (client, connection) = Client::new(options, REQUESTS);
        let session = sources.intern(&format!("mqtt://{host}:{port}"));
        MqttSource {
            config: config.clone(),
            client,
            connection: Some(connection),
            sources,
            topics: HashMap::new(),
            session,
            tracker,
            status,
            generation: Arc::new(AtomicU64::new(0)),
            next_ticket: 1,
        }
    }

    /// Reads until `stop`, sending batches to `out`; then waits for `drained` (the pipeline has
    /// finished and the sink has flushed), acknowledges what is done and disconnects.
    pub fn run(
        mut self,
        out: Sender<Input>,
        stop: &AtomicBool,
        drained: Receiver<()>,
    ) -> Result<(), String> {
        let (tx, rx) = crossbeam_channel::bounded(HANDOVER);
        let closing = Arc::new(AtomicBool::new(false));
        let network = {
            let connection = self.connection.take().ok_or("the source runs once")?;
            let (client, topics) = (self.client.clone(), self.config.topics.clone());
            let (status, generation, closing) = (
                self.status.clone(),
                self.generation.clone(),
                closing.clone(),
            );
            let broker = format!("{}:{}", self.config.broker.0, self.config.broker.1);
            std::thread::Builder::new()
                .name("vigil-mqtt".into())
                .spawn(move || {
                    drive(
                        connection,
                        &client,
                        &topics,
                        &broker,
                        &tx,
                        &status,
                        &generation,
                        &closing,
                    )
                })
                .map_err(|e| format!("cannot start the MQTT thread: {e}"))?
        };
        // Messages sent down the pipeline and not yet acknowledged, in arrival order.
        let mut unacked: VecDeque<(u64, u64, Publish)> = VecDeque::new();
        let mut next_position = 1u64;
        while !stop.load(Ordering::Relaxed) {
            let batch = self.collect(&rx, &mut unacked, &mut next_position);
            if let Some(batch) = batch {
                super::send(&out, Input::Messages(batch), stop, || {
                    self.acknowledge(&mut unacked)
                });
            }
            self.acknowledge(&mut unacked);
        }
        drop(out);
        // Everything in flight finishes first; then what is done is acknowledged.
        let _ = drained.recv_timeout(Duration::from_secs(600));
        self.acknowledge(&mut unacked);
        if !unacked.is_empty() {
            tracing::info!(
                "{} messages not acknowledged: the broker sends them again",
                unacked.len()
            );
        }
        closing.store(true, Ordering::Relaxed);
        // The disconnect queues behind the acknowledgements, so they reach the broker first.
        let _ = self.client.try_disconnect();
        drop(rx);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !network.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if network.is_finished() {
            let _ = network.join();
        } else {
            tracing::warn!("the MQTT connection did not close within 5 s");
        }
        Ok(())
    }

    /// One ticket's worth of messages: those waiting, or what arrives within 20 ms.
    fn collect(
        &mut self,
        rx: &Receiver<Incoming>,
        unacked: &mut VecDeque<(u64, u64, Publish)>,
        next_position: &mut u64,
    ) -> Option<MessageBatch> {
        let deadline = Instant::now() + Duration::from_millis(20);
        let mut batch = MessageBatch::new(Instant::now());
        let mut read_at = None;
        while batch.messages.len() < MAX_BATCH {
            let got = if batch.messages.is_empty() {
                rx.recv_deadline(deadline)
            } else {
                rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            };
            let Ok((generation, publish)) = got else {
                break;
            };
            read_at.get_or_insert_with(Instant::now);
            let position = *next_position;
            *next_position += 1;
            let (source, topic) = self.topic(&publish.topic);
            batch.push(
                Origin { source, position },
                &publish.payload,
                0,
                false,
                topic,
            );
            if publish.qos != QoS::AtMostOnce {
                unacked.push_back((position, generation, publish));
            }
        }
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_poll = Some(Instant::now());
        let last = batch.messages.last()?.origin.position;
        batch.ticket = self.next_ticket;
        self.next_ticket += 1;
        self.tracker
            .register(batch.ticket, vec![(self.session, last as i64)]);
        batch.read_at = read_at.unwrap_or_else(Instant::now);
        batch.sent_at = Instant::now();
        Some(batch)
    }

    /// The source id of `topic` (`mqtt:<topic>`: a dead letter names where it came from) and what
    /// the first matching layout says of its records; worked out once per topic.
    fn topic(&mut self, topic: &str) -> (SourceId, Option<Arc<TopicFields>>) {
        if let Some(known) = self.topics.get(topic) {
            return known.clone();
        }
        let source = self.sources.intern(&format!("mqtt:{topic}"));
        let fields = self.config.layouts.iter().find_map(|l| l.fields(topic));
        let known = (source, fields.map(Arc::new));
        self.topics.insert(topic.to_string(), known.clone());
        known
    }

    /// Acknowledges, in arrival order, the messages whose alerts are all durable.
    fn acknowledge(&self, unacked: &mut VecDeque<(u64, u64, Publish)>) {
        let Some(done_below) = self
            .tracker
            .take_committable()
            .into_iter()
            .filter(|(s, _)| *s == self.session)
            .map(|(_, next)| next as u64)
            .max()
        else {
            return;
        };
        let current = self.generation.load(Ordering::Relaxed);
        while unacked.front().is_some_and(|m| m.0 < done_below) {
            let Some((_, generation, publish)) = unacked.pop_front() else {
                break;
            };
            if generation == current && self.client.try_ack(&publish).is_err() {
                // The request queue is full or closed: the broker sends it again.
                tracing::debug!("an acknowledgement could not be queued");
            }
        }
    }
}

/// The connection thread: keeps the connection up, subscribes on every connect, hands messages
/// over, and logs a lost broker once per outage.
#[allow(clippy::too_many_arguments)]
fn drive(
    mut connection: Connection,
    client: &Client,
    topics: &[String],
    broker: &str,
    tx: &Sender<Incoming>,
    status: &Mutex<ConsumerStatus>,
    generation: &AtomicU64,
    closing: &AtomicBool,
) {
    let mut down_since: Option<Instant> = None;
    let set_subscribed = |on: bool| {
        let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
        s.partitions = if on {
            topics.iter().map(|t| (t.clone(), 0, -1)).collect()
        } else {
            Vec::new()
        };
    };
    loop {
        match connection.recv() {
            Err(_) => return, // every client handle is gone
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                let n = generation.fetch_add(1, Ordering::Relaxed) + 1;
                match down_since.take() {
                    Some(t) => tracing::info!(
                        "MQTT broker {broker} reachable again after {} s (session {})",
                        t.elapsed().as_secs(),
                        if ack.session_present { "kept" } else { "new" }
                    ),
                    None => tracing::info!(
                        "connected to MQTT broker {broker} (connection {n}, session {})",
                        if ack.session_present { "kept" } else { "new" }
                    ),
                }
                let filters = topics
                    .iter()
                    .map(|t| rumqttc::SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::error!("cannot subscribe to {topics:?}: {e}");
                }
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    .count();
                if refused > 0 {
                    tracing::error!(
                        "the MQTT broker refused {refused} of the subscriptions {topics:?}"
                    );
                } else {
                    set_subscribed(true);
                }
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let n = generation.load(Ordering::Relaxed);
                if tx.send((n, p)).is_err() {
                    return; // the source thread is gone
                }
            }
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => return,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                if closing.load(Ordering::Relaxed) {
                    return;
                }
                set_subscribed(false);
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                    tracing::warn!(
                        "MQTT broker {broker} unreachable ({e}): retrying every second; \
                         /readyz reports not ready meanwhile"
                    );
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}
