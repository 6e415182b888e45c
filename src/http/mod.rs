//! The HTTP layer: the only place that knows the URLs.
//!
//! `GET /events`, `GET /events/{channel}`, `POST /publish`, `GET /cursor`,
//! `GET /healthz`, `GET /readyz`, `GET /metrics`, and the admin API under `/admin/`.
//! [`router`] maps requests to handlers; every request passes the [`gate`] (first
//! request seen, CORS), whether it came through hyper or the plain HTTP/1.1 path (pushed streams);
//! [`subscribe`] and [`publish`] each parse, check, then open or accept; [`respond`]
//! builds answers and error bodies.

pub mod admin;
pub mod gate;
pub mod ops;
pub mod publish;
pub mod read_body;
pub mod respond;
pub mod router;
pub mod shared;
pub mod subscribe;
