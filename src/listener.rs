//! Accept loops: one per configured listener, plain (HTTP/1.1 and h2c by prior
//! knowledge) or TLS (ALPN `h2` / `http/1.1`), each connection served by hyper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::http;
use crate::state::{ConnInfo, Shared};

/// How long a TLS client has to finish its handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 PING interval on quiet connections (finds dead peers behind the stream).
pub const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// A bound listener, ready to accept.
pub struct BoundListener {
    /// Its configured name.
    pub name: String,
    /// The address it actually listens on (port 0 resolved).
    pub local_addr: SocketAddr,
    /// The TLS acceptor of a TLS listener.
    pub tls: Option<TlsAcceptor>,
    socket: TcpListener,
}

impl BoundListener {
    /// Binds `address`.
    pub async fn bind(
        name: &str,
        address: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<BoundListener> {
        let socket = TcpListener::bind(address).await?;
        Ok(BoundListener {
            name: name.to_string(),
            local_addr: socket.local_addr()?,
            tls,
            socket,
        })
    }

    /// Accepts connections until the task is dropped.
    pub async fn run(self, shared: Arc<Shared>) {
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
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let info = ConnInfo {
                    peer,
                    tls: tls.is_some(),
                };
                match tls {
                    None => serve(stream, info, shared).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls_stream)) => serve(tls_stream, info, shared).await,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            });
        }
    }
}

async fn serve<S>(stream: S, info: ConnInfo, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_KEEPALIVE_INTERVAL))
        .keep_alive_timeout(Duration::from_secs(20));
    let service = service_fn(move |req| http::handle(shared.clone(), info, req));
    if let Err(e) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
    }
}
