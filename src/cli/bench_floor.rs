//! `leader bench --floor`: what one replicated write cannot go below on this machine — one
//! fdatasync of a small append, two fdatasyncs at once on the same disk (a leader's and a
//! follower's, as in a write), and one loopback round trip over ZeroMQ (client to leader, or
//! leader to follower). A single client's write costs at least two round trips and two
//! concurrent fdatasyncs; the rest is the servers' own work. The files go in a scratch
//! directory under the current directory (the disk a cluster started here would use).

use super::{percentile, EXIT_FAILURE};
use std::io::Write;
use std::time::Instant;

/// Samples per measurement: enough for a stable median on a noisy machine, short to run.
const SAMPLES: usize = 1000;

/// Median and p99 in milliseconds of `samples` (seconds).
fn summary(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let ms: Vec<f64> = samples.iter().map(|s| s * 1000.0).collect();
    (percentile(&ms, 50.0), percentile(&ms, 99.0))
}

/// `SAMPLES` appends of 128 bytes to `file`, each followed by fdatasync: seconds each.
fn fdatasyncs(mut file: std::fs::File) -> std::io::Result<Vec<f64>> {
    let record = [0x5au8; 128];
    let mut out = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        out.push(start.elapsed().as_secs_f64());
    }
    Ok(out)
}

fn temp_file(dir: &std::path::Path, name: &str) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(dir.join(name))
}

/// Round trips of a 100-byte message over tcp loopback, DEALER to ROUTER and back.
fn round_trips() -> Result<Vec<f64>, zmq::Error> {
    let ctx = zmq::Context::new();
    let server = ctx.socket(zmq::ROUTER)?;
    server.set_linger(0)?;
    server.bind("tcp://127.0.0.1:*")?;
    let endpoint = server.get_last_endpoint()?.unwrap_or_default();
    let echo = std::thread::spawn(move || {
        for _ in 0..SAMPLES + 10 {
            let Ok(frames) = server.recv_multipart(0) else { return };
            let _ = server.send_multipart(frames, 0);
        }
    });
    let client = ctx.socket(zmq::DEALER)?;
    client.set_linger(0)?;
    client.connect(&endpoint)?;
    let message = [7u8; 100];
    let mut out = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES + 10 {
        let start = Instant::now();
        client.send(&message[..], 0)?;
        client.recv_bytes(0)?;
        if i >= 10 {
            out.push(start.elapsed().as_secs_f64()); // the first few include the connection
        }
    }
    let _ = echo.join();
    Ok(out)
}

/// A directory on the disk being measured (under the current directory), removed on drop.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Measure and print the floor.
pub fn run(json: bool) -> Result<(), i32> {
    let dir = ScratchDir(std::path::PathBuf::from(format!(".leader-floor-{}", std::process::id())));
    std::fs::create_dir_all(dir.path()).map_err(|e| {
        eprintln!("leader: bench --floor: create {}: {e}", dir.path().display());
        EXIT_FAILURE
    })?;
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("leader: bench --floor: {what}: {e}");
        EXIT_FAILURE
    };
    let one = summary(
        fdatasyncs(temp_file(dir.path(), "a").map_err(|e| fail("create", &e))?).map_err(|e| fail("fdatasync", &e))?,
    );
    let (a, b) = (
        temp_file(dir.path(), "b").map_err(|e| fail("create", &e))?,
        temp_file(dir.path(), "c").map_err(|e| fail("create", &e))?,
    );
    let other = std::thread::spawn(move || fdatasyncs(b));
    let mut both = fdatasyncs(a).map_err(|e| fail("fdatasync", &e))?;
    both.extend(other.join().map_err(|_| EXIT_FAILURE)?.map_err(|e| fail("fdatasync", &e))?);
    let two = summary(both);
    let rtt = summary(round_trips().map_err(|e| fail("round trip", &e))?);
    let floor = 2.0 * rtt.0 + two.0;
    if json {
        println!(
            "{}",
            serde_json::json!({"fdatasync_p50_ms": one.0, "fdatasync_p99_ms": one.1,
                "two_concurrent_fdatasync_p50_ms": two.0, "two_concurrent_fdatasync_p99_ms": two.1,
                "loopback_round_trip_p50_ms": rtt.0, "loopback_round_trip_p99_ms": rtt.1,
                "single_write_floor_ms": floor})
        );
    } else {
        println!("one fdatasync (128 B append):        p50 {:.3} ms  p99 {:.3} ms", one.0, one.1);
        println!("two concurrent fdatasyncs:           p50 {:.3} ms  p99 {:.3} ms", two.0, two.1);
        println!("loopback round trip (ZeroMQ, 100 B): p50 {:.3} ms  p99 {:.3} ms", rtt.0, rtt.1);
        println!("floor of one replicated write (2 round trips + 2 concurrent fdatasyncs): {floor:.3} ms");
    }
    Ok(())
}
