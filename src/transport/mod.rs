//! The transport layer: accept loops and socket options, TLS, the pushed HTTP/1.1
//! stream path on plain listeners, and hyper serving. Imports `http` and below.

pub mod accept;
pub mod guarded_io;
pub mod idle;
pub mod plain_h1;
pub mod pushed_stream;
pub mod tls;
