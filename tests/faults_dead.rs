//! Fault: a client that vanishes without closing. A local TCP relay stands between the
//! client and the gateway; the test freezes it (it stops copying both ways and keeps
//! both sockets open: a phone that left coverage, a NAT that dropped its mapping) while
//! events keep being published.
//!
//! What is kept: the gateway finds the dead connection on its own and closes it, counted
//! under the reason its mechanism gives; its stream, its channel membership and its TCP
//! connection are freed; and a subscriber reading on the same channel meanwhile receives
//! every event, in order, never slowed by the dead one.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use ssegate::Config;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A one-connection TCP relay that can be frozen.
struct Relay {
    addr: SocketAddr,
    freeze: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on 127.0.0.1:0; the first connection accepted is relayed to `upstream`.
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let (freeze, frozen) = watch::channel(false);
        let task = tokio::spawn(async move {
            let (client, _) = listener.accept().await.expect("relay accept");
            client.set_nodelay(true).expect("nodelay");
            // A small receive buffer toward the gateway (and no autotuning), so that once
            // frozen the kernel holds little for it: the gateway's own send buffer is
            // what fills.
            let socket = TcpSocket::new_v4().expect("socket");
            socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
            let server = socket.connect(upstream).await.expect("relay connect");
            server.set_nodelay(true).expect("nodelay");
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let halves = tokio::join!(
                pump(client_read, server_write, frozen.clone()),
                pump(server_read, client_write, frozen),
            );
            // Frozen: hold every socket open, copy nothing, until the test ends.
            let _halves = halves;
            std::future::pending::<()>().await;
        });
        Relay { addr, freeze, task }
    }

    /// Stops copying, both ways; the sockets stay open.
    fn freeze(&self) {
        self.freeze.send_replace(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until frozen (or either side ends); hands both back.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) -> (OwnedReadHalf, OwnedWriteHalf) {
    let mut buf = vec![0u8; 16 * 1024];
    // Bounded: far more reads than the tests relay before freezing.
    for _ in 0..1_000_000 {
        if *frozen.borrow_and_update() {
            return (from, to);
        }
        tokio::select! {
            changed = frozen.changed() => {
                if changed.is_err() {
                    return (from, to);
                }
            }
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (from, to),
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return (from, to);
                    }
                }
            },
        }
    }
    (from, to)
}

/// Reads `sub` as events come, checking each is the next one; its progress is the last
/// sequence number received (starting from the value `progress` holds).
fn reader(mut sub: SseStream, progress: Arc<AtomicU64>, total: u64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let first = progress.load(Ordering::Acquire) + 1;
        for next in first..first + total {
            let event = sub.next_event().await;
            assert!(!event.is_resync(), "no resync: {event:?}");
            let id = event.id.expect("id");
            assert_eq!(seq(&id), next, "in order, each once");
            progress.store(next, Ordering::Release);
        }
    })
}

/// Makes a dead client's lag unable to end its stream: lag bounds out of reach and a
/// history that keeps everything this test publishes. Whatever closes the dead client
/// is then the mechanism under test, not the lag policy.
fn lag_out_of_reach(c: &mut Config) {
    c.slow_clients.max_lag_events = 10_000_000;
    c.slow_clients.max_lag_bytes = 1 << 40;
    c.history.max_events = 10_000_000;
    c.history.max_bytes = 256 << 20;
}

/// The most events the tests below publish.
const MAX_EVENTS: u64 = 60 * 100;

/// Publishes rounds of 100 events of 8 kB (0.8 MB each) until `reaped` holds (checked
/// between rounds), at most 60 rounds; returns the last id.
async fn publish_until(
    gw: &TestGateway,
    channel: &str,
    mut reaped: impl FnMut(&str) -> bool,
) -> String {
    let data = "d".repeat(8000);
    let mut last = String::new();
    for _ in 0..60 {
        let events = (0..100)
            .map(|_| json!({"channel": channel, "data": data}))
            .collect();
        last = gw.publish_batch(events).await.pop().expect("ids");
        if reaped(&gw.metrics().await) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the dead client was not reaped after {MAX_EVENTS} events (last {last})");
}

/// HTTP/1.1 (the pushed path): the relay stops reading, the gateway's writes fill the
/// socket buffers, and a write that makes no progress for `write_timeout` closes the
/// connection. With the lag bounds out of reach the stall is the only way out:
/// `stalled`, not `lagged`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_http1_client_is_reaped_as_stalled_and_freed() {
    let gw = start_with(|c| {
        lag_out_of_reach(c);
        c.slow_clients.write_timeout = Duration::from_secs(1);
    })
    .await;
    let head = gw.cursor().await;
    let progress = Arc::new(AtomicU64::new(seq(&head)));
    let direct = reader(
        gw.subscribe("/events/dead").await,
        progress.clone(),
        MAX_EVENTS,
    );

    let relay = Relay::start(gw.plain_addr).await;
    let mut conn = Conn::open(&Endpoint::plain(relay.addr), Http::H1).await;
    let mut vanishing = conn.get_stream("/events/dead", &[]).await;
    assert_eq!(vanishing.status, 200);
    vanishing.block().await; // preamble
    let first = gw.publish_text("dead", "through the relay").await;
    assert_eq!(vanishing.next_event().await.id, Some(first));
    let before = gw.metrics().await;
    assert_eq!(streams_open(&before), 2.0);
    eventually(
        "only the two subscribers' connections open",
        STEP_TIMEOUT,
        || async { gw.gateway.limiter.open() == 2 },
    )
    .await;
    let subscribers = || {
        gw.gateway
            .shared
            .hub
            .channel_stats("dead")
            .map_or(0, |s| s.subscribers)
    };
    assert_eq!(subscribers(), 2);

    relay.freeze();
    let last = publish_until(&gw, "dead", |m| {
        closed(m, "stalled") + closed(m, "lagged") >= 1.0
    })
    .await;
    let metrics = gw.metrics().await;
    assert_eq!(closed(&metrics, "stalled"), 1.0, "{metrics}");
    assert_eq!(closed(&metrics, "lagged"), 0.0, "{metrics}");
    assert_eq!(
        streams_open(&metrics),
        1.0,
        "only the reading subscriber's stream"
    );
    assert_eq!(subscribers(), 1, "the dead client left its channel");
    eventually(
        "the dead client's TCP connection freed",
        STEP_TIMEOUT,
        || async { gw.gateway.limiter.open() == 1 },
    )
    .await;

    // The reading subscriber got everything, unhindered.
    let last = seq(&last);
    eventually(
        "the reading subscriber has every event",
        STEP_TIMEOUT,
        || async { progress.load(Ordering::Acquire) == last },
    )
    .await;
    direct.abort();
    drop((vanishing, conn, relay));
}

/// HTTP/2 (hyper's path): the gateway cannot write past the client's flow-control
/// window, so the socket may never fill; what finds the dead peer is the HTTP/2 PING
/// going unanswered (`h2_ping_interval`, `h2_ping_timeout`). `write_timeout` stays at
/// its 30 s default so that the stall cannot be what closes it here. A PING timeout is
/// the client having gone away: closed reason `client`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_http2_client_is_reaped_by_ping_and_freed() {
    let gw = start_with(|c| {
        lag_out_of_reach(c);
        c.keepalive.h2_ping_interval = Some(Duration::from_secs(1));
        c.keepalive.h2_ping_timeout = Duration::from_secs(1);
    })
    .await;
    let head = gw.cursor().await;
    let progress = Arc::new(AtomicU64::new(seq(&head)));
    let direct = reader(
        gw.subscribe("/events/dead2").await,
        progress.clone(),
        MAX_EVENTS,
    );

    let relay = Relay::start(gw.plain_addr).await;
    let mut conn = Conn::open(&Endpoint::plain(relay.addr), Http::H2).await;
    let mut vanishing = conn.get_stream("/events/dead2", &[]).await;
    assert_eq!(vanishing.status, 200);
    vanishing.block().await; // preamble
    let first = gw.publish_text("dead2", "through the relay").await;
    assert_eq!(vanishing.next_event().await.id, Some(first));
    let before = gw.metrics().await;
    assert_eq!(streams_open(&before), 2.0);
    let closed_before = closed(&before, "client");

    relay.freeze();
    let last = publish_until(&gw, "dead2", |m| streams_open(m) < 2.0).await;
    let metrics = gw.metrics().await;
    assert_eq!(
        streams_open(&metrics),
        1.0,
        "only the reading subscriber's stream"
    );
    assert_eq!(closed(&metrics, "client"), closed_before + 1.0, "{metrics}");
    assert_eq!(closed(&metrics, "stalled"), 0.0, "{metrics}");
    assert_eq!(closed(&metrics, "lagged"), 0.0, "{metrics}");
    assert_eq!(
        gw.gateway
            .shared
            .hub
            .channel_stats("dead2")
            .map_or(0, |s| s.subscribers),
        1
    );
    eventually(
        "the dead client's TCP connection freed",
        STEP_TIMEOUT,
        || async { gw.gateway.limiter.open() == 1 },
    )
    .await;
    let last = seq(&last);
    eventually(
        "the reading subscriber has every event",
        STEP_TIMEOUT,
        || async { progress.load(Ordering::Acquire) == last },
    )
    .await;
    direct.abort();
    drop((vanishing, conn, relay));
}
