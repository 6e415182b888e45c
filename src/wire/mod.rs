//! The wire layer: stateless bytes. SSE frame encoding (`sse`) and HTTP/1.1 chunk
//! framing (`chunked`). Imports only `model`.

pub mod chunked;
pub mod sse;
