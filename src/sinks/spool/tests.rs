//! The spool against its contract, with the uplink played by a channel: order, deletion after
//! acknowledgement, restart, torn records, the size bound.

use super::segment::Outgoing;
use super::{Sent, Spool, SpoolWriter};
use crate::telemetry::SpoolGauges;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-spool-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn open(d: &Path, max: u64) -> (Arc<Spool>, SpoolWriter, Arc<SpoolGauges>) {
    let g = Arc::new(SpoolGauges::default());
    let (s, w) = Spool::open(d, max, g.clone()).expect("open");
    (s, w, g)
}

fn write(w: &mut SpoolWriter, range: std::ops::Range<u32>, per_batch: u32) {
    let stop = AtomicBool::new(false);
    for i in range {
        let payload = format!("message {i:06}");
        w.add(&Outgoing {
            topic: "alerts",
            key: Some(b"pump-1"),
            headers: &[("n", &i.to_string())],
            payload: payload.as_bytes(),
        });
        if i % per_batch == per_batch - 1 {
            w.commit(&stop).expect("commit");
        }
    }
    w.commit(&stop).expect("commit");
}

/// Starts a forwarder whose uplink sends `(number, payload)` to the returned channel.
fn forwarder(s: &Arc<Spool>) -> (mpsc::Receiver<(u64, String)>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let s = s.clone();
    let h = std::thread::spawn(move || {
        s.forward(|m, n| {
            assert_eq!(m.topic, "alerts");
            let _ = tx.send((n, String::from_utf8(m.payload).expect("utf8")));
            Sent::Handed
        })
    });
    (rx, h)
}

fn segments(d: &Path) -> usize {
    std::fs::read_dir(d)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "spool"))
        })
        .count()
}

fn expect(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("message {i:06}")).collect()
}

#[test]
fn messages_are_forwarded_in_order_and_segments_go_once_acknowledged() {
    let d = dir("order");
    // 2 MiB (segments of 256 KiB) holds the 1.2 MB written before any acknowledgement.
    let (s, mut w, g) = open(&d, 2 << 20);
    let (rx, h) = forwarder(&s);
    write(&mut w, 0..20_000, 100);
    assert!(segments(&d) > 2, "{} segments", segments(&d));
    let got: Vec<(u64, String)> = rx.iter().take(20_000).collect();
    assert_eq!(
        got.iter().map(|m| m.1.clone()).collect::<Vec<_>>(),
        expect(0..20_000)
    );
    // Acknowledged out of order, in blocks of 100 backwards: nothing goes before its prefix.
    for block in got.chunks(100) {
        for (n, _) in block.iter().rev() {
            s.acknowledge(*n);
        }
    }
    assert_eq!(s.pending(), 0);
    assert_eq!(g.forwarded.load(Ordering::Relaxed), 20_000);
    assert_eq!(s.finish(Duration::from_secs(5)), (0, 0));
    h.join().expect("forwarder");
    assert_eq!(segments(&d), 0, "every segment removed once acknowledged");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn what_is_not_acknowledged_is_forwarded_after_a_restart() {
    let d = dir("restart");
    {
        let (s, mut w, _) = open(&d, 1 << 20);
        let (rx, h) = forwarder(&s);
        write(&mut w, 0..5000, 10);
        let got: Vec<(u64, String)> = rx.iter().take(5000).collect();
        for (n, _) in &got[..3000] {
            s.acknowledge(*n);
        }
        // Acknowledged beyond a gap: not part of the prefix, so sent again.
        s.acknowledge(got[4000].0);
        assert_eq!(s.finish(Duration::ZERO).0, 2000);
        h.join().expect("forwarder");
        // Dropped like a crash: the writer's file is closed, nothing else is cleaned up.
    }
    let (s, mut w, g) = open(&d, 1 << 20);
    assert_eq!(s.pending(), 2000);
    assert_eq!(g.messages.load(Ordering::Relaxed), 2000);
    let (rx, h) = forwarder(&s);
    write(&mut w, 5000..5100, 10);
    let got: Vec<String> = rx.iter().take(2100).map(|m| m.1).collect();
    assert_eq!(got, expect(3000..5100));
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "no more"
    );
    s.finish(Duration::ZERO);
    h.join().expect("forwarder");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_torn_last_record_is_skipped_and_the_rest_forwarded() {
    let d = dir("torn");
    {
        let (s, mut w, _) = open(&d, 1 << 20);
        write(&mut w, 0..100, 10);
        s.finish(Duration::ZERO);
    }
    // A crash in the middle of the next append: half a record at the end of the segment.
    let seg = std::fs::read_dir(&d)
        .expect("dir")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "spool"))
        .max()
        .expect("a segment");
    let mut half = Vec::new();
    super::segment::encode(
        &Outgoing {
            topic: "alerts",
            key: None,
            headers: &[],
            payload: b"never whole",
        },
        &mut half,
    );
    half.truncate(half.len() / 2);
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes.extend_from_slice(&half);
    std::fs::write(&seg, bytes).expect("write");
    let (s, _w, g) = open(&d, 1 << 20);
    assert_eq!(g.torn.load(Ordering::Relaxed), 1);
    assert_eq!(s.pending(), 100);
    let (rx, h) = forwarder(&s);
    let got: Vec<(u64, String)> = rx.iter().take(100).collect();
    assert_eq!(
        got.iter().map(|m| m.1.clone()).collect::<Vec<_>>(),
        expect(0..100)
    );
    for (n, _) in &got {
        s.acknowledge(*n);
    }
    assert_eq!(s.finish(Duration::from_secs(5)).0, 0);
    h.join().expect("forwarder");
    assert_eq!(
        segments(&d),
        0,
        "the torn segment goes once its whole records are acknowledged"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_full_spool_holds_the_writer_until_the_uplink_takes_some() {
    let d = dir("full");
    let (s, mut w, g) = open(&d, 1 << 20);
    let (rx, h) = forwarder(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let payload = vec![b'x'; 1000];
            for _ in 0..3000 {
                w.add(&Outgoing {
                    topic: "alerts",
                    key: None,
                    headers: &[],
                    payload: &payload,
                });
                w.commit(&stop)?;
            }
            Ok::<_, std::io::Error>(w)
        })
    };
    // 3 MB into a 1 MiB spool with no acknowledgement: the writer waits, the gauge says so.
    let mut waited = 0;
    while g.full.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(10));
        waited += 1;
        assert!(waited < 1000, "never full");
    }
    assert!(g.bytes.load(Ordering::Relaxed) <= 1 << 20);
    assert!(!writer.is_finished());
    // The uplink comes back: everything goes through, in order.
    let mut got = Vec::new();
    while got.len() < 3000 {
        let (n, p) = rx.recv_timeout(Duration::from_secs(10)).expect("forwarded");
        s.acknowledge(n);
        got.push(p);
    }
    let _w = writer.join().expect("writer").expect("every commit");
    assert_eq!(g.full.load(Ordering::Relaxed), 0);
    assert_eq!(s.finish(Duration::from_secs(5)).0, 0);
    h.join().expect("forwarder");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn stopping_while_full_fails_the_batch_instead_of_waiting_forever() {
    let d = dir("stop");
    let (_s, mut w, _) = open(&d, 1 << 20);
    let stop = AtomicBool::new(false);
    let payload = vec![b'x'; 100_000];
    for _ in 0..10 {
        w.add(&Outgoing {
            topic: "alerts",
            key: None,
            headers: &[],
            payload: &payload,
        });
        w.commit(&stop).expect("fits");
    }
    stop.store(true, Ordering::Relaxed);
    w.add(&Outgoing {
        topic: "alerts",
        key: None,
        headers: &[],
        payload: &payload,
    });
    let e = w.commit(&stop).expect_err("full and stopping");
    assert!(e.to_string().contains("spool full"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_batch_larger_than_the_spool_goes_through_in_parts() {
    let d = dir("big-batch");
    let (s, mut w, g) = open(&d, 1 << 20);
    let (rx, h) = forwarder(&s);
    let acker = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 3000 {
                let (n, p) = rx.recv_timeout(Duration::from_secs(10)).expect("forwarded");
                s.acknowledge(n);
                got.push(p);
            }
            got
        })
    };
    // 3 MB in one batch, three times the spool.
    let stop = AtomicBool::new(false);
    for i in 0..3000 {
        let payload = format!("message {i:06} {}", "x".repeat(1000));
        w.add(&Outgoing {
            topic: "alerts",
            key: None,
            headers: &[],
            payload: payload.as_bytes(),
        });
    }
    w.commit(&stop).expect("commit");
    let got = acker.join().expect("acker");
    assert_eq!(
        got.iter().map(|p| p[..14].to_string()).collect::<Vec<_>>(),
        expect(0..3000)
    );
    assert!(g.bytes.load(Ordering::Relaxed) <= 1 << 20);
    assert_eq!(s.finish(Duration::from_secs(5)).0, 0);
    h.join().expect("forwarder");
    let _ = std::fs::remove_dir_all(&d);
}
