//! Push fan-out: a channel's *pushed* streams are written by a *push pass* over them
//! after each commit, instead of each stream's task being woken to write its own frame
//! (the other kind, *polled* streams, are bodies that hyper polls after a wake-up).
//!
//! Waking a task per subscriber per event costs more than the work itself: the wake,
//! the scheduler's queues, the poll, re-arming a wake-up registration under the
//! channel's lock, the timer; at 5,000 subscribers that was a quarter of the gateway's
//! CPU per delivery. A pass walks the channel's pushed streams and asks each to
//! deliver what it has pending, which for a stream that keeps up is one collect and
//! one non-blocking `send()`. Anything that needs waiting (a socket that is full, a lag
//! policy, the end of the stream) goes back to the stream's own task. Passes run on as
//! many tasks as the runtime has workers, each over its share of the streams.
//!
//! Scheduling: a commit sets `again` and starts a runner unless one is running; the
//! runner repeats passes until no commit came during the last one. A pass that starts
//! after a commit sees that commit's frames, so no commit is ever left unserved. The
//! flags are sequentially consistent, and a fence pairs a stream's joining with a
//! commit's look at the stream count, so no commit and no new stream miss each other.

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Streams a pass delivers to before it lets other tasks on its worker run (about
/// 2 ms of sends).
const STREAMS_BETWEEN_YIELDS: usize = 256;

/// Streams per pass task below which a pass is not split.
const MIN_STREAMS_PER_TASK: usize = 256;

/// A pushed stream: one that a push pass can deliver to.
pub trait PushedStream: Send + Sync {
    /// Writes what is pending for this stream without waiting, or hands the work to
    /// the stream's task. Never blocks.
    fn deliver(&self);
    /// Wakes the stream's task (drain, kick: it looks at its state again).
    fn wake_task(&self);
}

/// The pushed streams of one channel and its pass runner's state.
#[derive(Default)]
pub struct PushList {
    streams: Mutex<Vec<Arc<dyn PushedStream>>>,
    count: AtomicUsize,
    running: AtomicBool,
    again: AtomicBool,
}

impl std::fmt::Debug for PushList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushList")
            .field("streams", &self.count.load(Ordering::Relaxed))
            .finish()
    }
}

impl PushList {
    /// Adds a pushed stream.
    pub fn join(&self, stream: Arc<dyn PushedStream>) {
        let mut streams = self.streams.lock();
        streams.push(stream);
        self.count.store(streams.len(), Ordering::SeqCst);
        drop(streams);
        // Pairs with the fence in `schedule`: either a commit's schedule sees this
        // stream, or the stream's first collect (after this) sees that commit.
        fence(Ordering::SeqCst);
    }

    /// Removes a pushed stream (by identity).
    pub fn leave(&self, stream: &Arc<dyn PushedStream>) {
        let mut streams = self.streams.lock();
        if let Some(i) = streams.iter().position(|m| Arc::ptr_eq(m, stream)) {
            streams.swap_remove(i);
        }
        self.count.store(streams.len(), Ordering::SeqCst);
    }

    /// Number of pushed streams.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// True when there is no pushed stream.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes every pushed stream's task.
    pub fn wake_tasks(&self) {
        let streams = self.streams.lock().clone();
        for m in streams {
            m.wake_task();
        }
    }

    /// After a commit: makes sure a pass starts after it. Needs a tokio runtime.
    pub fn schedule(self: &Arc<Self>) {
        // The commit raised the head before this; pairs with the fence in `join`.
        fence(Ordering::SeqCst);
        if self.is_empty() {
            return;
        }
        self.again.store(true, Ordering::SeqCst);
        if self.running.swap(true, Ordering::SeqCst) {
            return; // the running runner sees `again`
        }
        let list = self.clone();
        tokio::spawn(async move { list.run().await });
    }

    async fn run(self: Arc<Self>) {
        loop {
            while self.again.swap(false, Ordering::SeqCst) {
                self.pass().await;
            }
            // Sequentially consistent, with `schedule`'s store of `again` and swap of
            // `running`: a commit between the last look at `again` and this store saw
            // the runner still running, and this runner then sees its `again` and takes
            // the runner back (if nobody else did). Weaker orderings could let both
            // sides miss each other (each stores one flag, then loads the other).
            self.running.store(false, Ordering::SeqCst);
            if !self.again.load(Ordering::SeqCst) || self.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }

    /// One pass over a snapshot of the streams, split over the runtime's workers.
    async fn pass(&self) {
        let streams: Arc<[Arc<dyn PushedStream>]> = self.streams.lock().as_slice().into();
        let workers = tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_workers())
            .unwrap_or(1)
            .max(1);
        let tasks = workers.min(streams.len() / MIN_STREAMS_PER_TASK).max(1);
        let share = streams.len().div_ceil(tasks);
        let mut helpers = Vec::with_capacity(tasks.saturating_sub(1));
        for t in 1..tasks {
            let streams = streams.clone();
            helpers.push(tokio::spawn(async move {
                let end = ((t + 1) * share).min(streams.len());
                deliver_all(&streams[(t * share).min(end)..end]).await;
            }));
        }
        deliver_all(&streams[..share.min(streams.len())]).await;
        for h in helpers {
            let _ = h.await;
        }
    }
}

/// Delivers to `streams` in order, letting other tasks on this worker run between
/// slices (a pass over thousands of streams takes tens of milliseconds).
async fn deliver_all(streams: &[Arc<dyn PushedStream>]) {
    for slice in streams.chunks(STREAMS_BETWEEN_YIELDS) {
        for m in slice {
            m.deliver();
        }
        if slice.len() == STREAMS_BETWEEN_YIELDS {
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[derive(Default)]
    struct Counter {
        delivered: AtomicU64,
        woken: AtomicU64,
    }

    impl PushedStream for Counter {
        fn deliver(&self) {
            self.delivered.fetch_add(1, Ordering::Relaxed);
        }
        fn wake_task(&self) {
            self.woken.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_pushed_stream_gets_a_pass_after_every_burst_of_commits() {
        let list = Arc::new(PushList::default());
        let counters: Vec<Arc<Counter>> = (0..1000).map(|_| Arc::default()).collect();
        for c in &counters {
            list.join(c.clone());
        }
        assert_eq!(list.len(), 1000);
        for _ in 0..50 {
            list.schedule();
        }
        // Wait until the runner is done (bounded).
        for _ in 0..1000 {
            if !list.running.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for c in &counters {
            let n = c.delivered.load(Ordering::Relaxed);
            assert!((1..=50).contains(&n), "a stream got {n} passes");
        }
        let gone: Arc<dyn PushedStream> = counters[0].clone();
        list.leave(&gone);
        assert_eq!(list.len(), 999);
        list.wake_tasks();
        assert_eq!(counters[0].woken.load(Ordering::Relaxed), 0);
        assert_eq!(counters[1].woken.load(Ordering::Relaxed), 1);
    }
}
