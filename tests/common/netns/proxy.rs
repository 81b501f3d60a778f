//! A delaying TCP proxy: the kernel here has no `netem` qdisc, so link delay and jitter are
//! made in user space.
//!
//! It listens on a loopback port inside one network namespace (the sender's) and forwards each
//! accepted connection to one upstream address (the receiver's peer port, across the bridge).
//! Every chunk read from either side is written to the other after its own delay, drawn
//! uniformly from `mean ± jitter`, but never before the chunk read before it: TCP never
//! reorders bytes within a connection, so neither may we (messages of different connections,
//! i.e. of different peers, still overtake each other). Plain std threads and blocking
//! sockets: four threads per connection, and a cluster has one connection per ordered pair.

use super::enter;
use leader::core::SplitMix64;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the proxy waits for the upstream to accept. Short, so that after a partition
/// heals ZeroMQ's next reconnect gets a fresh attempt instead of a SYN in its backoff.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// One-way delay of every chunk: `mean ± jitter`, uniform.
#[derive(Clone, Copy, Debug)]
pub struct Delay {
    /// The mean delay.
    pub mean: Duration,
    /// Largest deviation from the mean either way (at most `mean`).
    pub jitter: Duration,
}

impl Delay {
    fn draw(&self, rng: &mut SplitMix64) -> Duration {
        let jitter = self.jitter.min(self.mean).as_micros() as u64;
        let low = self.mean.as_micros() as u64 - jitter;
        Duration::from_micros(rng.range(low, low + 2 * jitter + 1))
    }
}

/// State shared by the accept loop and the connection threads.
struct Shared {
    stop: AtomicBool,
    /// Both sockets of every connection, so `stop` can unblock every thread at once.
    sockets: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Chunks forwarded (both directions): shows a test that traffic really went through.
    chunks: AtomicU64,
}

/// A running proxy; stopped (every thread joined, every socket closed) on drop.
pub struct DelayProxy {
    shared: Arc<Shared>,
}

impl DelayProxy {
    /// Listen on `listen` inside namespace `ns` and forward to `upstream` with `delay`.
    /// Returns once the listener is bound (so a server started next finds it).
    pub fn start(ns: &str, listen: SocketAddr, upstream: SocketAddr, delay: Delay, seed: u64) -> DelayProxy {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            chunks: AtomicU64::new(0),
        });
        let (bound_tx, bound_rx) = mpsc::channel();
        let ns = ns.to_string();
        let accept_shared = shared.clone();
        let accept = std::thread::spawn(move || {
            // Threads spawned from here inherit the namespace, so every socket lives in it.
            enter(&ns);
            let listener = TcpListener::bind(listen).and_then(|l| l.set_nonblocking(true).map(|()| l));
            let listener = match listener {
                Ok(l) => {
                    bound_tx.send(Ok(())).unwrap();
                    l
                }
                Err(e) => return bound_tx.send(Err(e)).unwrap(),
            };
            let mut rng = SplitMix64::new(seed);
            while !accept_shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((down, _)) => {
                        let (shared, seed) = (accept_shared.clone(), rng.next_u64());
                        let handle = std::thread::spawn(move || connect(shared, down, upstream, delay, seed));
                        accept_shared.threads.lock().unwrap().push(handle);
                    }
                    Err(_) => std::thread::sleep(ACCEPT_POLL),
                }
            }
        });
        bound_rx.recv().unwrap().unwrap_or_else(|e| panic!("proxy cannot listen on {listen}: {e}"));
        shared.threads.lock().unwrap().push(accept);
        DelayProxy { shared }
    }

    /// Chunks forwarded so far, both directions, every connection.
    pub fn chunks(&self) -> u64 {
        self.shared.chunks.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        loop {
            for socket in self.shared.sockets.lock().unwrap().drain(..) {
                let _ = socket.shutdown(Shutdown::Both);
            }
            let Some(handle) = self.shared.threads.lock().unwrap().pop() else { break };
            let _ = handle.join();
        }
    }
}

/// Connect upstream for one accepted connection and pump both directions; on any failure
/// close both sides (ZeroMQ then reconnects, as it would after a real connection loss).
fn connect(shared: Arc<Shared>, down: TcpStream, upstream: SocketAddr, delay: Delay, seed: u64) {
    let _ = down.set_nonblocking(false);
    let Ok(up) = TcpStream::connect_timeout(&upstream, UPSTREAM_CONNECT_TIMEOUT) else {
        let _ = down.shutdown(Shutdown::Both);
        return;
    };
    let _ = (up.set_nodelay(true), down.set_nodelay(true));
    let clones = (down.try_clone(), up.try_clone(), down.try_clone(), up.try_clone());
    let (Ok(down2), Ok(up2), Ok(down3), Ok(up3)) = clones else { return };
    {
        let mut sockets = shared.sockets.lock().unwrap();
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        sockets.extend([down3, up3]);
    }
    let back_shared = shared.clone();
    let back = std::thread::spawn(move || pump(&back_shared, up2, down2, delay, seed ^ 1));
    shared.threads.lock().unwrap().push(back);
    pump(&shared, down, up, delay, seed);
}

/// Forward `from` to `to`, each chunk after its delay, in order; a writer thread does the
/// waiting so that reading goes on meanwhile (delay is latency, not a bandwidth cap).
fn pump(shared: &Shared, mut from: TcpStream, to: TcpStream, delay: Delay, seed: u64) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        let mut to = to;
        for (due, chunk) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
    let mut rng = SplitMix64::new(seed);
    let mut last_due = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                last_due = (Instant::now() + delay.draw(&mut rng)).max(last_due);
                shared.chunks.fetch_add(1, Ordering::Relaxed);
                if tx.send((last_due, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = from.shutdown(Shutdown::Both);
    let _ = writer.join();
}
