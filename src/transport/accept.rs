//! Accept loops: one per configured listener, plain (HTTP/1.1 and h2c by prior
//! knowledge) or TLS (ALPN `h2` / `http/1.1`). Each accepted socket is admitted against
//! the connection caps, given keepalive socket options, wrapped in [`GuardedIo`], and
//! served by hyper until it ends or a graceful shutdown finishes it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::RwLock;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Routes};
use crate::http;
use crate::http::shared::{Live, Shared};
use crate::model::error::ApiError;
use crate::model::reasons::RefusalReason;
use crate::observe::refusal_log::log_refusal;
use crate::policy::admission::{ConnectionLimiter, Permit, Refusal, RefusalSlot, REFUSAL_BUDGET};
use crate::stream::connection::ConnState;
use crate::stream::watchdog::{self, WatchBounds};
use crate::transport::guarded_io::{GuardedIo, Prefixed};
use crate::transport::idle::{Activity, Tracked};
use crate::transport::plain_h1::{self, After, Head, Prepared};
use crate::transport::pushed_stream;
use crate::wire::h1_head::{skip_empty_lines, H2_PREFACE_START};

/// Pending connections the kernel may queue per listener.
pub const LISTEN_BACKLOG: u32 = 4096;

/// How long a refused connection may take to receive its answer (TLS handshake included).
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connection holds while it is served: a place in the caps (admitted) or a
/// place in the refusal budget (being answered 429/503).
enum Holds {
    /// Admitted.
    Place(#[allow(dead_code)] Permit),
    /// Refused, being answered.
    Refusal(#[allow(dead_code)] RefusalSlot),
}

/// A TLS acceptor that SIGHUP can replace (new certificate) under running connections.
pub type SharedAcceptor = Arc<RwLock<TlsAcceptor>>;

/// What every accept loop shares.
#[derive(Clone)]
pub struct AcceptContext {
    /// Handlers' state.
    pub shared: Arc<Shared>,
    /// Connection caps.
    pub limiter: Arc<ConnectionLimiter>,
    /// The cap on open connections when `limits.max_connections` is unset: the
    /// open-files limit (raised at start) less a reserve. The configured value, when
    /// set, is read from the live configuration, so a reload changes the cap.
    pub default_max_connections: usize,
    /// Flips to true when a graceful shutdown begins.
    pub shutdown: watch::Receiver<bool>,
}

/// A bound listener, ready to accept.
pub struct BoundListener {
    /// Its configured name.
    pub name: String,
    /// The address it actually listens on (port 0 resolved).
    pub local_addr: SocketAddr,
    /// The TLS acceptor of a TLS listener.
    pub tls: Option<SharedAcceptor>,
    /// The endpoints it serves.
    pub routes: Routes,
    socket: TcpListener,
}

impl BoundListener {
    /// Binds `address`.
    pub async fn bind(
        name: &str,
        address: SocketAddr,
        tls: Option<SharedAcceptor>,
        routes: Routes,
    ) -> std::io::Result<BoundListener> {
        let socket = match address {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        // A reconnect storm arrives all at once: a deep queue keeps clients from SYN
        // retries of seconds (the kernel caps it at net.core.somaxconn).
        let socket = socket.listen(LISTEN_BACKLOG)?;
        Ok(BoundListener {
            name: name.to_string(),
            local_addr: socket.local_addr()?,
            tls,
            routes,
            socket,
        })
    }

    /// Accepts connections until the task is dropped.
    pub async fn run(self, context: AcceptContext) {
        loop {
            let (stream, peer) = match self.socket.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = %self.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let tls = self.tls.as_ref().map(|t| t.read().clone());
            connection(stream, peer, tls, self.routes, context.clone());
        }
    }
}

/// Admits one accepted connection and spawns the task that serves it. The plain
/// path is spawned as its own task; the hyper and TLS paths are boxed inside theirs:
/// a task's future is as large as its largest state, and the many idle event streams
/// of the pushed path should not each carry the size of hyper's.
fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    routes: Routes,
    context: AcceptContext,
) {
    // The connection's limits and timeouts are the snapshot in force when it was
    // accepted; each of its requests takes the one in force when it arrives.
    let live = context.shared.live();
    let config = &live.config;
    let metrics = &context.shared.metrics;
    let max_total = config
        .limits
        .max_connections
        .unwrap_or(context.default_max_connections);
    let mut admitted =
        context
            .limiter
            .admit(peer.ip(), max_total, config.limits.max_connections_per_ip);
    if let (Ok(_), Some(rate)) = (&admitted, config.rate_limits.connections_per_second) {
        let burst = config.rate_limits.connection_burst;
        let now = std::time::Instant::now();
        if context
            .shared
            .connection_rate
            .take(&peer.ip(), rate, burst, now)
            .is_err()
        {
            admitted = Err(Refusal::Rate); // drops the permit: its place goes back
        }
    }
    // A refused connection holds no place in the caps: it is answered out of the
    // separate refusal budget, or closed at once when that is spent.
    let (permit, refusal) = match admitted {
        Ok(permit) => (Holds::Place(permit), None),
        Err(refusal) => {
            metrics.refused(refusal.reason());
            log_refusal(
                &context.shared.log_budget,
                peer,
                &ApiError::refused(refusal.reason(), "", None),
            );
            match context.limiter.refusal_slot(REFUSAL_BUDGET) {
                Some(slot) => (Holds::Refusal(slot), Some(refusal)),
                None => return, // closing is all we can afford
            }
        }
    };
    configure_socket(&stream, config);
    let conn = ConnState::new(peer, tls.is_some(), routes);
    let mut first_request_within = config.limits.header_read_timeout;
    if tls.is_some() {
        first_request_within += config.limits.tls_handshake_timeout;
    }
    let io = GuardedIo::new(
        stream,
        conn.clone(),
        config.slow_clients.write_timeout,
        first_request_within,
    );
    match tls {
        None => match permit {
            Holds::Place(permit) => {
                tokio::spawn(serve_plain(io, conn, live, context, permit));
            }
            refusing => {
                tokio::spawn(Box::pin(async move {
                    let _refusing = refusing;
                    serve(io, conn, refusal, &live.config, context).await
                }));
            }
        },
        Some(acceptor) => {
            tokio::spawn(Box::pin(async move {
                let refused = refusal.is_some();
                let _held = permit;
                let served = serve_tls(io, acceptor, conn, refusal, live, context);
                if refused {
                    // A refusal's whole cost, handshake included, is bounded.
                    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, served).await;
                } else {
                    served.await
                }
            }));
        }
    }
}

/// A TLS connection: handshake (bounded in time), then hyper.
async fn serve_tls(
    io: GuardedIo<TcpStream>,
    acceptor: TlsAcceptor,
    conn: Arc<ConnState>,
    refusal: Option<Refusal>,
    live: Arc<Live>,
    context: AcceptContext,
) {
    let config = &live.config;
    let handshake = tokio::time::timeout(config.limits.tls_handshake_timeout, acceptor.accept(io));
    match handshake.await {
        Ok(Ok(tls_stream)) => serve(tls_stream, conn, refusal, config, context).await,
        Ok(Err(e)) => tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed"),
        Err(_) => {
            context
                .shared
                .metrics
                .refused(RefusalReason::TlsHandshakeTimeout);
            tracing::debug!(peer = %conn.peer, "TLS handshake timed out");
        }
    }
}

/// TCP keepalive probes and TCP_USER_TIMEOUT, so the kernel finds dead peers too.
fn configure_socket(stream: &TcpStream, config: &Config) {
    let _ = stream.set_nodelay(true);
    let sock = SockRef::from(stream);
    let k = &config.keepalive;
    if let Some(idle) = k.tcp_keepalive {
        let probes = TcpKeepalive::new()
            .with_time(idle)
            .with_interval(Duration::from_secs(10).min(idle))
            .with_retries(3);
        if let Err(e) = sock.set_tcp_keepalive(&probes) {
            tracing::debug!(error = %e, "cannot set TCP keepalive");
        }
    }
    if let Some(timeout) = k.tcp_user_timeout {
        if let Err(e) = sock.set_tcp_user_timeout(Some(timeout)) {
            tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT");
        }
    }
}

/// A plain connection: event streams over HTTP/1.1 take the pushed path, anything else
/// goes to hyper with the bytes already read.
async fn serve_plain(
    mut io: GuardedIo<TcpStream>,
    conn: Arc<ConnState>,
    live: Arc<Live>,
    context: AcceptContext,
    _permit: Permit,
) {
    let config = &live.config;
    let shared = context.shared.clone();
    let mut first = true;
    loop {
        let mut buf = Vec::with_capacity(1024);
        let limits = &config.limits;
        // The head reads and the answers other than a stream are boxed: the task's
        // future is as large as its largest state, and it should be the idle stream's.
        let head = if first {
            Box::pin(plain_h1::read_head(
                &mut io,
                &mut buf,
                limits.max_header_bytes,
                limits.max_headers,
            ))
            .await
        } else {
            // Between requests on a kept-alive connection the same bound applies as
            // hyper's: a whole head within the header read timeout.
            let read = plain_h1::read_head(
                &mut io,
                &mut buf,
                limits.max_header_bytes,
                limits.max_headers,
            );
            match Box::pin(tokio::time::timeout(limits.header_read_timeout, read)).await {
                Ok(head) => head,
                Err(_) => return,
            }
        };
        let first_request = std::mem::replace(&mut first, false);
        match head {
            Head::Gone => {
                if io.timed_out_before_request {
                    context.shared.metrics.refused(RefusalReason::HeaderTimeout);
                }
                return;
            }
            Head::Events {
                uri,
                headers,
                keep_alive,
                consumed,
            } if conn.routes.public() => {
                // Empty lines after the head are not a request (RFC 9112 §2.2).
                let pipelined = !skip_empty_lines(&buf[consumed..]).is_empty();
                drop(buf);
                let prepared = Box::pin(plain_h1::prepare(
                    &mut io, &shared, &conn, uri, headers, keep_alive, pipelined,
                ))
                .await;
                let after = match prepared {
                    Prepared::Stream { body } => {
                        let stream = pushed_stream::open(io, body);
                        let (back, after) = pushed_stream::run(stream).await;
                        match back {
                            Some(back) => io = back,
                            None => return,
                        }
                        after
                    }
                    Prepared::Answered(after) => after,
                };
                // A stream that ends during the drain closes its connection too: the
                // client reconnects, through the load balancer, to another node.
                if matches!(after, After::Close)
                    || !keep_alive
                    || *context.shutdown.borrow()
                    || shared.drain.is_draining()
                {
                    return;
                }
            }
            Head::Other if !first_request && buf.starts_with(H2_PREFACE_START) => {
                // HTTP/2's preface after an HTTP/1.1 exchange (RFC 9113 §3.4): a 400
                // and a close, as hyper answers it on its own HTTP/1.1 connections.
                Box::pin(plain_h1::refuse_h2_preface(&mut io, &shared, conn.peer)).await;
                return;
            }
            _ => {
                // Anything but an event stream on a public listener: hyper's, whole.
                let io = Prefixed::new(buf, io);
                return Box::pin(serve(io, conn, None, config, context)).await;
            }
        }
    }
}

fn builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let limits = &config.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.keepalive.h2_ping_interval)
        .keep_alive_timeout(config.keepalive.h2_ping_timeout)
        .max_header_list_size(limits.max_header_bytes as u32)
        // Event streams are capped by the gateway itself (counted, answered 429);
        // hyper's own cap leaves room for a few other requests beside them.
        .max_concurrent_streams((limits.max_streams_per_connection + 16) as u32);
    builder
}

async fn serve<S>(
    io: S,
    conn: Arc<ConnState>,
    refusal: Option<Refusal>,
    config: &Config,
    mut context: AcceptContext,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = builder(config);
    let shared = context.shared.clone();
    let info = conn.clone();
    let metrics = shared.metrics.clone();
    if let Some(refusal) = refusal {
        let service = service_fn(move |req| http::router::refuse(info.clone(), refusal, req));
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, connection).await;
        return;
    }
    // Every request is counted open until its response body is dropped, so a
    // connection with none open for `keepalive.h2_idle_timeout` can be shut down.
    let activity = Activity::new();
    let counted = activity.clone();
    let service = service_fn(move |req| {
        let open = counted.start();
        let handled = http::router::handle(shared.clone(), info.clone(), req);
        async move {
            let response = handled.await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| Tracked::new(body, open)))
        }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let idle = activity.idle_for(config.keepalive.h2_idle_timeout);
    tokio::pin!(idle);
    let result = if *context.shutdown.borrow() {
        connection.as_mut().graceful_shutdown();
        connection.await
    } else {
        tokio::select! {
            result = connection.as_mut() => result,
            _ = context.shutdown.changed() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
            // GOAWAY on HTTP/2 (no new streams; the open ones finish), then close.
            _ = idle.as_mut() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
            // A stream hyper does not poll broke a slow-client bound: end it all.
            reason = watchdog::watch(conn.clone(), watch_bounds(config)) => {
                conn.set_close_reason(reason);
                return;
            }
        }
    };
    if let Err(e) = result {
        let hyper_error = e.downcast_ref::<hyper::Error>();
        if hyper_error.is_some_and(|h| h.is_parse_too_large()) {
            metrics.refused(RefusalReason::HeaderTooLarge);
        } else if !conn
            .first_request_seen
            .load(std::sync::atomic::Ordering::Acquire)
            && (hyper_error.is_some_and(|h| h.is_timeout()) || is_timed_out(&*e))
        {
            metrics.refused(RefusalReason::HeaderTimeout);
        }
        tracing::debug!(peer = %conn.peer, error = %e, "connection ended with an error");
    }
}

/// The slow-client bounds the watchdog holds for this connection's polled streams.
fn watch_bounds(config: &Config) -> WatchBounds {
    let slow = &config.slow_clients;
    WatchBounds {
        heartbeat: config.sse.heartbeat,
        write_timeout: slow.write_timeout,
        max_lag_events: slow.max_lag_events,
        max_lag_bytes: slow.max_lag_bytes,
    }
}

/// True when an error chain holds an I/O `TimedOut` (our deadlines).
fn is_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cur = err.source();
    }
    false
}
