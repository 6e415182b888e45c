//! The wire layer: stateless bytes. SSE frame encoding (`sse`), JSON data written
//! compact as sent (`compact_json`), HTTP/1.1 chunk framing (`chunked`) and
//! request/response heads (`h1_head`). Imports only `model`.

pub mod chunked;
pub mod compact_json;
pub mod h1_head;
pub mod sse;
