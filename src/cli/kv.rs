//! `leader put|get|delete|cas`: the key-value client on the command line.

use super::EXIT_FAILURE;
use leader::client::{Client, ReadFrom, ReadPath};
use leader::config::Config;
use std::time::Duration;

/// Exit code of `get` for a missing key and of `cas` when it did not swap.
pub const EXIT_NOT_FOUND: i32 = 1;

/// A key-value command from the command line.
#[derive(Debug)]
pub enum KvCli {
    /// Store a value.
    Put { key: String, value: Vec<u8> },
    /// Print a value (as UTF-8 with a newline, or `raw` bytes).
    Get { key: String, path: ReadPath, from: ReadFrom, raw: bool },
    /// Remove a key.
    Delete { key: String },
    /// Compare-and-set.
    Cas { key: String, expected: Option<String>, new: Option<String> },
}

/// Run one command against the cluster of `config`; prints the result on stdout, errors on
/// stderr.
pub fn run(config: Config, command: KvCli, deadline: Duration) -> Result<(), i32> {
    let mut client = Client::new(config).with_timeout(Duration::from_millis(1000)).with_operation_deadline(deadline);
    let fail = |e: leader::client::CallError| {
        eprintln!("leader: {e}");
        match e {
            // Bad input, refused before anything was sent.
            leader::client::CallError::TooLarge { .. } => super::EXIT_CONFIG,
            _ => EXIT_FAILURE,
        }
    };
    match command {
        KvCli::Put { key, value } => {
            client.put(key.as_bytes(), &value).map_err(fail)?;
            println!("OK");
        }
        KvCli::Get { key, path, from, raw } => match client.get_with(key.as_bytes(), path, from).map_err(fail)? {
            Some(value) if raw => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                out.write_all(&value).and_then(|()| out.flush()).map_err(|e| {
                    eprintln!("leader: writing the value: {e}");
                    EXIT_FAILURE
                })?;
            }
            Some(value) => println!("{}", String::from_utf8_lossy(&value)),
            None => {
                eprintln!("leader: {key}: not found");
                return Err(EXIT_NOT_FOUND);
            }
        },
        KvCli::Delete { key } => {
            let existed = client.delete(key.as_bytes()).map_err(fail)?;
            println!("{}", if existed { "deleted" } else { "not found (nothing to delete)" });
        }
        KvCli::Cas { key, expected, new } => {
            let (swapped, current) = client
                .cas(key.as_bytes(), expected.as_deref().map(str::as_bytes), new.as_deref().map(str::as_bytes))
                .map_err(fail)?;
            let current = current.map_or("(absent)".to_string(), |v| String::from_utf8_lossy(&v).into_owned());
            if swapped {
                println!("swapped; now {current}");
            } else {
                eprintln!("leader: {key}: not swapped; current value {current}");
                return Err(EXIT_NOT_FOUND);
            }
        }
    }
    Ok(())
}

/// The value of `put`: the command-line string, or the bytes of `file` (`-`: standard input),
/// unchanged (binary-safe).
pub fn value_bytes(value: Option<String>, file: Option<&std::path::Path>) -> Result<Vec<u8>, i32> {
    use std::io::Read;
    match (value, file) {
        (Some(value), None) => Ok(value.into_bytes()),
        (None, Some(path)) if path == std::path::Path::new("-") => {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes).map_err(|e| {
                eprintln!("leader: --value-file -: reading standard input: {e}");
                EXIT_FAILURE
            })?;
            Ok(bytes)
        }
        (None, Some(path)) => std::fs::read(path).map_err(|e| {
            eprintln!("leader: --value-file {}: {e}", path.display());
            super::EXIT_CONFIG
        }),
        _ => unreachable!("clap requires exactly one of VALUE and --value-file"),
    }
}
