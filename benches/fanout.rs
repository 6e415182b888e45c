//! Criterion benchmarks of ssegate's hot paths: encoding, publish parsing and fan-out.
//!
//! Groups (the names are used in `docs/PERFORMANCE.md`):
//!
//! - `encode`: [`sse::event_body`] for a small text event (~100 bytes of data), a
//!   multi-line text (~1 KB in 20 lines) and a JSON object (~1 KB); and
//!   [`sse::frame_with_id`] (the `id:` prefix every event gets once, in the broker).
//!   Throughput is in encoded bytes.
//! - `publish_parse`: [`publish::parse`] of a `POST /publish` body holding one event, one
//!   the same event for three channels, one event whose data is the ~1 KB JSON object,
//!   and a batch of 100 small events: JSON parsing, validation and encoding. Throughput
//!   is in events.
//! - `fanout`: one event published with [`MemoryBroker::publish_now`] and collected by
//!   every one of N in-process [`Subscription`]s (N = 1, 1,000, 10,000). One iteration is
//!   the whole cost of delivering one event to all N; throughput is `Elements(N)`, so
//!   criterion prints deliveries per second. No wake-ups are involved.
//! - `fanout_body`: the same through real [`SseBody`] streams polled with
//!   [`Body::poll_frame`] and a no-op waker, as hyper would: after the publish, each body
//!   is polled once (it yields the event's frame) and once more (nothing new: it
//!   re-registers its tokio `Notify` wake-up and its heartbeat timer and returns
//!   `Pending`, which is where a live stream waits). So the cost of `notify_waiters`
//!   walking N registered waiters, the re-arming and the body's metrics are included.
//! - `batch`: one subscriber collecting 10 pending events: in one collect (one batch, as
//!   the body does when a client is behind) vs 10 collects of one event each. Throughput
//!   is 10 events per iteration in both. The pending events are published outside the
//!   timed section; a byte limit makes each collect take exactly 1 or 10 frames.
//!
//! - `metrics`: the metric updates of one delivery (frame and bytes counted, one
//!   delivery-lag observation) through the gateway's per-thread sharded counters and,
//!   for comparison, through shared prometheus atomics; each from one thread and from
//!   one thread while another does the same, against the empty loop: the cost of
//!   metrics on the hot path, and of their contention across cores.
//!
//! The hub uses the default history (1,000 events per channel), so each iteration's
//! publish pushes the oldest frame out of the ring: the steady state of a busy channel.
//! Subscribers always keep up, so none lags into a resync (every iteration checks that
//! all N got the event).
//!
//! Run everything (about two minutes on two cores):
//!
//! ```text
//! cargo bench --bench fanout
//! ```
//!
//! or one group: the argument is a regular expression on the benchmark ids, so
//! `cargo bench --bench fanout -- fanout` runs both `fanout` and `fanout_body`, while
//! `cargo bench --bench fanout -- '^fanout/'` runs only `fanout`, and e.g.
//! `cargo bench --bench fanout -- encode` only `encode`.

use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http_body::Body;
use serde_json::{json, Value};
use ssegate::broker::{IdempotencyWindow, MemoryBroker, PreparedEvent};
use ssegate::config::{HistoryConfig, LimitsConfig};
use ssegate::config::{LagPolicy, Routes};
use ssegate::http::publish;
use ssegate::hub::{Collected, HistoryBounds, Hub, ResumeFrom, Subscription};
use ssegate::model::event_id::EventId;
use ssegate::observe::metrics::Metrics;
use ssegate::observe::registry::StreamRegistry;
use ssegate::stream::connection::ConnState;
use ssegate::stream::drain::Drain;
use ssegate::stream::{SseBody, StreamContext, StreamSettings};
use ssegate::wire::sse::{self, EventData};

/// The default `sse.max_batch_bytes`.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Subscriber counts of the fan-out groups.
const FANOUT_SIZES: [usize; 3] = [1, 1_000, 10_000];

/// The one channel every fan-out subscriber reads.
const CHANNEL: &str = "bench:room-1";

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

/// About 100 bytes of text: a typical chat message or notification.
fn small_text() -> String {
    let text = "Alice: the deploy of build 4812 finished in 3m12s; all 24 checks passed, \
                dashboards are green again.";
    debug_assert!((90..=110).contains(&text.len()));
    text.to_owned()
}

/// About 1 KB in 20 lines (each line 50 bytes with its `\n`).
fn multiline_text() -> String {
    (0..20)
        .map(|i| format!("line {i:02}: {}\n", "x".repeat(40)))
        .collect()
}

/// A JSON object of about 1 KB, compact.
fn json_object() -> Value {
    let items: Vec<Value> = (0..12)
        .map(|i| {
            json!({
                "id": 1000 + i,
                "name": format!("item-{i}"),
                "price": 9.5 + f64::from(i),
                "tags": ["a", "b"],
            })
        })
        .collect();
    json!({ "type": "cart.updated", "user": "u-42", "items": items, "total": 180.0 })
}

/// The body of a one-event publish.
fn single_publish_body() -> String {
    json!({ "channel": CHANNEL, "event": "message", "data": small_text() }).to_string()
}

fn limits() -> LimitsConfig {
    LimitsConfig::default()
}

/// The event the fan-out groups publish: the small text, prepared as `POST /publish`
/// would prepare it.
fn small_event() -> PreparedEvent {
    let mut request =
        publish::parse(single_publish_body().as_bytes(), &limits()).expect("valid publish");
    request.events.remove(0)
}

// ---------------------------------------------------------------------------------------
// A hub with a broker
// ---------------------------------------------------------------------------------------

/// A hub, its memory broker and the event to publish.
struct Rig {
    hub: Arc<Hub>,
    broker: MemoryBroker,
    event: PreparedEvent,
}

impl Rig {
    fn new() -> Rig {
        let history = HistoryConfig::default();
        let bounds = HistoryBounds {
            max_events: history.max_events,
            max_age: history.max_age,
            max_bytes: history.max_bytes,
        };
        let hub = Arc::new(Hub::new(0x5eed_0001, bounds, 1_000));
        let window = IdempotencyWindow::new(Duration::from_secs(60), 1_024);
        Rig {
            broker: MemoryBroker::new(hub.clone(), window),
            hub,
            event: small_event(),
        }
    }

    fn subscribe(&self) -> Subscription {
        let (sub, _start) = self
            .hub
            .subscribe(&[CHANNEL.into()], ResumeFrom::Head)
            .expect("within the channel limit");
        sub
    }

    /// Publishes `count` copies of the event in one broker call.
    fn publish(&self, count: usize) {
        let events = vec![self.event.clone(); count];
        self.broker
            .publish_now("key:bench", events)
            .expect("memory publish");
    }

    /// The length of the event's frame when it gets sequence number `seq`.
    fn frame_len(&self, seq: u64) -> usize {
        let id = EventId {
            epoch: self.hub.epoch(),
            seq,
        };
        sse::frame_with_id(id, &self.event.body).len()
    }
}

// ---------------------------------------------------------------------------------------
// encode
// ---------------------------------------------------------------------------------------

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let cases = [
        ("text_small", Some("message"), EventData::Text(small_text())),
        (
            "text_multiline_1k",
            Some("log"),
            EventData::Text(multiline_text()),
        ),
        (
            "json_1k",
            None,
            EventData::Json(
                serde_json::value::to_raw_value(&json_object()).expect("JSON serializes"),
            ),
        ),
    ];
    for (name, event, data) in &cases {
        let encoded = sse::event_body(*event, data).len();
        group.throughput(Throughput::Bytes(encoded as u64));
        group.bench_function(*name, |b| {
            b.iter(|| sse::event_body(black_box(*event), black_box(data)))
        });
    }

    let body = sse::event_body(Some("message"), &EventData::Text(small_text()));
    let id = EventId {
        epoch: 0x5eed_0001,
        seq: 1_234_567,
    };
    group.throughput(Throughput::Bytes(sse::frame_with_id(id, &body).len() as u64));
    group.bench_function("frame_with_id", |b| {
        b.iter(|| sse::frame_with_id(black_box(id), black_box(&body)))
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------
// publish_parse
// ---------------------------------------------------------------------------------------

fn bench_publish_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_parse");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let limits = limits();

    // The same event as `single`, for three channels.
    let three_channels = json!({
        "channels": [CHANNEL, "room-2", "user:42"],
        "event": "message",
        "data": small_text(),
    })
    .to_string();
    let json_1k =
        json!({ "channel": CHANNEL, "event": "cart.updated", "data": json_object() }).to_string();
    let batch = json!({
        "events": (0..100)
            .map(|i| json!({ "channel": format!("room-{}", i % 10), "event": "message", "data": small_text() }))
            .collect::<Vec<_>>(),
    })
    .to_string();
    let cases = [
        ("single", single_publish_body(), 1usize),
        ("three_channels", three_channels, 1),
        ("single_json_1k", json_1k, 1),
        ("batch_100", batch, 100),
    ];
    for (name, body, events) in &cases {
        let parsed = publish::parse(body.as_bytes(), &limits).expect("valid publish");
        assert_eq!(parsed.events.len(), *events);
        group.throughput(Throughput::Elements(*events as u64));
        group.bench_function(*name, |b| {
            b.iter(|| publish::parse(black_box(body.as_bytes()), &limits))
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------
// fanout
// ---------------------------------------------------------------------------------------

/// Publishes one event and has every subscription collect it; returns how many did.
fn deliver_to_subscriptions(rig: &Rig, subs: &mut [Subscription]) -> usize {
    rig.publish(1);
    let mut delivered = 0;
    for sub in subs.iter_mut() {
        if let Collected::Frames { bytes, count, .. } = sub.collect(MAX_BATCH_BYTES, |_, _| {}) {
            black_box(bytes);
            delivered += count;
        }
    }
    delivered
}

fn bench_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in FANOUT_SIZES {
        let rig = Rig::new();
        let mut subs: Vec<Subscription> = (0..n).map(|_| rig.subscribe()).collect();
        assert_eq!(deliver_to_subscriptions(&rig, &mut subs), n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let delivered = deliver_to_subscriptions(&rig, &mut subs);
                assert_eq!(delivered, n, "every subscriber gets every event");
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------
// fanout_body
// ---------------------------------------------------------------------------------------

fn poll_body(body: &mut SseBody, cx: &mut Context<'_>) -> Poll<Option<usize>> {
    match Pin::new(body).poll_frame(cx) {
        Poll::Ready(Some(Ok(frame))) => {
            let len = frame.data_ref().map_or(0, |d| d.len());
            Poll::Ready(Some(len))
        }
        Poll::Ready(Some(Err(never))) => match never {},
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    }
}

/// One round: publish one event, then poll every body until it waits again. Returns
/// (bodies that yielded a data frame, bodies that then returned `Pending`).
fn deliver_to_bodies(rig: &Rig, bodies: &mut [SseBody], cx: &mut Context<'_>) -> (usize, usize) {
    rig.publish(1);
    let mut framed = 0;
    let mut parked = 0;
    for body in bodies.iter_mut() {
        if let Poll::Ready(Some(len)) = poll_body(body, cx) {
            framed += usize::from(len > 0);
        }
        // hyper polls again once the frame is written: nothing new, so the body
        // re-registers its wake-up and waits.
        if poll_body(body, cx).is_pending() {
            parked += 1;
        }
    }
    (framed, parked)
}

fn bench_fanout_body(c: &mut Criterion) {
    // SseBody creates tokio timers (its heartbeat), so it needs a runtime with time
    // enabled. The runtime is never driven: the heartbeat (an hour) never fires.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let _guard = rt.enter();
    let metrics = Arc::new(Metrics::new());
    let settings = StreamSettings {
        heartbeat: Duration::from_secs(3600),
        max_batch_bytes: MAX_BATCH_BYTES,
        lag_policy: LagPolicy::Disconnect,
        max_age: None,
        retry_ms: (2000, 5000),
        expires_at: None,
    };
    let conn = ConnState::new("127.0.0.1:1".parse().expect("address"), false, Routes::All);
    let registry = StreamRegistry::new();
    let drain = Arc::new(Drain::new(Duration::from_secs(20)));
    let mut cx = Context::from_waker(Waker::noop());

    let mut group = c.benchmark_group("fanout_body");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in FANOUT_SIZES {
        let rig = Rig::new();
        let mut bodies: Vec<SseBody> = (0..n)
            .map(|_| {
                let sub = rig.subscribe();
                let preamble = sse::preamble(2_000, Some(sub.position()));
                let context = StreamContext {
                    metrics: metrics.clone(),
                    drain: drain.clone(),
                    slot: conn.try_open_stream(usize::MAX).expect("no cap"),
                    proto: "h1",
                    registration: registry.register(
                        conn.peer,
                        "h1",
                        false,
                        sub.channels().clone(),
                        0,
                    ),
                    replay_through: 0,
                    log_budget: None,
                };
                SseBody::new(sub, preamble, settings, context)
            })
            .collect();
        // Sanity, untimed: each body writes its preamble, then waits for events.
        for body in &mut bodies {
            assert!(matches!(poll_body(body, &mut cx), Poll::Ready(Some(l)) if l > 0));
            assert!(poll_body(body, &mut cx).is_pending());
        }
        assert_eq!(deliver_to_bodies(&rig, &mut bodies, &mut cx), (n, n));

        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let round = deliver_to_bodies(&rig, &mut bodies, &mut cx);
                assert_eq!(round, (n, n), "every body yields the event, then waits");
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------
// batch
// ---------------------------------------------------------------------------------------

/// Events delivered per iteration in the `batch` group.
const BATCH_EVENTS: usize = 10;

/// Iterations whose events are published at once, outside the timed section: 900
/// pending events stay within the 1,000-event history, so nothing lags.
const REFILL_ITERS: u64 = 90;

/// Times `iters` iterations of collecting `BATCH_EVENTS` pending events from one
/// subscription, `per_collect` events per collect.
fn collect_pending(rig: &Rig, sub: &mut Subscription, iters: u64, per_collect: usize) -> Duration {
    let collects_per_iter = (BATCH_EVENTS / per_collect) as u64;
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let chunk = left.min(REFILL_ITERS);
        let events = chunk as usize * BATCH_EVENTS;
        let first_seq = rig.hub.head().seq + 1;
        rig.publish(events);
        // Frames of one chunk differ in length by at most a byte (the id's digits), so
        // this limit takes exactly `per_collect` frames per collect.
        let longest = rig.frame_len(rig.hub.head().seq);
        let limit = per_collect * longest + rig.frame_len(first_seq) / 2;

        let mut got = 0;
        let mut uneven = false;
        let start = Instant::now();
        for _ in 0..chunk * collects_per_iter {
            if let Collected::Frames { bytes, count, .. } = sub.collect(limit, |_, _| {}) {
                black_box(bytes);
                got += count;
                uneven |= count != per_collect;
            }
        }
        total += start.elapsed();
        assert!(
            got == events && !uneven,
            "collected {got} of {events} events, {per_collect} per collect: {}",
            if uneven { "uneven batches" } else { "even" }
        );
        left -= chunk;
    }
    total
}

fn bench_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(BATCH_EVENTS as u64));
    let cases = [
        ("one_collect_of_10", BATCH_EVENTS),
        ("ten_collects_of_1", 1),
    ];
    for (name, per_collect) in cases {
        let rig = Rig::new();
        let mut sub = rig.subscribe();
        // Sanity, untimed.
        collect_pending(&rig, &mut sub, REFILL_ITERS + 1, per_collect);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| collect_pending(&rig, &mut sub, iters, per_collect))
        });
    }
    group.finish();
}

/// The metric updates one delivery makes (a frame and its bytes, one delivery-lag
/// observation), alone: through the gateway's per-thread sharded `HotMetrics`, and —
/// for comparison — through plain shared prometheus atomics, each from one thread and
/// from one thread while a second thread does the same to the same metrics (both
/// cores busy: the worst case for shared cache lines). `off` is the empty loop.
fn bench_metrics(c: &mut Criterion) {
    use prometheus::{Histogram, HistogramOpts, IntCounter};
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Shared {
        frames: IntCounter,
        bytes: IntCounter,
        lag: Histogram,
    }
    let shared = Arc::new(Shared {
        frames: IntCounter::new("f", "f").expect("metric"),
        bytes: IntCounter::new("b", "b").expect("metric"),
        lag: Histogram::with_opts(
            HistogramOpts::new("l", "l")
                .buckets(ssegate::observe::hot_metrics::LAG_BUCKETS.to_vec()),
        )
        .expect("metric"),
    });
    let hot = Arc::new(ssegate::observe::hot_metrics::HotMetrics::new());
    let lag_of = |i: u64| 0.000_2 + (i & 15) as f64 * 1e-5;
    let update_shared = {
        let shared = shared.clone();
        move |i: u64| {
            shared.frames.inc_by(1);
            shared.bytes.inc_by(60 + (i & 7));
            shared.lag.observe(lag_of(i));
        }
    };
    let update_hot = {
        let hot = hot.clone();
        move |i: u64| {
            hot.written(1, 60 + (i & 7));
            hot.lag(lag_of(i));
        }
    };
    let mut group = c.benchmark_group("metrics");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    group.bench_function("off", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = std::hint::black_box(i.wrapping_add(1));
        })
    });
    type Update = Arc<dyn Fn(u64) + Send + Sync>;
    let variants: [(&str, Update); 2] = [
        ("sharded", Arc::new(update_hot)),
        ("shared_atomics", Arc::new(update_shared)),
    ];
    for (name, update) in variants {
        group.bench_function(format!("{name}_1_thread"), |b| {
            let mut i = 0u64;
            b.iter(|| {
                i = i.wrapping_add(1);
                update(i);
            })
        });
        let stop = Arc::new(AtomicBool::new(false));
        let rival = {
            let (update, stop) = (update.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i = i.wrapping_add(1);
                    update(i);
                }
            })
        };
        group.bench_function(format!("{name}_2_threads"), |b| {
            let mut i = 0u64;
            b.iter(|| {
                i = i.wrapping_add(1);
                update(i);
            })
        });
        stop.store(true, Ordering::Relaxed);
        rival.join().expect("the rival thread ends");
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_encode,
    bench_publish_parse,
    bench_fanout,
    bench_fanout_body,
    bench_batch,
    bench_metrics
);
criterion_main!(benches);
