//! Reading a request body whole, bounded in size (`limits.max_body_bytes`) and in time
//! (`limits.body_read_timeout` and `limits.min_body_bytes_per_second`).
//!
//! Hand-written rather than taken from a crate: tower-http's `TimeoutBody` bounds each
//! wait for a frame but not the overall rate (a byte every few seconds passes it), and
//! the rule here is a deadline recomputed after each frame, a few lines on top of
//! `http-body-util`'s `Limited`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header;
use http::Request;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::config::LimitsConfig;
use crate::model::error::ApiError;
use crate::model::reasons::RefusalReason;

/// Reads the whole body, refusing one over `limits.max_body_bytes` (by its
/// `Content-Length` before reading, or while reading) and one that arrives too slowly
/// (408, see [`next_deadline`]). The body is parsed as JSON whatever its Content-Type:
/// `curl -d` sends a form type, and a wrong guess there should not cost a newcomer a
/// 415.
pub async fn read_body(req: Request<Incoming>, limits: &LimitsConfig) -> Result<Bytes, ApiError> {
    let max = limits.max_body_bytes;
    let too_large = || {
        ApiError::refused(
            RefusalReason::BodyTooLarge,
            format!("the body exceeds {max} bytes"),
            None,
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Limited::new(req.into_body(), max);
    let started = Instant::now();
    let mut last_progress = started;
    let mut received = BytesMut::new();
    loop {
        let deadline = next_deadline(
            started,
            last_progress,
            received.len() as u64,
            limits.body_read_timeout,
            limits.min_body_bytes_per_second,
        );
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(frame) => frame,
            Err(_) => {
                return Err(ApiError::refused(
                    RefusalReason::BodyTimeout,
                    format!(
                        "the body arrived too slowly ({} bytes so far); send it within {:?}, at {} bytes/s at least",
                        received.len(),
                        limits.body_read_timeout,
                        limits.min_body_bytes_per_second
                    ),
                    None,
                ))
            }
        };
        match frame {
            None => return Ok(received.freeze()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() {
                        last_progress = Instant::now();
                        received.extend_from_slice(&data);
                    }
                }
            }
            Some(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Some(Err(_)) => {
                return Err(ApiError::bad_request(
                    "body_unreadable",
                    "the request body could not be read",
                ))
            }
        }
    }
}

/// When the body must have made progress by: `timeout` after the last bytes came, and
/// never later than `timeout` plus the time `received + 1` bytes take at `min_rate`
/// bytes per second from the start (a body that keeps trickling is cut off too).
pub fn next_deadline(
    started: Instant,
    last_progress: Instant,
    received: u64,
    timeout: Duration,
    min_rate: u64,
) -> Instant {
    // Far enough to be "never" for a deadline, without overflowing `Instant`.
    let far = Duration::from_secs(86_400 * 365);
    let idle = last_progress
        .checked_add(timeout)
        .unwrap_or_else(|| last_progress + far);
    let millis = received
        .saturating_add(1)
        .saturating_mul(1000)
        .checked_div(min_rate.max(1))
        .unwrap_or(u64::MAX);
    let paced = Duration::from_millis(millis)
        .checked_add(timeout)
        .map(|d| d.min(far))
        .unwrap_or(far);
    idle.min(started + paced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_progress_and_the_minimum_rate() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // Nothing yet: the timeout from the start.
        assert_eq!(next_deadline(t0, t0, 0, s(10), 1000), t0 + s(10));
        // Steady progress at a good rate: the wait since the last bytes decides.
        assert_eq!(
            next_deadline(t0, t0 + s(5), 100_000, s(10), 1000),
            t0 + s(15)
        );
        // A trickle: fresh bytes just now, but far too few for the time spent.
        assert_eq!(
            next_deadline(t0, t0 + s(30), 3, s(10), 1000),
            t0 + s(10) + Duration::from_millis(4)
        );
        // Hostile numbers do not overflow.
        let _ = next_deadline(t0, t0, u64::MAX, Duration::MAX, 1);
        let _ = next_deadline(t0, t0, u64::MAX, s(1), 0);
    }
}
