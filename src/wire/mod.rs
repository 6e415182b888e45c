//! The wire layer: stateless bytes. SSE frame encoding (`sse`), JSON data written
//! compact as sent (`compact_json`) and HTTP/1.1 chunk framing (`chunked`). Imports
//! only `model`.

pub mod chunked;
pub mod compact_json;
pub mod sse;
