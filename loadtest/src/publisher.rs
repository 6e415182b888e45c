//! The publisher: sends M events at a fixed rate without coordinated omission.
//!
//! Every event's send time is fixed before the run (`t0 + k / rate`); the scheduler
//! hands event `k` to its lane at that instant whatever happened to the earlier ones,
//! and the payload carries both the scheduled and the actual send time, so a server that
//! stalls its publishers shows up in the subscribers' latency instead of hiding in a
//! slower send loop. A lane is one keep-alive HTTP/1.1 connection with up to `window`
//! pipelined requests; channel `c` always uses lane `c % lanes`, and a server answers a
//! connection's requests in order, so each channel's events are accepted in order.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::http1::{parse_head, BodyDecoder, BodyKind, Fed};
use crate::latency::{Latency, LatencySummary};
use crate::proto::ChannelExpect;
use crate::subscriber::unix_ns;
use crate::target::{fill, publish_request, Format, Url};
use crate::tracker::{payload, Stamp};

/// Delay between planning the schedule and the first event.
pub const LEAD_IN: Duration = Duration::from_millis(200);

/// Connect attempts of a lane before it fails its event.
const CONNECT_ATTEMPTS: u32 = 3;

/// What to publish, and how.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// The server's publish format.
    pub format: Format,
    /// Publish URL template (`{channel}`).
    pub url: String,
    /// Bearer key (ssegate).
    pub key: Option<String>,
    /// Channel names; event `k` goes to `channels[k % len]` as that channel's event
    /// number `k / len`.
    pub channels: Vec<String>,
    /// Events per second, all channels together.
    pub rate: f64,
    /// Events in all.
    pub events: u64,
    /// Payload size in bytes (at least the stamp).
    pub payload_bytes: usize,
    /// Publish connections.
    pub lanes: usize,
    /// Requests in flight per lane: pipelined on one connection, or (`one_shot`) on as
    /// many connections.
    pub window: usize,
    /// One connection per request (for a server that closes after each answer, like
    /// Pushpin's publish port): up to `window` of them at once, so sends stay on schedule.
    pub one_shot: bool,
    /// Stop scheduling at this instant; events not yet due are not sent.
    pub schedule_deadline: Instant,
    /// Give up waiting for answers at this instant.
    pub answer_deadline: Instant,
}

/// What the publisher did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublishOutcome {
    /// Offered rate (events/s).
    pub offered_rate: f64,
    /// Events planned.
    pub planned: u64,
    /// Events whose time came before the schedule deadline.
    pub scheduled: u64,
    /// Requests written.
    pub sent: u64,
    /// Answered with 2xx.
    pub accepted: u64,
    /// Answered otherwise, or never written, or never answered.
    pub failed: u64,
    /// Sent events per second, first scheduled time to last send.
    pub achieved_send_rate: f64,
    /// Accepted events per second, first scheduled time to last answer.
    pub achieved_accept_rate: f64,
    /// Seconds from the first scheduled time to the last answer.
    pub seconds: f64,
    /// Actual send minus scheduled send.
    pub send_lag: LatencySummary,
    /// Answer minus scheduled send.
    pub answer_latency: LatencySummary,
    /// Unix ns of the first scheduled send.
    pub t0_ns: u64,
    /// Unix ns of the last answer.
    pub last_answer_ns: u64,
    /// Per channel: what subscribers should expect.
    pub expected: Vec<ChannelExpect>,
    /// A few distinct errors.
    pub errors: Vec<String>,
}

struct Job {
    channel: usize,
    seq: u32,
    scheduled_ns: u64,
}

struct State {
    out: PublishOutcome,
    send_lag: Latency,
    answer: Latency,
    last_sent_ns: u64,
}

impl State {
    fn fail(&mut self, job: &Job, why: String) {
        self.out.failed += 1;
        self.out.expected[job.channel].unconfirmed.push(job.seq);
        if !self.out.errors.contains(&why) && self.out.errors.len() < 8 {
            self.out.errors.push(why);
        }
    }
}

/// Runs the plan to the end (or its deadlines) on the current `LocalSet`.
pub async fn run(plan: PublishPlan) -> Result<PublishOutcome, String> {
    let lanes = plan.lanes.clamp(1, plan.channels.len().max(1));
    let mut urls = Vec::new();
    for ch in &plan.channels {
        urls.push(Url::parse(&fill(&plan.url, ch))?);
    }
    let state = Rc::new(RefCell::new(State {
        out: PublishOutcome {
            offered_rate: plan.rate,
            planned: plan.events,
            expected: vec![ChannelExpect::default(); plan.channels.len()],
            ..PublishOutcome::default()
        },
        send_lag: Latency::new(),
        answer: Latency::new(),
        last_sent_ns: 0,
    }));
    let plan = Rc::new(plan);
    let urls = Rc::new(urls);
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..lanes {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        let task = if plan.one_shot {
            tokio::task::spawn_local(one_shot_lane(plan.clone(), urls.clone(), state.clone(), rx))
        } else {
            tokio::task::spawn_local(lane(plan.clone(), urls.clone(), state.clone(), rx))
        };
        tasks.push(task);
    }
    let period_ns = (1e9 / plan.rate.max(0.001)) as u64;
    let t0 = Instant::now() + LEAD_IN;
    let t0_ns = unix_ns() + LEAD_IN.as_nanos() as u64;
    state.borrow_mut().out.t0_ns = t0_ns;
    let n_channels = plan.channels.len() as u64;
    for k in 0..plan.events {
        let at = t0 + Duration::from_nanos(k * period_ns);
        if at > plan.schedule_deadline {
            break;
        }
        tokio::time::sleep_until(at).await;
        let channel = (k % n_channels) as usize;
        let seq = (k / n_channels) as u32;
        {
            let mut st = state.borrow_mut();
            st.out.scheduled += 1;
            st.out.expected[channel].count = seq + 1;
        }
        let job = Job {
            channel,
            seq,
            scheduled_ns: t0_ns + k * period_ns,
        };
        if let Err(e) = senders[channel % lanes].send(job) {
            state
                .borrow_mut()
                .fail(&e.0, "publish lane ended early".into());
        }
    }
    drop(senders);
    for t in tasks {
        let _ = t.await;
    }
    let st = Rc::try_unwrap(state)
        .map_err(|_| "publish state still shared".to_string())?
        .into_inner();
    let mut out = st.out;
    for e in &mut out.expected {
        e.unconfirmed.sort_unstable();
        e.unconfirmed.dedup();
    }
    let span = |end_ns: u64| (end_ns.saturating_sub(t0_ns) as f64 / 1e9) + 1.0 / plan.rate;
    if out.sent > 0 {
        out.achieved_send_rate = out.sent as f64 / span(st.last_sent_ns);
    }
    if out.accepted > 0 {
        out.achieved_accept_rate = out.accepted as f64 / span(out.last_answer_ns);
        out.seconds = out.last_answer_ns.saturating_sub(t0_ns) as f64 / 1e9;
    }
    out.send_lag = st.send_lag.summary();
    out.answer_latency = st.answer.summary();
    Ok(out)
}

async fn connect(url: &Url) -> Result<TcpStream, String> {
    let mut last = String::new();
    for attempt in 0..CONNECT_ATTEMPTS {
        match tokio::time::timeout(
            Duration::from_secs(5),
            TcpStream::connect(url.socket_addr()),
        )
        .await
        {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = format!("publish connect: {e}"),
            Err(_) => last = "publish connect timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(100 * (attempt as u64 + 1))).await;
    }
    Err(last)
}

/// A lane of one-shot requests: each job gets its own connection as soon as it is due
/// (at most `window` open at once); requests are written in schedule order.
async fn one_shot_lane(
    plan: Rc<PublishPlan>,
    urls: Rc<Vec<Url>>,
    state: Rc<RefCell<State>>,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(plan.window.max(1)));
    let mut tasks = Vec::new();
    loop {
        let job = tokio::select! {
            job = rx.recv() => job,
            _ = tokio::time::sleep_until(plan.answer_deadline) => None,
        };
        let Some(job) = job else { break };
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.ok(),
            _ = tokio::time::sleep_until(plan.answer_deadline) => None,
        };
        let Some(permit) = permit else {
            state
                .borrow_mut()
                .fail(&job, "not sent before the publish deadline".into());
            break;
        };
        let (plan, urls, state) = (plan.clone(), urls.clone(), state.clone());
        // Connect and write here, in order; only the wait for the answer runs apart.
        let mut stream = match connect(&urls[job.channel]).await {
            Ok(s) => s,
            Err(e) => {
                state.borrow_mut().fail(&job, e);
                continue;
            }
        };
        let sent_ns = unix_ns();
        let request = request_for(&plan, &urls, &job, sent_ns);
        if let Err(e) = stream.write_all(&request).await {
            state.borrow_mut().fail(&job, format!("publish write: {e}"));
            continue;
        }
        {
            let mut st = state.borrow_mut();
            st.out.sent += 1;
            st.last_sent_ns = sent_ns;
            st.send_lag.record_span(job.scheduled_ns, sent_ns);
        }
        tasks.push(tokio::task::spawn_local(async move {
            let _permit = permit;
            let answer =
                tokio::time::timeout_at(plan.answer_deadline, read_answer(&mut stream)).await;
            match answer {
                Ok(Ok(status)) => answered(&state, &job, status),
                Ok(Err(e)) => state.borrow_mut().fail(&job, e),
                Err(_) => state
                    .borrow_mut()
                    .fail(&job, "no answer before the publish deadline".into()),
            }
        }));
    }
    let mut st_rx = rx;
    while let Ok(j) = st_rx.try_recv() {
        state
            .borrow_mut()
            .fail(&j, "not sent before the publish deadline".into());
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Reads one whole answer; its status.
async fn read_answer(stream: &mut TcpStream) -> Result<u16, String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 2048];
    let mut answer: Option<(u16, BodyDecoder)> = None;
    loop {
        let n = stream
            .read(&mut tmp)
            .await
            .map_err(|e| format!("publish read: {e}"))?;
        if n == 0 {
            return match answer {
                Some((status, d)) if d.kind() == BodyKind::UntilClose => Ok(status),
                _ => Err("publish connection closed before the answer".into()),
            };
        }
        buf.extend_from_slice(&tmp[..n]);
        if answer.is_none() {
            if let Some(head) = parse_head(&buf)? {
                buf.drain(..head.len);
                answer = Some((head.status, BodyDecoder::new(head.body)));
            }
        }
        if let Some((status, d)) = answer.as_mut() {
            if let Fed::Ended(_) = d.feed(&buf, |_| {})? {
                return Ok(*status);
            }
            buf.clear();
        }
    }
}

fn request_for(plan: &PublishPlan, urls: &[Url], job: &Job, sent_ns: u64) -> Vec<u8> {
    let text = payload(
        Stamp {
            seq: job.seq,
            scheduled_ns: job.scheduled_ns,
            sent_ns,
        },
        plan.payload_bytes,
    );
    publish_request(
        plan.format,
        &urls[job.channel],
        &plan.channels[job.channel],
        &text,
        plan.key.as_deref(),
    )
}

/// One publish connection: writes its jobs as they come (up to `window` unanswered),
/// reads the answers in order.
async fn lane(
    plan: Rc<PublishPlan>,
    urls: Rc<Vec<Url>>,
    state: Rc<RefCell<State>>,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    let mut inflight: VecDeque<Job> = VecDeque::new();
    let mut stream: Option<TcpStream> = None;
    let mut rbuf: Vec<u8> = Vec::new();
    let mut body: Option<Answer> = None;
    let mut queue_open = true;
    let window = plan.window.max(1);
    loop {
        if !queue_open && inflight.is_empty() {
            return;
        }
        let can_send = queue_open && inflight.len() < window;
        let reading = !inflight.is_empty() && stream.is_some();
        tokio::select! {
            job = rx.recv(), if can_send => {
                let Some(job) = job else {
                    queue_open = false;
                    continue;
                };
                if stream.is_none() {
                    match connect(&urls[job.channel]).await {
                        Ok(s) => stream = Some(s),
                        Err(e) => {
                            state.borrow_mut().fail(&job, e);
                            continue;
                        }
                    }
                }
                let sent_ns = unix_ns();
                let request = request_for(&plan, &urls, &job, sent_ns);
                let s = stream.as_mut().expect("connected above");
                if let Err(e) = s.write_all(&request).await {
                    let mut st = state.borrow_mut();
                    st.fail(&job, format!("publish write: {e}"));
                    for j in inflight.drain(..) {
                        st.fail(&j, "publish connection broke".into());
                    }
                    stream = None;
                    rbuf.clear();
                    body = None;
                    continue;
                }
                let mut st = state.borrow_mut();
                st.out.sent += 1;
                st.last_sent_ns = sent_ns;
                st.send_lag.record_span(job.scheduled_ns, sent_ns);
                inflight.push_back(job);
            }
            ready = async { stream.as_ref().expect("reading needs a stream").readable().await }, if reading => {
                let s = stream.as_ref().expect("reading needs a stream");
                let mut tmp = [0u8; 4096];
                let broken = match ready.and_then(|_| s.try_read(&mut tmp)) {
                    Ok(0) => Some("publish connection closed by the server".to_string()),
                    Ok(n) => {
                        rbuf.extend_from_slice(&tmp[..n]);
                        match answers(&mut rbuf, &mut body, &mut inflight, &state) {
                            Ok(false) => None,
                            Ok(true) if inflight.is_empty() => {
                                // The server closes after each answer (Pushpin): connect
                                // again for the next request.
                                stream = None;
                                rbuf.clear();
                                continue;
                            }
                            Ok(true) => Some("the server closed a pipelined connection (use --window 1)".to_string()),
                            Err(e) => Some(e),
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                    Err(e) => Some(format!("publish read: {e}")),
                };
                if let Some(why) = broken {
                    // A body delimited by the close ends here: that answer is complete.
                    if let Some(a) = body.take() {
                        if a.decoder.kind() == BodyKind::UntilClose {
                            if let Some(job) = inflight.pop_front() {
                                answered(&state, &job, a.status);
                            }
                        }
                    }
                    let mut st = state.borrow_mut();
                    for j in inflight.drain(..) {
                        st.fail(&j, why.clone());
                    }
                    stream = None;
                    rbuf.clear();
                }
            }
            _ = tokio::time::sleep_until(plan.answer_deadline) => {
                let mut st = state.borrow_mut();
                for j in inflight.drain(..) {
                    st.fail(&j, "no answer before the publish deadline".into());
                }
                while let Ok(j) = rx.try_recv() {
                    st.fail(&j, "not sent before the publish deadline".into());
                }
                return;
            }
        }
    }
}

fn answered(state: &RefCell<State>, job: &Job, status: u16) {
    let mut st = state.borrow_mut();
    if status / 100 == 2 {
        let now = unix_ns();
        st.out.accepted += 1;
        st.out.last_answer_ns = now;
        st.answer.record_span(job.scheduled_ns, now);
    } else {
        st.fail(job, format!("publish answered HTTP {status}"));
    }
}

/// The answer being read.
struct Answer {
    status: u16,
    decoder: BodyDecoder,
    close: bool,
}

/// Takes every complete answer out of `rbuf`, matching them to the oldest jobs.
/// `Ok(true)`: an answer said `Connection: close`, so the connection is done.
fn answers(
    rbuf: &mut Vec<u8>,
    body: &mut Option<Answer>,
    inflight: &mut VecDeque<Job>,
    state: &RefCell<State>,
) -> Result<bool, String> {
    loop {
        if body.is_none() {
            let Some(head) = parse_head(rbuf)? else {
                return Ok(false);
            };
            rbuf.drain(..head.len);
            if head.status == 100 {
                continue;
            }
            *body = Some(Answer {
                status: head.status,
                decoder: BodyDecoder::new(head.body),
                close: head.close,
            });
        }
        let answer = body.as_mut().expect("set above");
        match answer.decoder.feed(rbuf, |_| {})? {
            Fed::More => {
                rbuf.clear();
                return Ok(false);
            }
            Fed::Ended(n) => {
                rbuf.drain(..n);
                let (status, close) = (answer.status, answer.close);
                *body = None;
                let Some(job) = inflight.pop_front() else {
                    return Err("an answer to no request".into());
                };
                answered(state, &job, status);
                if close {
                    return Ok(true);
                }
            }
        }
    }
}
