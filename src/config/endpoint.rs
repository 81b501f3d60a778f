//! Endpoints as config.json writes them: `url` and `client_url` (ZeroMQ: `host:port`,
//! `tcp://host:port`, `ipc://path`, `inproc://name`) and `metrics_url` (HTTP: `host:port` or
//! `http://host:port`). Errors say what is wrong without the field name or value; the caller
//! adds them.

use super::CLIENT_PORT_OFFSET;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A parsed `url` or `client_url`.
pub(super) enum Endpoint {
    /// `tcp://host:port`; `host` as written (IPv6 keeps its brackets).
    Tcp { host: String, port: u16 },
    /// `ipc://path`.
    Ipc(String),
    /// `inproc://name`.
    Inproc(String),
}

impl Endpoint {
    pub(super) fn render(&self) -> String {
        match self {
            Endpoint::Tcp { host, port } => format!("tcp://{host}:{port}"),
            Endpoint::Ipc(p) => format!("ipc://{p}"),
            Endpoint::Inproc(n) => format!("inproc://{n}"),
        }
    }
}

/// Parses `host:port`, `tcp://host:port`, `ipc://path` or `inproc://name`; the error says
/// what is wrong without the field name or value (the caller adds them).
pub(super) fn parse_endpoint(url: &str) -> Result<Endpoint, String> {
    let hostport = if let Some(rest) = url.strip_prefix("tcp://") {
        rest
    } else if let Some(path) = url.strip_prefix("ipc://") {
        if path.is_empty() {
            return Err("ipc:// needs a path, e.g. ipc:///tmp/leader-1.sock".to_string());
        }
        return Ok(Endpoint::Ipc(path.to_string()));
    } else if let Some(name) = url.strip_prefix("inproc://") {
        if name.is_empty() {
            return Err("inproc:// needs a name, e.g. inproc://server-1".to_string());
        }
        return Ok(Endpoint::Inproc(name.to_string()));
    } else if let Some((scheme, _)) = url.split_once("://") {
        return Err(format!(
            "unsupported transport \"{scheme}\" (expected host:port, tcp://host:port, \
             ipc://path or inproc://name)"
        ));
    } else {
        url
    };
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return Err("expected host:port (e.g. 127.0.0.1:7001), tcp://host:port, ipc://path \
                    or inproc://name"
            .to_string());
    };
    check_host(host)?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port \"{port}\" is not a number (expected 1-65535)"));
    }
    match port.parse::<u16>() {
        Ok(p) if p >= 1 => Ok(Endpoint::Tcp { host: host.to_string(), port: p }),
        _ => Err(format!("port {port} is out of range (1-65535)")),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty (expected e.g. 127.0.0.1:7001)".to_string());
    }
    if host == "*" {
        return Ok(()); // bind to every interface
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner.strip_suffix(']').is_some_and(|a| a.parse::<Ipv6Addr>().is_ok());
        return if ok { Ok(()) } else { Err(format!("host {host} is not a valid IPv6 address")) };
    }
    if host.contains(':') {
        return Err(format!("IPv6 host {host} must be in brackets, e.g. [::1]:7001"));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("host {host} is not a valid IPv4 address")),
        };
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err(format!("host \"{host}\" is not a valid hostname (letters, digits, '.', '-')"));
    }
    Ok(())
}

/// The client endpoint used when `client_url` is absent.
pub(super) fn default_client(endpoint: &Endpoint) -> Result<Endpoint, String> {
    Ok(match endpoint {
        Endpoint::Tcp { host, port } => {
            let client = u32::from(*port) + CLIENT_PORT_OFFSET;
            let port = u16::try_from(client).map_err(|_| {
                format!(
                    "absent, and the default (url port {port} + {CLIENT_PORT_OFFSET} = \
                     {client}) would be out of range (1-65535); set client_url explicitly"
                )
            })?;
            Endpoint::Tcp { host: host.clone(), port }
        }
        Endpoint::Ipc(p) => Endpoint::Ipc(format!("{p}.client")),
        Endpoint::Inproc(n) => Endpoint::Inproc(format!("{n}.client")),
    })
}

/// Parses a metrics endpoint (`metrics_url`, `--metrics`): `host:port` or `http://host:port`,
/// returned as `host:port`. Nothing else: the endpoint serves only `GET /metrics`, so a path
/// would suggest a choice that does not exist, and another scheme (https) is not served.
pub fn parse_metrics_url(url: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected host:port or http://host:port, e.g. 127.0.0.1:9101";
    let hostport = match url.split_once("://") {
        None => url,
        Some(("http", rest)) => rest,
        Some((scheme, _)) => return Err(format!("unsupported scheme \"{scheme}\" ({EXPECTED})")),
    };
    if hostport.contains('/') {
        return Err(format!("has a path; the path is always /metrics ({EXPECTED})"));
    }
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return Err(EXPECTED.to_string());
    };
    if host == "*" {
        // ZeroMQ's wildcard means nothing to a TCP listener.
        return Err("host * is not an address; 0.0.0.0 or [::] listens on every interface".to_string());
    }
    check_host(host)?;
    match port.parse::<u16>() {
        Ok(p) if p >= 1 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(format!("{host}:{p}")),
        _ => Err(format!("port \"{port}\" is not a number in 1-65535 ({EXPECTED})")),
    }
}

/// A member's peer and client endpoints as `leader member add` takes them: `url` as in
/// config.json (`127.0.0.1:7004`, `tcp://…`, `ipc://…`), `client_url` likewise or derived from
/// `url` as config.json derives it. Both normalized (`tcp://127.0.0.1:7004`).
pub fn member_endpoints(url: &str, client_url: Option<&str>) -> Result<(String, String), String> {
    let peer = parse_endpoint(url).map_err(|e| format!("URL {url:?}: {e}"))?;
    let client = match client_url {
        Some(c) => parse_endpoint(c).map_err(|e| format!("--client-url {c:?}: {e}"))?,
        None => default_client(&peer).map_err(|e| format!("URL {url:?}: {e}"))?,
    };
    Ok((peer.render(), client.render()))
}
