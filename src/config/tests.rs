//! Tests of config.json loading: one per rule, every error names its field and value.
use super::*;

const SEED: &str = r#"{"object": {"total": 3, "Servers": [
{"mypid": 1, "url": "127.0.0.1:7001"},
{"mypid": 2, "url": "127.0.0.1:7002"},
{"mypid": 3, "url": "127.0.0.1:7003"}]}}"#;

/// A config whose `Servers` are the given object bodies, with `extra` fields in `object`.
fn with(extra: &str, servers: &[&str]) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("{{{s}}}")).collect();
    let n = servers.len();
    format!(r#"{{"object": {{{extra} "total": {n}, "Servers": [{}]}}}}"#, list.join(","))
}

fn parse(text: &str) -> Config {
    Config::parse(text, "config.json").unwrap()
}

/// Asserts that `text` is rejected with exit code 2 and a message containing every part.
fn rejects(text: &str, parts: &[&str]) {
    let e = Config::parse(text, "config.json").expect_err("config should be rejected");
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(msg.starts_with("config.json: "), "{msg}");
    for p in parts {
        assert!(msg.contains(p), "{msg:?} should contain {p:?}");
    }
}

#[test]
fn seed_format_loads_unchanged_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, SEED).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.path, path);
    assert_eq!(c.pids(), vec![NodeId(1), NodeId(2), NodeId(3)]);
    let s = c.server(NodeId(1)).unwrap();
    assert_eq!(s.url, "127.0.0.1:7001");
    assert_eq!(s.endpoint, "tcp://127.0.0.1:7001");
    assert_eq!(s.client_endpoint, "tcp://127.0.0.1:8001");
    assert_eq!(c.servers[2].client_endpoint, "tcp://127.0.0.1:8003");
    assert_eq!((c.election_timeout_ms, c.heartbeat_ms), (200, 50));
    assert_eq!(c.data_dir, dir.path().join("data"));
    assert_eq!(c.data_dir_for(NodeId(2)), dir.path().join("data/2"));
    let peers: Vec<NodeId> = c.peers(NodeId(2)).map(|s| s.pid).collect();
    assert_eq!(peers, vec![NodeId(1), NodeId(3)]);
    let canonical = "1=127.0.0.1:7001;2=127.0.0.1:7002;3=127.0.0.1:7003;";
    assert_eq!(c.cluster_id, fnv1a_64(canonical.as_bytes()));
}

#[test]
fn servers_are_sorted_and_optional_fields_apply() {
    let extra = r#""election_timeout_ms": 300, "heartbeat_ms": 30, "data_dir": "/var/x",
                     "cluster_id": 42,"#;
    let servers = [r#""mypid": 7, "url": "tcp://h-2.example:9000""#, r#""mypid": 2, "url": "[::1]:9001""#];
    let c = Config::parse(&with(extra, &servers), "/etc/leader/config.json").unwrap();
    assert_eq!(c.pids(), vec![NodeId(2), NodeId(7)]);
    assert_eq!(c.servers[0].endpoint, "tcp://[::1]:9001");
    assert_eq!(c.servers[1].client_endpoint, "tcp://h-2.example:10000");
    assert_eq!((c.election_timeout_ms, c.heartbeat_ms), (300, 30));
    assert_eq!((c.data_dir, c.cluster_id), (PathBuf::from("/var/x"), 42));
    let rel = with(r#""data_dir": "d","#, &[r#""mypid": 1, "url": "*:7001""#]);
    let c = Config::parse(&rel, "/etc/leader/c.json").unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/etc/leader/d"));
}

#[test]
fn fnv1a_matches_the_published_vectors() {
    assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn cluster_id_is_stable_and_follows_urls() {
    let id = parse(SEED).cluster_id;
    let reordered = with(
        "",
        &[
            r#""mypid": 3, "url": "127.0.0.1:7003""#,
            r#""mypid": 1, "url": "127.0.0.1:7001""#,
            r#""mypid": 2, "url": "127.0.0.1:7002""#,
        ],
    );
    assert_eq!(parse(&reordered).cluster_id, id);
    assert_ne!(parse(&SEED.replace("7003", "7004")).cluster_id, id);
}

#[test]
fn unreadable_file_names_path_and_os_error() {
    let e = Config::load("/nonexistent/dir/config.json").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(msg.starts_with("/nonexistent/dir/config.json: cannot read"), "{msg}");
    assert!(msg.contains("No such file or directory"), "{msg}");
}

#[test]
fn bad_json_gives_line_and_column() {
    rejects("{\"object\": {\n  \"total\": 3,,\n}}", &["invalid JSON at line 2, column 14"]);
}

#[test]
fn missing_or_mistyped_object() {
    rejects(r#"{"Servers": []}"#, &["config.json: object: missing"]);
    rejects(r#"{"object": [1]}"#, &["object: expected an object, found an array"]);
    rejects("[]", &["(top level): expected an object"]);
}

#[test]
fn missing_or_mistyped_total() {
    let one = r#"[{"mypid": 1, "url": "a:1"}]"#;
    rejects(&format!(r#"{{"object": {{"Servers": {one}}}}}"#), &["object.total: missing"]);
    rejects(
        &format!(r#"{{"object": {{"total": "1", "Servers": {one}}}}}"#),
        &[r#"object.total: expected a non-negative integer, found string "1""#],
    );
}

#[test]
fn missing_or_mistyped_servers() {
    rejects(r#"{"object": {"total": 1}}"#, &["object.Servers: missing"]);
    rejects(r#"{"object": {"total": 1, "Servers": {}}}"#, &["object.Servers: expected an array"]);
    rejects(r#"{"object": {"total": 1, "Servers": [5]}}"#, &["object.Servers[0]: expected an object", "number 5"]);
}

#[test]
fn empty_servers_rejected() {
    rejects(r#"{"object": {"total": 0, "Servers": []}}"#, &["object.Servers is empty"]);
}

#[test]
fn total_must_match_server_count() {
    let text = SEED.replace("\"total\": 3", "\"total\": 4");
    rejects(&text, &["object.total is 4 but object.Servers lists 3 servers"]);
}

#[test]
fn missing_or_mistyped_mypid() {
    rejects(&with("", &[r#""mypid": 1, "url": "a:1""#, r#""url": "a:2""#]), &["object.Servers[1].mypid: missing"]);
    let want = r#"object.Servers[0].mypid: expected a positive integer, found string "1""#;
    rejects(&with("", &[r#""mypid": "1", "url": "a:1""#]), &[want]);
    rejects(&with("", &[r#""mypid": 1.5, "url": "a:1""#]), &["found number 1.5"]);
}

#[test]
fn pid_must_be_positive() {
    let want = "object.Servers[0].mypid: 0: pids are positive integers";
    rejects(&with("", &[r#""mypid": 0, "url": "a:1""#]), &[want]);
    let want = "object.Servers[0].mypid: -3: pids are positive integers";
    rejects(&with("", &[r#""mypid": -3, "url": "a:1""#]), &[want]);
}

#[test]
fn duplicate_pid_names_both_indices() {
    let servers = [r#""mypid": 1, "url": "a:1""#, r#""mypid": 2, "url": "a:2""#, r#""mypid": 1, "url": "a:3""#];
    rejects(&with("", &servers), &["object.Servers[2].mypid: 1 is also the pid of object.Servers[0]"]);
}

#[test]
fn missing_or_mistyped_url() {
    rejects(&with("", &[r#""mypid": 1"#]), &["object.Servers[0].url: missing"]);
    let want = ["object.Servers[0].url: expected a string", "found number 7001"];
    rejects(&with("", &[r#""mypid": 1, "url": 7001"#]), &want);
}

#[test]
fn original_readme_ports_are_out_of_range() {
    let text = r#"{"object": {"total": 2, "Servers": [
          {"mypid": 1, "url": "127.0.0.1:100001"}, {"mypid": 2, "url": "127.0.0.1:100002"}]}}"#;
    let e = Config::parse(text, "config.json").unwrap_err();
    let want = "config.json: object.Servers[0].url: \"127.0.0.1:100001\": \
                  port 100001 is out of range (1-65535)";
    assert_eq!(e.to_string(), want);
}

#[test]
fn malformed_urls_are_explained() {
    let cases = [
        ("127.0.0.1", "expected host:port"),
        ("127.0.0.1:0", "port 0 is out of range (1-65535)"),
        ("localhost:65536", r#""localhost:65536": port 65536 is out of range (1-65535)"#),
        ("127.0.0.1:http", r#"port "http" is not a number"#),
        ("127.0.0.1:", "is not a number"),
        (":7001", "the host is empty"),
        ("300.1.1.1:7001", "host 300.1.1.1 is not a valid IPv4 address"),
        ("::1:7001", "must be in brackets"),
        ("[::g]:7001", "not a valid IPv6 address"),
        ("my_host:7001", "not a valid hostname"),
        ("udp://a:1", r#"unsupported transport "udp""#),
        ("ipc://", "ipc:// needs a path"),
        ("inproc://", "inproc:// needs a name"),
    ];
    for (url, why) in cases {
        let text = with("", &[&format!(r#""mypid": 1, "url": "{url}""#)]);
        rejects(&text, &["object.Servers[0].url: ", why]);
    }
}

#[test]
fn ipc_and_inproc_urls_get_suffixed_client_endpoints() {
    let c =
        parse(&with("", &[r#""mypid": 1, "url": "ipc:///tmp/leader-1.sock""#, r#""mypid": 2, "url": "inproc://n2""#]));
    assert_eq!(c.servers[0].endpoint, "ipc:///tmp/leader-1.sock");
    assert_eq!(c.servers[0].client_endpoint, "ipc:///tmp/leader-1.sock.client");
    assert_eq!(c.servers[1].endpoint, "inproc://n2");
    assert_eq!(c.servers[1].client_endpoint, "inproc://n2.client");
}

#[test]
fn explicit_client_url_is_honored_and_checked() {
    let c = parse(&with("", &[r#""mypid": 1, "url": "a:7001", "client_url": "0.0.0.0:9999""#]));
    assert_eq!(c.servers[0].client_endpoint, "tcp://0.0.0.0:9999");
    let bad = with("", &[r#""mypid": 1, "url": "a:1", "client_url": "a:99999""#]);
    rejects(&bad, &[r#"object.Servers[0].client_url: "a:99999": port 99999 is out of range"#]);
    let bad = with("", &[r#""mypid": 1, "url": "a:1", "client_url": 8001"#]);
    rejects(&bad, &["object.Servers[0].client_url: expected a string, found number 8001"]);
}

#[test]
fn default_client_port_out_of_range_asks_for_client_url() {
    let text = with("", &[r#""mypid": 1, "url": "127.0.0.1:65000""#]);
    let want = ["object.Servers[0].client_url: ", "66000", "out of range", "set client_url explicitly"];
    rejects(&text, &want);
    let ok = with("", &[r#""mypid": 1, "url": "127.0.0.1:65000", "client_url": "127.0.0.1:64000""#]);
    assert_eq!(parse(&ok).servers[0].client_endpoint, "tcp://127.0.0.1:64000");
}

#[test]
fn duplicate_url_is_a_bind_conflict() {
    let servers = [r#""mypid": 1, "url": "127.0.0.1:7001""#, r#""mypid": 2, "url": "tcp://127.0.0.1:7001""#];
    let want = "object.Servers[1].url: endpoint tcp://127.0.0.1:7001 is already used by \
                  object.Servers[0].url";
    rejects(&with("", &servers), &[want]);
}

#[test]
fn duplicate_client_endpoint_is_a_bind_conflict() {
    // Server 2's default client endpoint (port 8001) is server 1's explicit one.
    let servers = [r#""mypid": 1, "url": "h:7000", "client_url": "h:8001""#, r#""mypid": 2, "url": "h:7001""#];
    let want = "object.Servers[1].client_url: endpoint tcp://h:8001 is already used by \
                  object.Servers[0].client_url";
    rejects(&with("", &servers), &[want]);
    // A client endpoint on another server's peer endpoint conflicts too.
    let servers = [r#""mypid": 1, "url": "h:7000", "client_url": "h:7001""#, r#""mypid": 2, "url": "h:7001""#];
    let want = "object.Servers[1].url: endpoint tcp://h:7001 is already used by \
                  object.Servers[0].client_url";
    rejects(&with("", &servers), &[want]);
}

#[test]
fn unknown_pid_lists_the_known_ones() {
    let e = parse(SEED).server(NodeId(9)).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_eq!(e.to_string(), "config.json: pid 9 is not in object.Servers (pids: 1, 2, 3)");
}

#[test]
fn optional_fields_are_validated() {
    let cases = [
        (r#""heartbeat_ms": 0,"#, "object.heartbeat_ms: 0 must be at least 1"),
        (r#""election_timeout_ms": 9,"#, "object.election_timeout_ms: 9 is out of range (10-600000)"),
        (
            r#""election_timeout_ms": 50,"#,
            "object.election_timeout_ms: 50 must be greater than object.heartbeat_ms (50)",
        ),
        (r#""heartbeat_ms": "50","#, r#"object.heartbeat_ms: expected a non-negative integer, found string "50""#),
        (
            r#""election_timeout_ms": -1,"#,
            "object.election_timeout_ms: expected a non-negative integer, found number -1",
        ),
        (r#""cluster_id": null,"#, "object.cluster_id: expected a non-negative integer, found null"),
        (r#""data_dir": 3,"#, "object.data_dir: expected a string, found number 3"),
        (r#""data_dir": "","#, r#"object.data_dir: "" is empty"#),
    ];
    for (extra, want) in cases {
        rejects(&with(extra, &[r#""mypid": 1, "url": "a:1""#]), &[want]);
    }
}

#[test]
fn render_config_parses_back() {
    let servers = [(2, "127.0.0.1:7102".to_string()), (1, r#"ipc:///tmp/a "b""#.to_string())];
    let text = render_config(&servers, Some(400), Some(40), Some(Path::new("/tmp/d")));
    let c = Config::parse(&text, "x/config.json").unwrap();
    assert_eq!(c.pids(), vec![NodeId(1), NodeId(2)]);
    assert_eq!(c.servers[0].url, r#"ipc:///tmp/a "b""#);
    assert_eq!(c.servers[1].endpoint, "tcp://127.0.0.1:7102");
    assert_eq!((c.election_timeout_ms, c.heartbeat_ms), (400, 40));
    assert_eq!(c.data_dir, PathBuf::from("/tmp/d"));
    let c = parse(&render_config(&servers[..1], None, None, None));
    assert_eq!((c.election_timeout_ms, c.data_dir), (200, PathBuf::from("data")));
}

#[test]
fn snapshot_policy_defaults_and_keys() {
    assert_eq!(parse(SEED).snapshot, SnapshotPolicy::default());
    let extra = r#""snapshot_entries": 500, "snapshot_bytes": 0, "snapshot_trailing_entries": 7,"#;
    let c = parse(&with(extra, &[r#""mypid": 1, "url": "127.0.0.1:7001""#]));
    assert_eq!(c.snapshot, SnapshotPolicy { entries: 500, bytes: 0, trailing: 7 });
}

#[test]
fn snapshot_keys_must_be_non_negative_integers() {
    for key in ["snapshot_entries", "snapshot_bytes", "snapshot_trailing_entries"] {
        let text = with(&format!(r#""{key}": "lots","#), &[r#""mypid": 1, "url": "127.0.0.1:7001""#]);
        rejects(&text, &[&format!("object.{key}"), "a non-negative integer", "\"lots\""]);
        let text = with(&format!(r#""{key}": -1,"#), &[r#""mypid": 1, "url": "127.0.0.1:7001""#]);
        rejects(&text, &[&format!("object.{key}"), "-1"]);
    }
}

#[test]
fn a_misspelt_key_is_refused_with_the_closest_known_one() {
    let servers = [r#""mypid": 1, "url": "127.0.0.1:7001""#];
    rejects(
        &with(r#""electon_timeout_ms": 500,"#, &servers),
        &[
            "object.electon_timeout_ms",
            "not a known key (did you mean election_timeout_ms?)",
            "known keys: total, Servers",
        ],
    );
    rejects(
        &with("", &[r#""mypid": 1, "url": "127.0.0.1:7001", "clienturl": "127.0.0.1:9001""#]),
        &["object.Servers[0].clienturl", "did you mean client_url?"],
    );
    rejects(
        r#"{"object": {"total": 1, "Servers": [{"mypid": 1, "url": "127.0.0.1:7001"}]}, "extra": 1}"#,
        &["config.json: extra is not a known key; known keys: object"],
    );
    // Every documented key loads.
    let all = r#""election_timeout_ms": 500, "heartbeat_ms": 50, "data_dir": "d", "cluster_id": 7,
        "snapshot_entries": 10, "snapshot_bytes": 0, "snapshot_trailing_entries": 1, "lease_reads": true,"#;
    assert!(parse(&with(all, &servers)).lease_reads);
}

#[test]
fn localhost_and_wildcards_clash_with_the_same_port_on_127_0_0_1() {
    let two = |a: &str, b: &str| {
        with("", &[&format!(r#""mypid": 1, "url": "{a}""#), &format!(r#""mypid": 2, "url": "{b}""#)])
    };
    rejects(
        &two("127.0.0.1:7001", "localhost:7001"),
        &[
            "object.Servers[1].url",
            "endpoint tcp://localhost:7001 is already used by object.Servers[0].url (as tcp://127.0.0.1:7001)",
        ],
    );
    rejects(&two("*:7001", "127.0.0.1:7001"), &["object.Servers[1].url", "already used by object.Servers[0].url"]);
    // Another port, or another interface, is another endpoint.
    assert_eq!(parse(&two("127.0.0.1:7001", "localhost:7002")).servers.len(), 2);
    assert_eq!(parse(&two("127.0.0.1:7001", "127.0.0.2:7001")).servers.len(), 2);
}

#[test]
fn metrics_url_is_optional_and_takes_host_port_with_or_without_http() {
    let s1 = r#""mypid": 1, "url": "127.0.0.1:7001", "metrics_url": "127.0.0.1:9101""#;
    let s2 = r#""mypid": 2, "url": "127.0.0.1:7002", "metrics_url": "http://localhost:9102""#;
    let s3 = r#""mypid": 3, "url": "127.0.0.1:7003""#;
    let c = parse(&with("", &[s1, s2, s3]));
    let urls: Vec<Option<&str>> = c.servers.iter().map(|s| s.metrics_url.as_deref()).collect();
    assert_eq!(urls, [Some("127.0.0.1:9101"), Some("localhost:9102"), None]);
    assert_eq!(parse(SEED).servers[0].metrics_url, None, "off when absent");
}

#[test]
fn bad_metrics_url_names_the_field_the_value_and_what_was_expected() {
    let one = |m: &str| with("", &[&format!(r#""mypid": 1, "url": "127.0.0.1:7001", "metrics_url": {m}"#)]);
    let field = "object.Servers[0].metrics_url: ";
    rejects(&one("9101"), &[field, "expected a string like \"127.0.0.1:9101\", found number 9101"]);
    rejects(
        &one(r#""https://127.0.0.1:9101""#),
        &[field, "\"https://127.0.0.1:9101\"", "unsupported scheme \"https\""],
    );
    rejects(&one(r#""tcp://127.0.0.1:9101""#), &[field, "unsupported scheme \"tcp\"", "expected host:port or http://"]);
    rejects(&one(r#""http://127.0.0.1:9101/metrics""#), &[field, "has a path; the path is always /metrics"]);
    rejects(&one(r#""127.0.0.1""#), &[field, "\"127.0.0.1\": expected host:port or http://host:port"]);
    rejects(&one(r#""127.0.0.1:0""#), &[field, "port \"0\" is not a number in 1-65535"]);
    rejects(&one(r#""127.0.0.1:http""#), &[field, "port \"http\" is not a number"]);
    rejects(&one(r#""*:9101""#), &[field, "host * is not an address; 0.0.0.0 or [::]"]);
    rejects(&one(r#""::1:9101""#), &[field, "must be in brackets"]);
    rejects(&one(r#""[::1]:+9101""#), &[field, "port \"+9101\""]);
    assert_eq!(parse(&one(r#""[::1]:9101""#)).servers[0].metrics_url.as_deref(), Some("[::1]:9101"));
}

#[test]
fn metrics_url_on_a_peer_or_client_port_is_a_bind_conflict() {
    let servers = [
        r#""mypid": 1, "url": "127.0.0.1:7001", "metrics_url": "127.0.0.1:9101""#,
        r#""mypid": 2, "url": "127.0.0.1:7002", "metrics_url": "localhost:8001""#,
    ];
    rejects(
        &with("", &servers),
        &["object.Servers[1].metrics_url: endpoint tcp://localhost:8001 is already used by object.Servers[0].client_url"],
    );
    let servers = [
        r#""mypid": 1, "url": "127.0.0.1:7001", "metrics_url": "0.0.0.0:9101""#,
        r#""mypid": 2, "url": "127.0.0.1:9101""#,
    ];
    rejects(&with("", &servers), &["object.Servers[1].url", "already used by object.Servers[0].metrics_url"]);
}

#[test]
fn the_metrics_flag_overrides_the_file_and_is_checked_like_it() {
    let servers = [
        r#""mypid": 1, "url": "127.0.0.1:7001", "metrics_url": "127.0.0.1:9101""#,
        r#""mypid": 2, "url": "127.0.0.1:7002", "metrics_url": "127.0.0.1:9102""#,
    ];
    let c = parse(&with("", &servers));
    assert_eq!(c.metrics_url_for(NodeId(1), None).unwrap().as_deref(), Some("127.0.0.1:9101"));
    assert_eq!(c.metrics_url_for(NodeId(1), Some("http://127.0.0.1:9201")).unwrap().as_deref(), Some("127.0.0.1:9201"));
    // Its own file value is what it replaces, not a clash.
    assert_eq!(c.metrics_url_for(NodeId(1), Some("127.0.0.1:9101")).unwrap().as_deref(), Some("127.0.0.1:9101"));
    let clash = |given: &str| c.metrics_url_for(NodeId(1), Some(given)).unwrap_err().to_string();
    let msg = clash("localhost:9102");
    assert!(
        msg.starts_with(
            "config.json: --metrics: endpoint tcp://localhost:9102 is already used by the metrics_url of server 2"
        ),
        "{msg}"
    );
    assert!(clash("127.0.0.1:8002").contains("the client_url of server 2 (as tcp://127.0.0.1:8002)"));
    assert!(clash("127.0.0.1:7001").contains("the url of server 1"));
    let msg = clash("ftp://x:1");
    assert!(msg.contains("--metrics: \"ftp://x:1\": unsupported scheme \"ftp\""), "{msg}");
    assert_eq!(
        c.metrics_url_for(NodeId(9), None).unwrap_err().to_string(),
        "config.json: pid 9 is not in object.Servers (pids: 1, 2)"
    );
}

#[test]
fn initial_members_and_promote_lag_are_checked_and_default_to_all_servers_and_1000() {
    let servers = r#"[{"mypid": 1, "url": "127.0.0.1:1"}, {"mypid": 2, "url": "127.0.0.1:2"}]"#;
    let file = |extra: &str| format!(r#"{{"object": {{"total": 2, {extra} "Servers": {servers}}}}}"#);
    let plain = Config::parse(&file(""), "c.json").expect("valid");
    assert_eq!((plain.initial_members.clone(), plain.promote_lag), (vec![NodeId(1), NodeId(2)], 1000));
    let one = Config::parse(&file(r#""initial_members": [2], "promote_lag": 5,"#), "c.json").expect("valid");
    assert_eq!((one.initial_members.clone(), one.promote_lag), (vec![NodeId(2)], 5));
    // The cluster id covers the initial members only: the same as a file of server 2 alone.
    let alone = r#"{"object": {"total": 1, "Servers": [{"mypid": 2, "url": "127.0.0.1:2"}]}}"#;
    assert_eq!(one.cluster_id, Config::parse(alone, "c.json").unwrap().cluster_id);
    for (extra, want) in [
        (r#""initial_members": [3],"#, "object.initial_members[0]: pid 3 is not in object.Servers [1, 2]"),
        (r#""initial_members": [1, 1],"#, "object.initial_members[1]: pid 1 is listed twice"),
        (r#""initial_members": [],"#, "object.initial_members: [] is empty"),
        (r#""initial_members": 1,"#, "object.initial_members"),
        (r#""promote_lag": -1,"#, "object.promote_lag"),
    ] {
        let e = Config::parse(&file(extra), "c.json").expect_err(extra).to_string();
        assert!(e.contains(want), "{extra}: {e}");
    }
}
