//! Fault: a reconnect storm. 2,000 subscribers (1,600 on HTTP/1.1, one connection each;
//! 400 as 4 HTTP/2 connections of 100 streams) are all cut at the same moment while a
//! publisher keeps publishing, and all reconnect at once, each with its Last-Event-ID.
//!
//! What is kept: every subscriber ends with every event exactly once, in order (ids
//! consecutive, each with its own data); no resync; every stream is counted opened
//! twice and, once the test lets go, closed.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use tokio::sync::{watch, Barrier};
use tokio::task::JoinSet;

const H1_SUBSCRIBERS: usize = 1600;
const H2_CONNECTIONS: usize = 4;
const H2_STREAMS: usize = 100;
const SUBSCRIBERS: usize = H1_SUBSCRIBERS + H2_CONNECTIONS * H2_STREAMS;
/// Events published before the cut.
const BEFORE_CUT: u64 = 10;
/// Events published after every subscriber is back.
const AFTER_STORM: u64 = 10;
/// The most events the publisher may publish (a safety net).
const MAX_EVENTS: u64 = 5_000;
/// Time the storm may take to settle (a safety net; it takes seconds).
const STORM_SAFETY_LIMIT: Duration = Duration::from_secs(90);

/// What a subscriber knows between connections: where it is.
#[derive(Clone)]
struct Position {
    /// Its Last-Event-ID.
    last_event_id: String,
    /// The sequence number it expects next.
    next: u64,
}

/// Shared by the test, the publisher and the subscribers.
struct Storm {
    endpoint: Endpoint,
    /// The head's id before the first event.
    head: String,
    /// The head before the first event: event `n` (from 1) has seq `base + n` and data
    /// `ev-n`.
    base: u64,
    /// The last event's seq, once the publisher has stopped (`u64::MAX` before).
    last: watch::Sender<u64>,
    /// Bumped to cut every connection at once.
    cut: watch::Sender<u32>,
    /// Streams (re)opened after the cut.
    reconnected: AtomicUsize,
    /// Met by every connection group and the test once all first streams are open.
    ready: Barrier,
}

/// Reads one stream until the cut or until it has every event; returns its position
/// and whether it is done.
async fn read_stream(
    storm: Arc<Storm>,
    mut sub: SseStream,
    mut pos: Position,
    mut cut: watch::Receiver<u32>,
) -> (Position, bool) {
    let mut last = storm.last.subscribe();
    // Bounded: one round per block; a stream sees each event once plus heartbeats.
    for _ in 0..(MAX_EVENTS + 1000) {
        if pos.next > *last.borrow_and_update() {
            return (pos, true);
        }
        let block = tokio::select! {
            biased;
            _ = cut.changed() => return (pos, false),
            _ = last.changed() => continue,
            block = sub.block() => block,
        };
        if let Some(id) = &block.id {
            pos.last_event_id = id.clone();
        }
        if !block.is_event() {
            continue;
        }
        assert!(!block.is_resync(), "a resync in the storm: {block:?}");
        let id = block.id.as_deref().expect("an id");
        assert_eq!(seq(id), pos.next, "every event once, in order");
        let n = pos.next - storm.base;
        assert_eq!(block.data.as_deref(), Some(format!("ev-{n}").as_str()));
        pos.next += 1;
    }
    panic!("a stream read too many blocks");
}

/// Connects like [`Conn::open`] on a plain listener, with a longer safety limit: in a
/// storm, connections beyond the listen backlog wait for their SYN retransmits (1 s,
/// 3 s, 7 s, 15 s…), more so on a loaded machine.
async fn connect_patiently(endpoint: &Endpoint, http: Http) -> Conn {
    let addr = endpoint.addr;
    let tcp = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .expect("connected within the storm's safety limit")
    .expect("TCP connect");
    tcp.set_nodelay(true).expect("nodelay");
    Conn::handshake(tcp, http, None, "http", addr.to_string()).await
}

/// One connection's worth of subscribers: HTTP/1.1 with one stream, or HTTP/2 with
/// several. Connects, reads until the cut, reconnects every stream with its
/// Last-Event-ID; returns each stream's final position.
async fn group(storm: Arc<Storm>, http: Http, streams: usize) -> Vec<Position> {
    let mut positions = vec![
        Position {
            last_event_id: storm.head.clone(),
            next: storm.base + 1,
        };
        streams
    ];
    let mut cut = storm.cut.subscribe();
    // Bounded: the storm cuts once; a reconnect that races the cut may see it again.
    for round in 0..4 {
        cut.borrow_and_update();
        let mut conn = connect_patiently(&storm.endpoint, http).await;
        let mut set = JoinSet::new();
        for (i, pos) in positions.iter().enumerate() {
            let mut sub = conn
                .get_stream("/events/storm", &[("last-event-id", &pos.last_event_id)])
                .await;
            assert_eq!(sub.status, 200);
            let preamble = sub.block().await;
            assert_eq!(preamble.id.as_deref(), Some(pos.last_event_id.as_str()));
            if round > 0 {
                storm.reconnected.fetch_add(1, Ordering::AcqRel);
            }
            let task = read_stream(storm.clone(), sub, pos.clone(), cut.clone());
            set.spawn(async move { (i, task.await) });
        }
        if round == 0 {
            storm.ready.wait().await;
        }
        let mut done = true;
        while let Some(joined) = set.join_next().await {
            let (i, (pos, finished)) = joined.expect("a stream reader");
            positions[i] = pos;
            done &= finished;
        }
        // Every stream of the connection returned: dropping it closes the socket.
        drop(conn);
        if done {
            return positions;
        }
    }
    panic!("a connection group was cut more than three times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_subscribers_cut_at_once_reconnect_and_lose_nothing() {
    // History and lag bounds wide enough for whatever is published while 2,000 clients
    // reconnect: this test is about the storm, not about the lag policy (tested in
    // faults_lag.rs) or history truncation (tests/resync.rs).
    let gw = Arc::new(
        start_with(|c| {
            c.history.max_events = 100_000;
            c.history.max_bytes = 64 << 20;
            c.slow_clients.max_lag_events = 100_000;
            c.slow_clients.max_lag_bytes = 64 << 20;
        })
        .await,
    );
    let head = gw.cursor().await;
    let groups = H1_SUBSCRIBERS + H2_CONNECTIONS;
    let storm = Arc::new(Storm {
        endpoint: gw.plain(),
        head: head.clone(),
        base: seq(&head),
        last: watch::channel(u64::MAX).0,
        cut: watch::channel(0).0,
        reconnected: AtomicUsize::new(0),
        ready: Barrier::new(groups + 1),
    });
    let mut tasks = JoinSet::new();
    for _ in 0..H1_SUBSCRIBERS {
        tasks.spawn(group(storm.clone(), Http::H1, 1));
    }
    for _ in 0..H2_CONNECTIONS {
        tasks.spawn(group(storm.clone(), Http::H2, H2_STREAMS));
    }
    within("every subscriber connected", storm.ready.wait()).await;
    let metrics = gw.metrics().await;
    assert_eq!(streams_open(&metrics), SUBSCRIBERS as f64);

    // The publisher: one event at a time; the cut after BEFORE_CUT; on until every
    // subscriber is back, then AFTER_STORM more.
    let mut n = 0u64;
    let mut back_at = None;
    let settle_by = tokio::time::Instant::now() + STORM_SAFETY_LIMIT;
    loop {
        n += 1;
        assert!(
            n <= MAX_EVENTS && tokio::time::Instant::now() < settle_by,
            "the storm did not settle within the safety limits: {n} events, {} of \
             {SUBSCRIBERS} subscribers back",
            storm.reconnected.load(Ordering::Acquire)
        );
        // A connection group that failed fails the test now, not at the end.
        if let Some(ended) = tasks.try_join_next() {
            ended.expect("a connection group");
            panic!("a connection group ended before the publisher did");
        }
        let id = gw.publish_text("storm", &format!("ev-{n}")).await;
        assert_eq!(seq(&id), storm.base + n, "one publisher: consecutive ids");
        if n == BEFORE_CUT {
            storm.cut.send_replace(1);
        }
        if back_at.is_none() && storm.reconnected.load(Ordering::Acquire) == SUBSCRIBERS {
            back_at = Some(n);
        }
        if back_at.is_some_and(|at| n >= at + AFTER_STORM) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    storm.last.send_replace(storm.base + n);
    eprintln!(
        "{n} events; every subscriber was back after event {}",
        back_at.unwrap()
    );

    let mut finished = 0;
    while let Some(joined) = within("the subscribers finishing", tasks.join_next()).await {
        for pos in joined.expect("a connection group") {
            assert_eq!(pos.next, storm.base + n + 1, "every event received");
            finished += 1;
        }
    }
    assert_eq!(finished, SUBSCRIBERS);

    let metrics = gw.metrics().await;
    let opened = |proto: &str| {
        metric(
            &metrics,
            &format!("ssegate_connections_opened_total{{proto=\"{proto}\",tls=\"false\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(opened("h1"), (2 * H1_SUBSCRIBERS) as f64, "{metrics}");
    assert_eq!(opened("h2"), (2 * H2_CONNECTIONS * H2_STREAMS) as f64);
    assert_eq!(
        metric(&metrics, "ssegate_resyncs_total{reason=\"lagged\"}").unwrap_or(0.0),
        0.0
    );
    let gw2 = gw.clone();
    eventually("every stream closed", STEP_TIMEOUT, move || {
        let gw = gw2.clone();
        async move { streams_open(&gw.metrics().await) == 0.0 }
    })
    .await;
}
