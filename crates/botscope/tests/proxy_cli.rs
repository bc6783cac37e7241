//! The command line of the real `botscope-proxy` binary: help, version, and bad values refused
//! with exit code 2 and a short error before anything starts.

use std::process::{Command, Output};

/// Every variable the binary reads, so the caller's environment cannot change a test.
const VARIABLES: [&str; 6] = [
    "BOTSCOPE_PROXY_LISTEN",
    "BOTSCOPE_PROXY_UPSTREAM",
    "BOTSCOPE_PROXY_METRICS_LISTEN",
    "BOTSCOPE_NAMESPACE",
    "BOTSCOPE_BEARER_TOKEN",
    "RUST_LOG",
];

fn proxy() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_botscope-proxy"));
    for variable in VARIABLES {
        command.env_remove(variable);
    }
    command
}

fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the binary runs");
    (
        status.code(),
        String::from_utf8(stdout).expect("utf-8 stdout"),
        String::from_utf8(stderr).expect("utf-8 stderr"),
    )
}

/// The help text of the option `flag`: its line and the lines up to the next option's.
fn paragraph(help: &str, flag: &str) -> String {
    let mut lines = help
        .lines()
        .skip_while(|line| !line.trim_start().starts_with(&format!("{flag} ")));
    let first = lines.next().unwrap_or_else(|| panic!("{flag} in\n{help}"));
    let rest = lines.take_while(|line| !line.trim_start().starts_with('-'));
    std::iter::once(first)
        .chain(rest)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn help_lists_every_option_with_its_default_and_variable() {
    let (code, help, stderr) = run(proxy().arg("--help"));
    assert_eq!(code, Some(0), "{stderr}");
    let metrics_default = botscope::DEFAULT_LISTEN.to_string();
    for (flag, variable, default) in [
        ("--listen", "BOTSCOPE_PROXY_LISTEN", "127.0.0.1:8081"),
        (
            "--upstream",
            "BOTSCOPE_PROXY_UPSTREAM",
            botscope::http::forward::DEFAULT_UPSTREAM,
        ),
        (
            "--metrics-listen",
            "BOTSCOPE_PROXY_METRICS_LISTEN",
            &metrics_default,
        ),
        (
            "--namespace",
            "BOTSCOPE_NAMESPACE",
            botscope::DEFAULT_NAMESPACE,
        ),
        ("--bearer-token", "BOTSCOPE_BEARER_TOKEN", "none"),
        ("--timeout", "BOTSCOPE_PROXY_TIMEOUT", "10"),
        ("--body-timeout", "BOTSCOPE_PROXY_BODY_TIMEOUT", "30"),
        (
            "--header-read-timeout",
            "BOTSCOPE_PROXY_HEADER_READ_TIMEOUT",
            "100",
        ),
        ("--max-connections", "BOTSCOPE_PROXY_MAX_CONNECTIONS", "256"),
        ("--global-limit", "BOTSCOPE_PROXY_GLOBAL_LIMIT", "50"),
    ] {
        let text = paragraph(&help, flag);
        assert!(text.contains(&format!("[env: {variable}")), "{text}");
        assert!(text.contains(&format!("[default: {default}")), "{text}");
    }
    assert!(help.contains("--version"), "{help}");
    // The connection policy as the proxy applies it (see `DiscordProxyBuilder::max_connections`).
    let cap = paragraph(&help, "--max-connections");
    for policy in [
        "waited a second",
        "never-used ones first",
        "twice",
        "request in flight is never closed",
    ] {
        assert!(cap.contains(policy), "{cap}");
    }
}

#[test]
fn help_never_shows_the_bearer_token() {
    let (code, help, _) = run(proxy()
        .arg("--help")
        .env("BOTSCOPE_BEARER_TOKEN", "hunter2-secret")
        .env("BOTSCOPE_NAMESPACE", "disruptor"));
    assert_eq!(code, Some(0));
    assert!(!help.contains("hunter2-secret"), "{help}");
    // Other variables do show their value, so the hiding is the token's alone.
    assert!(help.contains("BOTSCOPE_NAMESPACE=disruptor"), "{help}");
}

#[test]
fn version_prints_the_version() {
    let (code, stdout, _) = run(proxy().arg("--version"));
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout.trim(),
        format!("botscope-proxy {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Runs the binary expecting clap's refusal: exit 2, a short error on stderr naming `names`.
fn refused(command: &mut Command, names: &[&str]) -> String {
    let (code, stdout, stderr) = run(command);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.lines().count() <= 5, "{stderr}");
    for name in names {
        assert!(stderr.contains(name), "{name} in {stderr}");
    }
    stderr
}

#[test]
fn an_empty_bearer_token_is_an_error_not_no_auth() {
    let stderr = refused(
        proxy().args(["--bearer-token", ""]),
        &["--bearer-token", "empty"],
    );
    assert!(!stderr.contains("forwarding"), "{stderr}");
    refused(
        proxy().env("BOTSCOPE_BEARER_TOKEN", ""),
        &["--bearer-token", "empty"],
    );
    refused(proxy().arg("--bearer-token="), &["--bearer-token", "empty"]);
}

#[test]
fn a_bad_value_is_a_short_error_naming_the_option_and_the_value() {
    refused(proxy().args(["--listen", "nope"]), &["--listen", "nope"]);
    refused(
        proxy().env("BOTSCOPE_PROXY_LISTEN", "nope"),
        &["--listen", "nope"],
    );
    refused(
        proxy().args(["--metrics-listen", "localhost:9464"]),
        &["--metrics-listen", "localhost:9464"],
    );
    refused(
        proxy().args(["--upstream", "ftp://discord.com"]),
        &["--upstream", "http or https"],
    );
    // A value that may be a secret is refused without being repeated.
    let stderr = refused(
        proxy().env("BOTSCOPE_BEARER_TOKEN", "hunter2 secret"),
        &["--bearer-token", "whitespace"],
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    refused(
        proxy().env("BOTSCOPE_NAMESPACE", "9lives"),
        &["--namespace", "9lives"],
    );
    for (flag, bad) in [
        ("--timeout", "0"),
        ("--body-timeout", "-1"),
        ("--header-read-timeout", "NaN"),
        ("--timeout", "1e300"),
        ("--max-connections", "0"),
        ("--global-limit", "0"),
        ("--global-limit", "70000"),
    ] {
        // `=` so that `-1` is a value, not a flag.
        refused(proxy().arg(format!("{flag}={bad}")), &[flag, bad]);
    }
    refused(
        proxy().env("BOTSCOPE_PROXY_BODY_TIMEOUT", "inf"),
        &["--body-timeout", "inf"],
    );
    refused(proxy().arg("--bogus"), &["--bogus"]);
    refused(proxy().arg("--listen"), &["--listen"]);
}

#[test]
fn a_busy_port_exits_1_with_a_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, _, stderr) =
        // A fatal error reaches stderr whatever RUST_LOG filters.
        run(proxy().env("RUST_LOG", "off").args(["--listen", "127.0.0.1:0", "--metrics-listen", &address]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot serve /metrics"), "{stderr}");
    assert!(stderr.contains(&address), "{stderr}");
}
