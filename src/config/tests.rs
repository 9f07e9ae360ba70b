//! Tests of the settings table and of `Config::from_vars`: defaults, checks, the command line.

use super::*;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_vars(&Env(move |k| map.get(k).cloned()))
}

#[test]
fn defaults_are_nodes() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c.port, 3000);
    assert_eq!(c.engine.ping_interval, Duration::from_millis(25_000));
    assert_eq!(c.engine.ping_timeout, Duration::from_millis(20_000));
    assert_eq!(c.engine.max_payload, 1_000_000);
    assert_eq!(c.connect_timeout, Duration::from_millis(45_000));
    assert_eq!(c.webhook_port, WebhookPort::Default(4000));
    assert_eq!(
        (c.limits.chat_rate_messages, c.limits.chat_rate_bytes),
        (0, 0),
        "chat rate limit off"
    );
    assert!(!c.instance_id.is_empty());
}

#[test]
fn redis_settings() {
    assert!(cfg(&[]).unwrap().redis.is_none());
    let r = cfg(&[("REDIS_HOST", "cache"), ("REDIS_PASSWORD", "p@ss")])
        .unwrap()
        .redis
        .unwrap();
    assert_eq!(r.target, RedisTarget::Standalone("redis://:p%40ss@cache:6379".into()));
    assert_eq!(r.kind, AdapterKind::Classic);
    let r = cfg(&[
        ("REDIS_MODE", "cluster"),
        ("REDIS_NODES", r#"[{"host":"a","port":7000},{"host":"b","port":7001}]"#),
        ("REDIS_ADAPTER", "sharded"),
    ])
    .unwrap()
    .redis
    .unwrap();
    assert_eq!(
        r.target,
        RedisTarget::Cluster(vec!["redis://a:7000".into(), "redis://b:7001".into()])
    );
    assert_eq!(r.kind, AdapterKind::Sharded);
    let r = cfg(&[("REDIS_HOST", "h"), ("REDIS_ADAPTER", "streams")])
        .unwrap()
        .redis
        .unwrap();
    assert_eq!(r.kind, AdapterKind::Streams);
    assert!(
        cfg(&[("REDIS_MODE", "none"), ("REDIS_URL", "redis://x:1")])
            .unwrap()
            .redis
            .is_none()
    );
}

#[test]
fn bad_values_name_the_variable() {
    assert_eq!(cfg(&[("PORT", "http")]).unwrap_err().var, "PORT");
    assert_eq!(cfg(&[("PING_INTERVAL", "0")]).unwrap_err().var, "PING_INTERVAL");
    assert_eq!(cfg(&[("LOG_FORMAT", "xml")]).unwrap_err().var, "LOG_FORMAT");
    assert_eq!(cfg(&[("WEBHOOK_PORT", "four")]).unwrap_err().var, "WEBHOOK_PORT");
    assert_eq!(cfg(&[("INSTANCE_ID", "a b")]).unwrap_err().var, "INSTANCE_ID");
    let e = cfg(&[("MAX_HTTP_BUFFER_SIZE", "-1")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"invalid MAX_HTTP_BUFFER_SIZE="-1": expected a size in bytes"#
    );
    assert_eq!(cfg(&[("WEBHOOK_PORT", "off")]).unwrap().webhook_port, WebhookPort::Off);
    assert_eq!(cfg(&[("WEBHOOK_SECRET", "short")]).unwrap_err().var, "WEBHOOK_SECRET");
    assert!(
        !cfg(&[("WEBHOOK_SECRET", "short")])
            .unwrap_err()
            .to_string()
            .contains("short")
    );
    assert_eq!(
        cfg(&[("WEBHOOK_SECRET", &"k".repeat(32))])
            .unwrap()
            .webhook_secret
            .map(|s| s.len()),
        Some(32)
    );
    assert_eq!(cfg(&[("SOCKETIO_PATH", "io")]).unwrap_err().var, "SOCKETIO_PATH");
    assert_eq!(cfg(&[("REDIS_MODE", "sentinel")]).unwrap_err().var, "REDIS_MODE");
    assert_eq!(cfg(&[("REDIS_MODE", "cluster")]).unwrap_err().var, "REDIS_NODES");
    assert_eq!(
        cfg(&[("REDIS_MODE", "cluster"), ("REDIS_NODES", "[{\"host\":\"a\"}]")])
            .unwrap_err()
            .var,
        "REDIS_NODES"
    );
    assert_eq!(cfg(&[("REDIS_URL", "http://x")]).unwrap_err().var, "REDIS_URL");
    let e = cfg(&[("REDIS_URL", "http://:hunter2@x")]).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert_eq!(
        cfg(&[("REDIS_HOST", "h"), ("REDIS_QUEUE_BYTES", "0")]).unwrap_err().var,
        "REDIS_QUEUE_BYTES"
    );
    let r = cfg(&[
        ("REDIS_HOST", "h"),
        ("REDIS_PASSWORD", "hunter2"),
        ("REDIS_QUEUE_BYTES", "1048576"),
    ])
    .unwrap()
    .redis
    .unwrap();
    assert_eq!(r.queue_bytes, 1 << 20);
    assert!(!format!("{r:?}").contains("hunter2"), "{r:?}");
    let secret = "hunter3-hunter3-hunter3-hunter3-hunter3";
    let c = cfg(&[("REDIS_URL", "redis://:hunter2@h:1"), ("WEBHOOK_SECRET", secret)]).unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains(secret) && shown.contains("h:1"),
        "{shown}"
    );
    assert_eq!(
        cfg(&[("REDIS_HOST", "h"), ("REDIS_ADAPTER", "x")]).unwrap_err().var,
        "REDIS_ADAPTER"
    );
    assert_eq!(
        cfg(&[("REDIS_HOST", "h"), ("REDIS_PORT", "x")]).unwrap_err().var,
        "REDIS_PORT"
    );
    assert_eq!(cfg(&[("SOCKETIO_PATH", "/chat/io/")]).unwrap().path, "/chat/io");
    assert_eq!(
        cfg(&[("CHAT_RATE_MESSAGES", "-1")]).unwrap_err().var,
        "CHAT_RATE_MESSAGES"
    );
    assert_eq!(cfg(&[("CHAT_RATE_BYTES", "1k")]).unwrap_err().var, "CHAT_RATE_BYTES");
}

/// Runs `from_vars` in a few configurations, recording every variable it asks for.
fn variables_read<T>(from_vars: impl Fn(&Env<&dyn Fn(&str) -> Option<String>>) -> T) -> BTreeSet<String> {
    let read = RefCell::new(BTreeSet::new());
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[("REDIS_HOST", "h"), ("WEBHOOK_MODE", "redis")],
        &[("REDIS_URL", "redis://h:1")],
        &[("REDIS_MODE", "cluster"), ("REDIS_NODES", r#"[{"host":"a","port":1}]"#)],
    ];
    for vars in cases {
        let get = |k: &str| {
            read.borrow_mut().insert(k.to_owned());
            vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        from_vars(&Env(&get));
    }
    read.into_inner()
}

fn help_of(cmd: &mut clap::Command) -> String {
    cmd.render_long_help().to_string()
}

#[test]
fn every_setting_read_is_in_the_help() {
    use clap::CommandFactory;
    let read = variables_read(|env| Config::from_vars(env).map(|_| ()));
    let help = help_of(&mut ServerCli::command());
    for var in &read {
        let flag = format!("--{}", var.to_ascii_lowercase().replace('_', "-"));
        assert!(
            help.contains(&format!("[env: {var}")),
            "{var} missing from --help:\n{help}"
        );
        assert!(help.contains(&flag), "{flag} missing from --help");
    }
    // And nothing is declared that the server does not read.
    for arg in ServerCli::command().get_arguments() {
        if let Some(var) = arg.get_env().and_then(|v| v.to_str()) {
            assert!(read.contains(var), "{var} is declared but never read");
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(!help.trim().is_empty(), "{var} has no help line");
        }
    }
    assert!(read.len() >= 36, "{read:?}");
}

#[test]
fn every_webhook_setting_read_is_in_its_help() {
    use crate::webhook::config::{WebhookCli, WebhookConfig};
    use clap::{Args, CommandFactory};
    let read = variables_read(|env| WebhookConfig::from_vars(env).map(|_| ()));
    let server_only: BTreeSet<String> = settings::ServerSettings::augment_args(clap::Command::new("x"))
        .get_arguments()
        .filter_map(|a| a.get_env()?.to_str().map(str::to_owned))
        .collect();
    let help = help_of(&mut WebhookCli::command());
    for var in read.difference(&server_only) {
        assert!(
            help.contains(&format!("[env: {var}")),
            "{var} missing from --help:\n{help}"
        );
    }
    for var in [
        "WEBHOOK_MODE",
        "SOCKETIO_URL",
        "WEBHOOK_TIMEOUT_MS",
        "WEBHOOK_SECRET",
        "REDIS_URL",
    ] {
        assert!(help.contains(&format!("[env: {var}")), "{var}");
    }
    assert!(
        !help.contains("[env: PING_INTERVAL"),
        "server-only settings stay out of sio-webhook --help"
    );
}

#[test]
fn table_defaults_match_the_types_they_configure() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c.engine.max_payload, EngineConfig::default().max_payload);
    assert_eq!(c.limits.outbound_queue_bytes, 8 << 20);
    assert_eq!(c.shutdown_grace, Duration::from_secs(10));
    let r = cfg(&[("REDIS_HOST", "h")]).unwrap().redis.unwrap();
    assert_eq!(r.queue_bytes, crate::adapter::redis::queue::DEFAULT_QUEUE_BYTES);
    assert_eq!(
        (r.key_prefix.as_str(), r.timeout),
        ("socket.io", Duration::from_secs(5))
    );
    // An empty value is no value: the default applies (docker compose passes `VAR=`).
    let c = cfg(&[("PORT", ""), ("LOG_FORMAT", " "), ("SOCKETIO_PATH", "")]).unwrap();
    assert_eq!(
        (c.port, c.log_format, c.path.as_str()),
        (3000, LogFormat::Pretty, "/socket.io")
    );
}

fn from_args(args: &[&str]) -> Result<(Option<Mode>, Config), ConfigError> {
    use clap::CommandFactory;
    let cmd = ServerCli::command();
    let matches = cmd.clone().try_get_matches_from(args).unwrap();
    Config::from_matches(&cmd, &matches)
}

#[test]
fn command_line() {
    use clap::CommandFactory;
    let (mode, c) = from_args(&["sio-server", "--port", "3001", "--ping-interval=100"]).unwrap();
    assert_eq!(
        (mode, c.port, c.engine.ping_interval),
        (None, 3001, Duration::from_millis(100))
    );
    let (mode, c) = from_args(&["sio-server", "client-suite", "--webhook-port", "off"]).unwrap();
    assert_eq!((mode, c.webhook_port), (Some(Mode::ClientSuite), WebhookPort::Off));
    if std::env::var_os("PORT").is_none() {
        assert_eq!(c.port, crate::client_suite::DEFAULT_PORT);
    }
    let (mode, c) = from_args(&["sio-server", "--port=4100", "client-suite"]).unwrap();
    assert_eq!((mode, c.port), (Some(Mode::ClientSuite), 4100));
    assert_eq!(
        from_args(&["sio-server", "conformance"]).unwrap().0,
        Some(Mode::Conformance)
    );
    // A bad flag value names its variable, as the environment's does.
    assert_eq!(
        from_args(&["sio-server", "--ping-interval", "0"]).unwrap_err().var,
        "PING_INTERVAL"
    );
    assert_eq!(
        from_args(&["sio-server", "--redis-mode", "x"]).unwrap_err().var,
        "REDIS_MODE"
    );
    let parse = |args: &[&str]| ServerCli::command().try_get_matches_from(args).unwrap_err();
    let e = parse(&["sio-server", "--version"]);
    assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
    assert_eq!(e.to_string(), format!("sio-server {}\n", env!("CARGO_PKG_VERSION")));
    assert_eq!(
        parse(&["sio-server", "--help"]).kind(),
        clap::error::ErrorKind::DisplayHelp
    );
    let e = parse(&["sio-server", "--no-such-setting", "1"]);
    assert_eq!((e.kind(), e.exit_code()), (clap::error::ErrorKind::UnknownArgument, 2));
    let e = parse(&["sio-server", "serve"]);
    assert_eq!((e.kind(), e.exit_code()), (clap::error::ErrorKind::InvalidValue, 2));
}

#[test]
fn a_value_that_is_not_utf8_names_its_variable() {
    use clap::CommandFactory;
    use std::os::unix::ffi::OsStringExt;
    let cmd = ServerCli::command();
    let args = [
        std::ffi::OsString::from("sio-server"),
        "--webhook-secret".into(),
        std::ffi::OsString::from_vec(b"hunter2\xff".to_vec()),
    ];
    let matches = cmd.clone().try_get_matches_from(args).unwrap();
    let e = Config::from_matches(&cmd, &matches).unwrap_err();
    assert_eq!(e.var, "WEBHOOK_SECRET");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn help_hides_secret_values() {
    use clap::CommandFactory;
    for name in ["WEBHOOK_SECRET", "REDIS_URL", "REDIS_PASSWORD"] {
        let cmd = ServerCli::command();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_env() == Some(name.as_ref()))
            .unwrap();
        assert!(arg.is_hide_env_values_set(), "{name}");
    }
}

#[test]
fn per_address_limits_derive_from_max_connections() {
    let l = cfg(&[]).unwrap().limits;
    assert_eq!((l.max_connections_per_ip, l.max_half_open_per_ip), (2_000, 1_000));
    let l = cfg(&[("MAX_CONNECTIONS", "300")]).unwrap().limits;
    assert_eq!((l.max_connections_per_ip, l.max_half_open_per_ip), (30, 15));
    let l = cfg(&[("MAX_CONNECTIONS", "3")]).unwrap().limits;
    assert_eq!((l.max_connections_per_ip, l.max_half_open_per_ip), (10, 10));
    let l = cfg(&[("MAX_CONNECTIONS", "0")]).unwrap().limits;
    assert_eq!((l.max_connections_per_ip, l.max_half_open_per_ip), (0, 0));
    let l = cfg(&[("MAX_CONNECTIONS_PER_IP", "0"), ("MAX_HALF_OPEN_PER_IP", "7")])
        .unwrap()
        .limits;
    assert_eq!((l.max_connections_per_ip, l.max_half_open_per_ip), (0, 7));
    assert_eq!(
        cfg(&[("MAX_CONNECTIONS_PER_IP", "-1")]).unwrap_err().var,
        "MAX_CONNECTIONS_PER_IP"
    );
    assert_eq!(
        cfg(&[("MAX_HALF_OPEN_PER_IP", "x")]).unwrap_err().var,
        "MAX_HALF_OPEN_PER_IP"
    );
}

#[test]
fn trusted_proxies() {
    assert!(cfg(&[]).unwrap().trusted_proxies.is_empty());
    let t = cfg(&[("TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8")])
        .unwrap()
        .trusted_proxies;
    assert!(t.contains("10.9.8.7".parse().unwrap()));
    let e = cfg(&[("TRUSTED_PROXIES", "10.0.0.0/8,nginx")]).unwrap_err();
    assert_eq!(e.var, "TRUSTED_PROXIES");
    assert!(e.reason.contains("nginx"), "{e}");
}

#[test]
fn recovery_settings() {
    assert_eq!(cfg(&[("RECOVERY", "maybe")]).unwrap_err().var, "RECOVERY");
    assert_eq!(
        cfg(&[("RECOVERY_MAX_DISCONNECTION_MS", "2m")]).unwrap_err().var,
        "RECOVERY_MAX_DISCONNECTION_MS"
    );
    let c = cfg(&[]).unwrap();
    assert!(c.recovery, "on by default for the chat server");
    assert_eq!(c.recovery_max_disconnection, Duration::from_millis(120_000));
    assert_eq!(c.recovery_log_bytes, 16 << 20);
    assert_eq!(c.recovery_session_bytes, 64 << 20);
    assert_eq!(
        cfg(&[("RECOVERY_SESSION_BYTES", "1024")])
            .unwrap()
            .recovery_session_bytes,
        1024
    );
    for var in ["RECOVERY_LOG_BYTES", "RECOVERY_SESSION_BYTES"] {
        let e = cfg(&[(var, "0")]).unwrap_err();
        assert_eq!((e.var, e.reason.as_str()), (var, "must be greater than 0"));
        assert_eq!(cfg(&[(var, "lots")]).unwrap_err().var, var);
    }
    assert!(!cfg(&[("RECOVERY", "false")]).unwrap().recovery);
}

#[test]
fn admin_settings() {
    assert!(cfg(&[]).unwrap().admin.is_none(), "off by default");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let a = cfg(&[("ADMIN_USERNAME", "admin"), ("ADMIN_PASSWORD_HASH", &hash)])
        .unwrap()
        .admin
        .unwrap();
    assert_eq!(a.namespace, "/admin");
    assert_eq!(a.mode, crate::admin::AdminMode::Development);
    assert!(!a.readonly);
    assert_eq!(a.credentials.unwrap().username, "admin");
    let off = cfg(&[
        ("ADMIN_AUTH", "off"),
        ("ADMIN_MODE", "production"),
        ("ADMIN_READONLY", "true"),
    ])
    .unwrap()
    .admin
    .unwrap();
    assert!(off.credentials.is_none() && off.readonly);
    assert_eq!(off.mode, crate::admin::AdminMode::Production);
    let var = |vars: &[(&str, &str)]| cfg(vars).unwrap_err().var;
    assert_eq!(var(&[("ADMIN_USERNAME", "admin")]), "ADMIN_PASSWORD_HASH");
    assert_eq!(var(&[("ADMIN_PASSWORD_HASH", &hash)]), "ADMIN_USERNAME");
    assert_eq!(
        var(&[("ADMIN_USERNAME", "a"), ("ADMIN_PASSWORD_HASH", "plain")]),
        "ADMIN_PASSWORD_HASH"
    );
    assert_eq!(var(&[("ADMIN_AUTH", "maybe")]), "ADMIN_AUTH");
    assert_eq!(var(&[("ADMIN_AUTH", "off"), ("ADMIN_USERNAME", "a")]), "ADMIN_AUTH");
    assert_eq!(
        var(&[("ADMIN_AUTH", "off"), ("ADMIN_NAMESPACE", "/")]),
        "ADMIN_NAMESPACE"
    );
    assert_eq!(var(&[("ADMIN_AUTH", "off"), ("ADMIN_MODE", "dev")]), "ADMIN_MODE");
    assert_eq!(
        var(&[("ADMIN_AUTH", "off"), ("ADMIN_READONLY", "sure")]),
        "ADMIN_READONLY"
    );
    let e = cfg(&[("ADMIN_USERNAME", "a"), ("ADMIN_PASSWORD_HASH", "plain")]).unwrap_err();
    assert!(!e.to_string().contains("plain"), "the value is never echoed: {e}");
    // A bad value is an error even with the admin off.
    for (k, v) in [
        ("ADMIN_READONLY", "sure"),
        ("ADMIN_MODE", "dev"),
        ("ADMIN_NAMESPACE", "admin"),
        ("ADMIN_AUTH", "maybe"),
    ] {
        assert_eq!(var(&[(k, v)]), k);
    }
    assert!(
        cfg(&[("ADMIN_READONLY", "YES")]).unwrap().admin.is_none(),
        "valid and off"
    );
}

#[test]
fn every_boolean_takes_the_same_words() {
    for var in ["RECOVERY", "HTTP_COMPRESSION", "PER_MESSAGE_DEFLATE", "ADMIN_READONLY"] {
        let get = |v: &str| {
            let c = cfg(&[(var, v), ("ADMIN_AUTH", "off")]).unwrap();
            match var {
                "RECOVERY" => c.recovery,
                "HTTP_COMPRESSION" => c.http_compression,
                "PER_MESSAGE_DEFLATE" => c.per_message_deflate,
                _ => c.admin.expect("admin on").readonly,
            }
        };
        for yes in ["true", "TRUE", "on", "On", "yes", "1"] {
            assert!(get(yes), "{var}={yes}");
        }
        for no in ["false", "False", "off", "OFF", "no", "0"] {
            assert!(!get(no), "{var}={no}");
        }
        let e = cfg(&[(var, "maybe")]).unwrap_err();
        assert_eq!(e.var, var);
        assert!(e.reason.contains("true or false"), "{e}");
    }
}

#[test]
fn parser_and_compression() {
    assert_eq!(cfg(&[("PARSER", "json")]).unwrap_err().var, "PARSER");
    assert_eq!(
        cfg(&[("HTTP_COMPRESSION", "maybe")]).unwrap_err().var,
        "HTTP_COMPRESSION"
    );
    assert_eq!(
        cfg(&[("PARSER", "msgpack")]).unwrap().parser,
        crate::socketio::Parser::Msgpack
    );
    assert_eq!(cfg(&[]).unwrap().parser, crate::socketio::Parser::Default);
    assert!(!cfg(&[("HTTP_COMPRESSION", "off")]).unwrap().http_compression);
    assert!(cfg(&[]).unwrap().http_compression);
    assert!(!cfg(&[]).unwrap().per_message_deflate, "off by default, as in Node");
}
