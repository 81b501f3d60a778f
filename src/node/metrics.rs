//! The optional Prometheus endpoint of one server (`metrics_url`, `--metrics`): `GET /metrics`
//! answered in the text format 0.0.4, anything else 404, on a thread of its own. A scrape
//! reads only what the loop already publishes (the status, the drop counters, [`Stats`]):
//! it never waits for the Raft loop, and the loop never waits for it.
//!
//! The registry and the encoding are prometheus-client's (the Prometheus project's Rust
//! client); the HTTP side is a few lines over `std::net`, because all it needs is one request
//! line: a scraper is input like any other, so the request head is bounded
//! ([`REQUEST_HEAD_BYTES_MAX`]), a client gets [`CLIENT_DEADLINE`] to send it and to take the
//! answer, and nothing a client sends can panic the thread. Connections are served one at a
//! time: a slow or hostile client delays a scrape by at most the deadline, and costs no
//! thread.
//!
//! Every metric is listed in docs/metrics.md.
//!
//! [`Stats`]: super::stats::Stats

use super::stats::Stats;
use super::{lock, Shared};
use crate::core::Role;
use crate::transport::TransportError;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request head read (request line and headers): a scraper's is a few hundred bytes.
pub(crate) const REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;
/// How long a client has to send its request head, and then to take the answer.
pub(crate) const CLIENT_DEADLINE: Duration = Duration::from_secs(2);

/// The running endpoint; dropping it stops the thread and closes the port.
pub(super) struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Bind `addr` (`host:port`) for server `pid` and serve `shared`'s metrics from a thread.
    /// A bind failure is reported like the other sockets' (the server does not start).
    pub(super) fn start(pid: u64, addr: &str, shared: Arc<Shared>) -> Result<MetricsServer, TransportError> {
        let action = || format!("bind {addr} (metrics endpoint of server {pid})");
        // Reported as the other sockets' bind errors are: the OS error's text, once (one
        // without an errno, a failed name lookup, keeps its own text in the action).
        let io_error = |e: std::io::Error| match e.raw_os_error() {
            Some(errno) => TransportError { action: action(), source: zmq::Error::from_raw(errno) },
            None => TransportError { action: format!("{}: {e}", action()), source: zmq::Error::EINVAL },
        };
        let listener = TcpListener::bind(addr).map_err(io_error)?;
        let bound = listener.local_addr().map_err(io_error)?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(NodeCollector { shared }));
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("leader-{pid}-metrics"))
            .spawn(move || accept_loop(&listener, &registry, &stopping))
            .expect("spawn the metrics thread");
        log::info!("server {pid}: metrics at http://{bound}/metrics");
        Ok(MetricsServer { addr: bound, stop, thread: Some(thread) })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // `accept` blocks: a connection of our own wakes it to see the flag. A wildcard bind
        // is reached on loopback.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(if wake.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
        }
        match TcpStream::connect_timeout(&wake, CLIENT_DEADLINE) {
            Ok(_) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
            // Not reachable: leave the thread blocked in accept rather than hang the stop.
            Err(e) => log::warn!("cannot wake the metrics thread at {wake}: {e}"),
        }
    }
}

fn accept_loop(listener: &TcpListener, registry: &Registry, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        match conn {
            Ok(stream) => serve(stream, registry),
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                log::debug!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Why a request head could not be had.
enum HeadError {
    /// Closed, reset or too slow: nobody to answer.
    Gone,
    /// Longer than [`REQUEST_HEAD_BYTES_MAX`] without ending.
    TooLarge,
}

/// Read up to the blank line that ends the request head, within the deadline and the bound.
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + CLIENT_DEADLINE;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head.windows(2).position(|w| w == b"\n\n").or(find(&head, b"\r\n\r\n")) {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() > REQUEST_HEAD_BYTES_MAX {
            return Err(HeadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Gone);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Status line, content type and body for one request head.
fn respond(head: &[u8], registry: &Registry) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return ("400 Bad Request", TEXT, "bad request line\n".into());
    };
    if !version.starts_with("HTTP/") {
        return ("400 Bad Request", TEXT, "bad request line\n".into());
    }
    let path = target.split('?').next().unwrap_or_default();
    if method != "GET" || path != "/metrics" {
        return ("404 Not Found", TEXT, "only GET /metrics is served here\n".into());
    }
    let mut body = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut body, registry) {
        Ok(()) => ("200 OK", prometheus_client::encoding::prometheus_text::CONTENT_TYPE, body),
        Err(fmt::Error) => ("500 Internal Server Error", TEXT, "encoding failed\n".into()),
    }
}

fn serve(mut stream: TcpStream, registry: &Registry) {
    let (status, content_type, body) = match read_head(&mut stream) {
        Ok(head) => respond(&head, registry),
        Err(HeadError::TooLarge) => ("431 Request Header Fields Too Large", "text/plain", String::new()),
        Err(HeadError::Gone) => return,
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // A client that does not read gets the deadline, then is dropped.
    if stream.set_write_timeout(Some(CLIENT_DEADLINE)).is_ok() {
        let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Encodes one server's metrics at each scrape from what its loop published.
struct NodeCollector {
    shared: Arc<Shared>,
}

impl fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeCollector")
    }
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    ConstGauge::new(value).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A counter; `name` without `_total` (the encoder appends it).
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    ConstCounter::new(value).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// A counter with one label, one sample per `(label value, count)`.
fn counters<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in values {
        ConstCounter::new(count).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

fn histogram(e: &mut DescriptorEncoder, name: &str, help: &str, h: &Histogram) -> fmt::Result {
    h.encode(e.encode_descriptor(name, help, None, MetricType::Histogram)?)
}

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let shared = &self.shared;
        let status = *lock(&shared.status);
        let drops = *lock(&shared.drops);
        let stats: &Stats = &shared.stats;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        gauge(&mut e, "leader_pid", "This server's pid (mypid in config.json).", status.pid.0)?;
        let mut roles = e.encode_descriptor(
            "leader_role",
            "1 for this server's current role (follower, candidate, leader), 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for role in [Role::Follower, Role::Candidate, Role::Leader] {
            let value = u64::from(status.role == role);
            ConstGauge::new(value).encode(roles.encode_family(&[("role", role.as_str())])?)?;
        }
        gauge(&mut e, "leader_term", "Current term (as durable).", status.term.0)?;
        gauge(&mut e, "leader_commit_index", "Highest log index known committed.", status.commit_index.0)?;
        gauge(&mut e, "leader_applied_index", "Highest log index handed to the state machine.", status.last_applied.0)?;
        gauge(&mut e, "leader_last_log_index", "Index of the last entry in this server's log.", status.last_index.0)?;
        let help = "Proposals received (clients and Server::propose), refused ones included.";
        counter(&mut e, "leader_proposals", help, load(&stats.proposals))?;
        let help = "Log entries this server learned committed since it started.";
        counter(&mut e, "leader_entries_committed", help, load(&stats.entries_committed))?;
        let (started, won) = stats.elections();
        counter(
            &mut e,
            "leader_elections_started",
            "Elections this server started (terms it campaigned in).",
            started,
        )?;
        counter(&mut e, "leader_elections_won", "Elections this server won.", won)?;
        let help = "Times this server learned of a new leader (another server, or a new term).";
        counter(&mut e, "leader_changes_seen", help, stats.leader_changes())?;
        let help = "Snapshots this server took of its state machine.";
        counter(&mut e, "leader_snapshots_taken", help, load(&stats.snapshots_taken))?;
        let help = "Snapshots received from a leader and installed.";
        counter(&mut e, "leader_snapshots_installed", help, load(&stats.snapshots_installed))?;
        let help = "Snapshot transfers this server began as leader (first chunk sent).";
        counter(&mut e, "leader_snapshots_sent", help, load(&stats.snapshots_sent))?;
        let messages = stats.messages();
        let help = "Peer messages received (authenticated and decoded), by type.";
        counters(&mut e, "leader_messages_received", help, "type", messages.iter().map(|(t, i, _)| (*t, *i)))?;
        let help = "Peer messages sent, by type.";
        counters(&mut e, "leader_messages_sent", help, "type", messages.iter().map(|(t, _, o)| (*t, *o)))?;
        let mut dropped = drops.by_name();
        dropped.push(("inbox_full", load(&shared.inbox_dropped)));
        let help = "Input dropped or ignored, by reason (as `leader status --json` shows under dropped).";
        counters(&mut e, "leader_dropped", help, "reason", dropped)?;
        let help = "Seconds since an envelope from each peer last passed authentication and decoding.";
        let mut contact = e.encode_descriptor("leader_peer_last_contact_seconds", help, None, MetricType::Gauge)?;
        for (peer, ago) in stats.last_contact() {
            let peer = peer.to_string();
            ConstGauge::new(ago.as_secs_f64()).encode(contact.encode_family(&[("peer", peer.as_str())])?)?;
        }
        let help = "Seconds each log sync (fdatasync) took.";
        histogram(&mut e, "leader_fsync_seconds", help, &stats.fsync_seconds)?;
        let help = "Leader: seconds from sending an AppendEntries to its acknowledgement.";
        histogram(&mut e, "leader_append_round_trip_seconds", help, &stats.append_round_trip_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair on loopback: (the client's end, the server's end).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (client, listener.accept().unwrap().0)
    }

    #[test]
    fn a_head_past_the_bound_is_refused_without_reading_the_rest() {
        let (mut client, mut server) = pair();
        // More than the bound, never ending: the reader must stop at the bound, not at the
        // deadline (the client stays connected) nor when memory runs out.
        client.write_all(&vec![b'A'; 4 * REQUEST_HEAD_BYTES_MAX]).unwrap();
        let started = Instant::now();
        assert!(matches!(read_head(&mut server), Err(HeadError::TooLarge)));
        assert!(started.elapsed() < CLIENT_DEADLINE);
    }

    #[test]
    fn a_client_that_stalls_is_given_up_on_at_the_deadline() {
        let (mut client, mut server) = pair();
        client.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap(); // no blank line
        let started = Instant::now();
        assert!(matches!(read_head(&mut server), Err(HeadError::Gone)));
        let took = started.elapsed();
        assert!(took >= CLIENT_DEADLINE && took < CLIENT_DEADLINE * 3, "{took:?}");
    }

    #[test]
    fn only_get_metrics_is_answered_with_the_metrics() {
        let registry = Registry::default();
        let status = |head: &[u8]| respond(head, &registry).0;
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\nHost: x"), "200 OK");
        assert_eq!(status(b"GET /metrics?name[]=up HTTP/1.0"), "200 OK");
        assert_eq!(respond(b"GET /metrics HTTP/1.1", &registry).1, "text/plain; version=0.0.4; charset=utf-8");
        assert_eq!(status(b"HEAD /metrics HTTP/1.1"), "404 Not Found");
        assert_eq!(status(b"GET /metrics/ HTTP/1.1"), "404 Not Found");
        assert_eq!(status(b"GET /metrics HTTP/1.1 extra"), "400 Bad Request");
        assert_eq!(status(b"GET /metrics"), "400 Bad Request");
        assert_eq!(status(b""), "400 Bad Request");
        assert_eq!(status(&[0xff, 0xfe, b' ', b'/', b' ', b'H']), "400 Bad Request");
    }
}
