//! Bounded waits: every wait of the suite has a safety timeout so a hung test fails;
//! no timing is ever asserted.

use std::future::Future;
use std::time::Duration;

/// Safety net for any single wait (a connect, a response, the next SSE block).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test if it does not finish within [`STEP_TIMEOUT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {STEP_TIMEOUT:?}: {what}"),
    }
}

/// Polls `check` every 20 ms until it holds; panics after `limit` (a safety net: a
/// healthy run finishes far sooner, and no test asserts how long it took).
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let rounds = (limit.as_millis() / 20 + 1) as usize;
    for _ in 0..rounds {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not reached within the safety limit of {limit:?}: {what}");
}
