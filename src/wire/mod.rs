//! The wire layer: stateless bytes. SSE frame encoding (`sse`), HTTP/1.1 chunk
//! framing (`chunked`) and request/response heads (`h1_head`). Imports only `model`.

pub mod chunked;
pub mod h1_head;
pub mod sse;
