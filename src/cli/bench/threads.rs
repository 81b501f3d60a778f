//! `leader bench --via-client`: the same workload through the library's blocking `Client`
//! (`Client::get_with` for reads, `Client::put` for writes), one thread and one `Client` per
//! client. It measures what an application using the library gets, client overhead included;
//! on a small machine that overhead (a thread and a ZeroMQ context per client, sharing the
//! cores with the servers) caps the figures long before the servers do, which is why the
//! default load multiplexes every client in one thread (load.rs).

use super::load::{LoadResult, LoadSpec};
use super::stats::Gaps;
use leader::client::Client;
use leader::config::Config;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// One acknowledged operation: when, whether a read, its latency in µs, whether a read missed.
type Ack = (Instant, bool, u64, bool);

/// Run `spec` for `duration` (or until `count` operations are acknowledged).
pub fn run(config: &Config, spec: &LoadSpec, duration: Duration, count: Option<u64>) -> LoadResult {
    let clients = spec.clients;
    // Every thread writes the keys it reads (`prefilled`), then the main thread starts the
    // clock and the timed phase begins for all at once (`go`).
    let (prefilled, go) = (Arc::new(Barrier::new(clients + 1)), Arc::new(Barrier::new(clients + 1)));
    let acked = Arc::new(AtomicU64::new(0));
    let start = Arc::new(std::sync::OnceLock::<Instant>::new());
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (config, spec) = (config.clone(), spec.clone());
            let (prefilled, go) = (Arc::clone(&prefilled), Arc::clone(&go));
            let (acked, start) = (Arc::clone(&acked), Arc::clone(&start));
            std::thread::spawn(move || {
                let mut client = Client::new(config).with_timeout(Duration::from_millis(500));
                let value = vec![b'x'; spec.value_size];
                let keys: Vec<Vec<u8>> = match spec.keys {
                    None => vec![format!("bench-{c}").into_bytes()],
                    Some(n) => (c as u64..n).step_by(clients).map(|k| format!("bench-{k}").into_bytes()).collect(),
                };
                let mut errors = 0u64;
                if spec.workload.reads() {
                    for key in &keys {
                        errors += u64::from(client.put(key, &value).is_err());
                    }
                }
                prefilled.wait();
                go.wait();
                let start = *start.get().expect("set between the barriers");
                let mut acks: Vec<Ack> = Vec::new();
                let mut i = 0usize;
                while !keys.is_empty()
                    && start.elapsed() < duration
                    && count.is_none_or(|n| acked.load(Ordering::Relaxed) < n)
                {
                    let key = &keys[i % keys.len()];
                    i += 1;
                    let read = rand::random::<u32>() % 100 < u32::from(spec.workload.read_percent);
                    let began = Instant::now();
                    let outcome = if read {
                        client.get_with(key, spec.read_path, spec.read_from).map(|v| v.is_none())
                    } else {
                        client.put(key, &value).map(|_| false)
                    };
                    match outcome {
                        Ok(missed) => {
                            let now = Instant::now();
                            acks.push((now, read, (now - began).as_micros() as u64, missed));
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (acks, errors)
            })
        })
        .collect();
    prefilled.wait();
    let begin = Instant::now();
    start.set(begin).expect("set once");
    go.wait();
    let mut acks = Vec::new();
    let mut errors = 0;
    for thread in threads {
        if let Ok((a, e)) = thread.join() {
            acks.extend(a);
            errors += e;
        }
    }
    let end = Instant::now();
    acks.sort_by_key(|a| a.0);
    let (mut write_gaps, mut read_gaps) = (Gaps::new(begin), Gaps::new(begin));
    let mut result = LoadResult {
        secs: (end - begin).as_secs_f64(),
        write_latencies_us: Vec::new(),
        read_latencies_us: Vec::new(),
        read_misses: 0,
        errors,
        longest_write_stall: Duration::ZERO,
        longest_read_stall: Duration::ZERO,
    };
    for (at, read, us, missed) in acks {
        if read {
            read_gaps.ack(at);
            result.read_latencies_us.push(us);
            result.read_misses += u64::from(missed);
        } else {
            write_gaps.ack(at);
            result.write_latencies_us.push(us);
        }
    }
    result.longest_write_stall = write_gaps.longest(end);
    result.longest_read_stall = read_gaps.longest(end);
    result
}
