//! One subscriber: connect (from its source address, through the connect ramp), read the
//! event stream, check and time every event, and — when it is a churner — hang up and
//! come back with `Last-Event-ID` while the publisher runs.
//!
//! Plain HTTP/1.1 is a raw `TcpStream`: the request is written by hand and the response
//! read with `try_read` into one buffer per thread, so an idle connection costs its
//! socket, its parser (empty vectors) and this task's future. TLS wraps the same HTTP/1.1
//! code in tokio-rustls; HTTP/2 (h2c by prior knowledge, or TLS with ALPN h2) uses
//! hyper's client connection.

use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::http1::{parse_head, BodyDecoder, Fed};
use crate::latency::Latency;
use crate::proto::WorkerPlan;
use crate::sse::{SseEvent, SseParser};
use crate::target::{fill, subscribe_request, Url};
use crate::tracker::{parse_stamp, Arrival, Tracker};

/// Longest time one connect (TCP, TLS, request, response head) may take.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Pause between two attempts of one subscriber (times the attempt number).
pub const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Distinct error messages kept for the report.
pub const MAX_ERRORS: usize = 8;

/// The name of ssegate's resync event.
pub const RESYNC_EVENT: &[u8] = b"ssegate.resync";

thread_local! {
    /// The read buffer every plain connection of this thread shares: data is parsed
    /// straight out of it, so no connection owns a buffer of its own.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// Unix time in nanoseconds.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The record of one subscriber, kept outside its task so the worker can read it at
/// any time (and after the task is gone).
#[derive(Debug, Default)]
pub struct SubState {
    /// What it received.
    pub tracker: Tracker,
    /// Index of its channel.
    pub channel: usize,
    /// It stops reading after the response head.
    pub slow: bool,
    /// It reconnects while publishing runs.
    pub churner: bool,
    /// A stream is open right now.
    pub connected: bool,
    /// A stream was open at some point.
    pub ever_connected: bool,
    /// Its first stream opened only after the ramp was declared over (so it may have
    /// missed events for reasons of its own): left out of the delivery checks.
    pub late: bool,
    /// It gave up (never connected, or a reconnect failed, or the server ended it).
    pub gone: bool,
    /// Data events received (duplicates included).
    pub received: u64,
}

/// Counters every subscriber of a worker updates.
#[derive(Debug, Default)]
pub struct Counters {
    /// Subscribers with an open stream.
    pub open: Cell<u64>,
    /// Subscribers that gave up before their first stream.
    pub failed: Cell<u64>,
    /// Streams ended by the server (or broken) without being asked.
    pub dropped: Cell<u64>,
    /// Churn reconnects done.
    pub reconnects: Cell<u64>,
    /// Churn reconnects that failed for good.
    pub reconnect_failed: Cell<u64>,
    /// Reconnects with no event id to resume from (the stream had not given one yet).
    pub blind_reconnects: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// What the subscribers of one worker process share (single-threaded: `Rc`/`RefCell`).
pub struct Fleet {
    /// The plan.
    pub plan: WorkerPlan,
    /// The subscribe URL of each channel.
    pub urls: Vec<Url>,
    /// The same as absolute URIs, for HTTP/2.
    pub uris: Vec<http::Uri>,
    /// The TLS connector when the URLs are https.
    pub tls: Option<TlsConnector>,
    /// The connect ramp: connects in flight.
    pub ramp: Semaphore,
    /// First connects give up after this.
    pub connect_deadline: Instant,
    /// Reconnects give up after this.
    pub hard_deadline: Instant,
    /// One record per subscriber of this worker.
    pub subs: RefCell<Vec<SubState>>,
    /// Latency from the scheduled send time.
    pub lat_scheduled: RefCell<Latency>,
    /// Latency from the actual send time.
    pub lat_sent: RefCell<Latency>,
    /// Shared counters.
    pub counters: Counters,
    /// Churners hang up and reconnect while this is set.
    pub churn_active: Cell<bool>,
    /// Set once the worker reported its ramp over; a first connect after it is late.
    pub ramp_over: Cell<bool>,
    /// Unix ns of the last event received.
    pub last_receipt_ns: Cell<u64>,
    /// Distinct errors with their counts.
    pub errors: RefCell<Vec<(String, u64)>>,
}

impl Fleet {
    /// The fleet for `plan`, with one record per subscriber.
    pub fn new(plan: WorkerPlan) -> Result<Fleet, String> {
        let mut urls = Vec::new();
        let mut uris = Vec::new();
        for ch in &plan.channels {
            let url = Url::parse(&fill(&plan.sub_url, ch))?;
            uris.push(
                url.absolute()
                    .parse::<http::Uri>()
                    .map_err(|e| format!("{}: {e}", url.absolute()))?,
            );
            urls.push(url);
        }
        let tls = match urls.first() {
            Some(u) if u.tls => Some(TlsConnector::from(crate::tls::client_config(plan.http2)?)),
            _ => None,
        };
        let now = Instant::now();
        let subs = (0..plan.count)
            .map(|local| {
                let global = plan.first + local;
                SubState {
                    tracker: Tracker::new(plan.events_per_channel),
                    channel: global % plan.channels.len(),
                    slow: plan.is_slow(global),
                    churner: plan.is_churner(global),
                    ..SubState::default()
                }
            })
            .collect();
        Ok(Fleet {
            ramp: Semaphore::new(plan.connect_concurrency.max(1)),
            connect_deadline: now + Duration::from_millis(plan.connect_deadline_ms),
            hard_deadline: now + Duration::from_millis(plan.hard_deadline_ms),
            urls,
            uris,
            tls,
            subs: RefCell::new(subs),
            lat_scheduled: RefCell::new(Latency::new()),
            lat_sent: RefCell::new(Latency::new()),
            counters: Counters::default(),
            churn_active: Cell::new(false),
            ramp_over: Cell::new(false),
            last_receipt_ns: Cell::new(0),
            errors: RefCell::new(Vec::new()),
            plan,
        })
    }

    /// Remembers an error message (the first few distinct ones, with counts).
    pub fn note_error(&self, message: String) {
        let mut errors = self.errors.borrow_mut();
        if let Some(e) = errors.iter_mut().find(|(m, _)| *m == message) {
            e.1 += 1;
        } else if errors.len() < MAX_ERRORS {
            errors.push((message, 1));
        }
    }
}

/// An open stream, its response head read.
enum Conn {
    /// Raw HTTP/1.1 over TCP.
    Plain {
        stream: TcpStream,
        decoder: BodyDecoder,
    },
    /// HTTP/1.1 over TLS (boxed: a TLS session is large).
    Tls {
        stream: Box<TlsStream<TcpStream>>,
        decoder: BodyDecoder,
    },
    /// HTTP/2: the response body (the connection runs as its own task).
    H2 {
        body: hyper::body::Incoming,
        _sender: SendRequest<Empty<Bytes>>,
    },
}

/// Why reading stopped.
enum Stop {
    /// A churner's time to hang up.
    Churn,
    /// The stream ended or broke.
    Ended(String),
}

/// Runs subscriber `local` of the fleet until its stream ends (it is dropped with the
/// worker's runtime otherwise).
pub async fn run(fleet: Rc<Fleet>, local: usize) {
    let global = fleet.plan.first + local;
    let (channel, slow, churner) = {
        let subs = fleet.subs.borrow();
        (subs[local].channel, subs[local].slow, subs[local].churner)
    };
    let source = fleet.plan.sources[global % fleet.plan.sources.len()];
    let mut parser = SseParser::new();
    let mut first = true;
    loop {
        let last_id = (!first).then(|| parser.last_id().to_vec());
        if last_id.as_ref().is_some_and(|id| id.is_empty()) {
            bump(&fleet.counters.blind_reconnects);
        }
        let deadline = if first {
            fleet.connect_deadline
        } else {
            fleet.hard_deadline
        };
        let (conn, leftover) = match connect(&fleet, channel, source, last_id, deadline).await {
            Ok(c) => c,
            Err(e) => {
                fleet.note_error(e);
                if first {
                    bump(&fleet.counters.failed);
                } else {
                    bump(&fleet.counters.reconnect_failed);
                }
                fleet.subs.borrow_mut()[local].gone = true;
                return;
            }
        };
        {
            let mut subs = fleet.subs.borrow_mut();
            subs[local].connected = true;
            if !subs[local].ever_connected && fleet.ramp_over.get() {
                subs[local].late = true;
            }
            subs[local].ever_connected = true;
        }
        bump(&fleet.counters.open);
        // A new connection starts a new stream: fresh parser state, same last id.
        let id = parser.last_id().to_vec();
        parser = SseParser::new();
        parser.set_last_id(&id);
        if slow {
            // Stop reading: hold the socket open and never look at it again.
            let _held = conn;
            std::future::pending::<()>().await;
            return;
        }
        let stop = read(&fleet, local, conn, &leftover, &mut parser, churner).await;
        fleet.subs.borrow_mut()[local].connected = false;
        fleet.counters.open.set(fleet.counters.open.get() - 1);
        match stop {
            Stop::Churn => {
                bump(&fleet.counters.reconnects);
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..100))).await;
                first = false;
            }
            Stop::Ended(why) => {
                fleet.note_error(why);
                bump(&fleet.counters.dropped);
                fleet.subs.borrow_mut()[local].gone = true;
                return;
            }
        }
    }
}

async fn connect(
    fleet: &Fleet,
    channel: usize,
    source: Ipv4Addr,
    last_id: Option<Vec<u8>>,
    deadline: Instant,
) -> Result<(Conn, Vec<u8>), String> {
    let mut last_error = String::from("connect deadline passed before the first attempt");
    for attempt in 1..=fleet.plan.connect_attempts.max(1) {
        let permit = tokio::time::timeout_at(deadline, fleet.ramp.acquire())
            .await
            .map_err(|_| "connect deadline passed waiting for the ramp".to_string())?
            .map_err(|_| "ramp closed".to_string())?;
        let open = Box::pin(open(fleet, channel, source, last_id.as_deref()));
        let result = tokio::time::timeout(OPEN_TIMEOUT, open).await;
        drop(permit);
        match result {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = format!("no response head within {OPEN_TIMEOUT:?}"),
        }
        let pause = RETRY_PAUSE * attempt + Duration::from_millis(fastrand::u64(0..100));
        if Instant::now() + pause >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    Err(last_error)
}

async fn open(
    fleet: &Fleet,
    channel: usize,
    source: Ipv4Addr,
    last_id: Option<&[u8]>,
) -> Result<(Conn, Vec<u8>), String> {
    let url = &fleet.urls[channel];
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::new(source.into(), 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = socket
        .connect(url.socket_addr())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    match (&fleet.tls, fleet.plan.http2) {
        (None, false) => {
            let mut stream = stream;
            let (decoder, leftover) = h1_head(&mut stream, url, last_id).await?;
            Ok((Conn::Plain { stream, decoder }, leftover))
        }
        (Some(tls), false) => {
            let mut stream = Box::new(tls_connect(tls, stream).await?);
            let (decoder, leftover) = h1_head(&mut *stream, url, last_id).await?;
            Ok((Conn::Tls { stream, decoder }, leftover))
        }
        (None, true) => h2_open(TokioIo::new(stream), &fleet.uris[channel], last_id).await,
        (Some(tls), true) => {
            let stream = tls_connect(tls, stream).await?;
            if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err("the server did not choose h2 by ALPN".into());
            }
            h2_open(TokioIo::new(stream), &fleet.uris[channel], last_id).await
        }
    }
}

async fn tls_connect(
    tls: &TlsConnector,
    stream: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let name = rustls_pki_types::ServerName::try_from("localhost")
        .map_err(|e| format!("server name: {e}"))?;
    tls.connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// Writes the GET and reads the response head; returns the body decoder and any body
/// bytes that came with the head.
async fn h1_head<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    url: &Url,
    last_id: Option<&[u8]>,
) -> Result<(BodyDecoder, Vec<u8>), String> {
    stream
        .write_all(&subscribe_request(url, last_id))
        .await
        .map_err(|e| format!("write request: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut tmp = vec![0u8; 2048];
    loop {
        let n = stream
            .read(&mut tmp)
            .await
            .map_err(|e| format!("read response head: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(head) = parse_head(&buf)? {
            if head.status != 200 {
                return Err(format!("HTTP {} on subscribe", head.status));
            }
            return Ok((BodyDecoder::new(head.body), buf[head.len..].to_vec()));
        }
    }
}

async fn h2_open<T>(
    io: TokioIo<T>,
    uri: &http::Uri,
    last_id: Option<&[u8]>,
) -> Result<(Conn, Vec<u8>), String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = http::Request::get(uri.clone()).header("accept", "text/event-stream");
    if let Some(id) = last_id.filter(|id| !id.is_empty()) {
        request = request.header("last-event-id", id);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("h2 request: {e}"))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("HTTP {} on subscribe (h2)", response.status()));
    }
    Ok((
        Conn::H2 {
            body: response.into_body(),
            _sender: sender,
        },
        Vec::new(),
    ))
}

/// Waits for `fut`; for a churner, gives up at its hang-up time while churning is on.
/// `None`: time to hang up.
async fn or_churn<F: std::future::Future>(
    fleet: &Fleet,
    hang_up: &mut Option<Instant>,
    fut: F,
) -> Option<F::Output> {
    let Some(at) = *hang_up else {
        return Some(fut.await);
    };
    tokio::pin!(fut);
    let mut at = at;
    loop {
        match tokio::time::timeout_at(at, &mut fut).await {
            Ok(v) => return Some(v),
            Err(_) if fleet.churn_active.get() => return None,
            Err(_) => {
                // Not churning (yet, or any more): look again later.
                at = Instant::now() + churn_interval(&fleet.plan);
                *hang_up = Some(at);
            }
        }
    }
}

fn churn_interval(plan: &WorkerPlan) -> Duration {
    Duration::from_millis(fastrand::u64(
        plan.churn_min_ms..=plan.churn_max_ms.max(plan.churn_min_ms),
    ))
}

async fn read(
    fleet: &Fleet,
    local: usize,
    conn: Conn,
    leftover: &[u8],
    parser: &mut SseParser,
    churner: bool,
) -> Stop {
    let mut hang_up = churner.then(|| Instant::now() + churn_interval(&fleet.plan));
    match conn {
        Conn::Plain {
            stream,
            mut decoder,
        } => {
            if let Some(stop) = deliver(fleet, local, Some(&mut decoder), parser, leftover) {
                return stop;
            }
            loop {
                match or_churn(fleet, &mut hang_up, stream.readable()).await {
                    None => return Stop::Churn,
                    Some(Err(e)) => return Stop::Ended(format!("read: {e}")),
                    Some(Ok(())) => {}
                }
                let step = READ_BUF.with(|buf| {
                    let mut buf = buf.borrow_mut();
                    match read_drained(&stream, &mut buf) {
                        Ok(0) => Some(Stop::Ended("the server closed the stream".into())),
                        Ok(n) => deliver(fleet, local, Some(&mut decoder), parser, &buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                        Err(e) => Some(Stop::Ended(format!("read: {e}"))),
                    }
                });
                if let Some(stop) = step {
                    return stop;
                }
            }
        }
        Conn::Tls {
            mut stream,
            mut decoder,
        } => {
            if let Some(stop) = deliver(fleet, local, Some(&mut decoder), parser, leftover) {
                return stop;
            }
            let mut buf = vec![0u8; 8192];
            loop {
                let n = match or_churn(fleet, &mut hang_up, stream.read(&mut buf)).await {
                    None => return Stop::Churn,
                    Some(Err(e)) => return Stop::Ended(format!("TLS read: {e}")),
                    Some(Ok(0)) => return Stop::Ended("the server closed the stream".into()),
                    Some(Ok(n)) => n,
                };
                if let Some(stop) = deliver(fleet, local, Some(&mut decoder), parser, &buf[..n]) {
                    return stop;
                }
            }
        }
        Conn::H2 {
            mut body,
            _sender: _keep,
        } => loop {
            let frame = match or_churn(fleet, &mut hang_up, body.frame()).await {
                None => return Stop::Churn,
                Some(None) => return Stop::Ended("the server ended the h2 stream".into()),
                Some(Some(Err(e))) => return Stop::Ended(format!("h2 body: {e}")),
                Some(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if let Some(stop) = deliver(fleet, local, None, parser, &data) {
                    return stop;
                }
            }
        },
    }
}

/// Reads what the socket holds. A read shorter than the buffer took everything that
/// was queued, so the socket's readiness is cleared then and there: the next wait
/// sleeps until new data arrives instead of costing a second `recv` that would only
/// say `EAGAIN` (half the loadgen's syscalls when each wake-up brings one event).
/// Readiness is cleared only if no new edge arrived meanwhile (tokio checks its tick),
/// so nothing is missed. `Err(WouldBlock)`: nothing was there.
fn read_drained(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut got = 0;
    let result = stream.try_io(tokio::io::Interest::READABLE, || {
        let n = (&*socket2::SockRef::from(stream)).read(buf)?;
        got = n;
        if n > 0 && n < buf.len() {
            Err(std::io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

/// Feeds received bytes through the body decoder (HTTP/1.1) and the SSE parser into
/// the subscriber's tracker and the worker's histograms. `Some`: the stream ended.
fn deliver(
    fleet: &Fleet,
    local: usize,
    decoder: Option<&mut BodyDecoder>,
    parser: &mut SseParser,
    bytes: &[u8],
) -> Option<Stop> {
    if bytes.is_empty() {
        return None;
    }
    let now = unix_ns();
    let mut subs = fleet.subs.borrow_mut();
    let sub = &mut subs[local];
    let mut lat_scheduled = fleet.lat_scheduled.borrow_mut();
    let mut lat_sent = fleet.lat_sent.borrow_mut();
    let mut got_any = false;
    let mut on_event = |ev: SseEvent<'_>| {
        if ev.event == RESYNC_EVENT {
            sub.tracker.resyncs += 1;
            return;
        }
        match parse_stamp(ev.data) {
            Some(stamp) => {
                sub.received += 1;
                got_any = true;
                match sub.tracker.record(stamp.seq) {
                    Arrival::InOrder | Arrival::OutOfOrder => {
                        lat_scheduled.record_span(stamp.scheduled_ns, now);
                        lat_sent.record_span(stamp.sent_ns, now);
                    }
                    Arrival::Duplicate | Arrival::Foreign => {}
                }
            }
            None => sub.tracker.foreign += 1,
        }
    };
    let result = match decoder {
        None => {
            parser.feed(bytes, &mut on_event);
            None
        }
        Some(decoder) => match decoder.feed(bytes, |chunk| parser.feed(chunk, &mut on_event)) {
            Ok(Fed::More) => None,
            Ok(Fed::Ended(_)) => Some(Stop::Ended("the server ended the response".into())),
            Err(e) => Some(Stop::Ended(format!("bad chunked body: {e}"))),
        },
    };
    if got_any {
        fleet.last_receipt_ns.set(now);
    }
    result
}
