//! The binary end to end: `serve` as a child process, then the client
//! commands against it, as a person would type them.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{cli, serve_generated, Hub, BIN};

/// Run the CLI against `hub` as `token`: success, stdout, stderr.
fn run(hub: &Hub, token: &str, args: &[&str]) -> (bool, String, String) {
    let r = cli(hub, token, args);
    (r.ok, r.out, r.err)
}

#[test]
fn invalid_configuration_lists_every_problem_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("clawnet.toml");
    std::fs::write(&file, "[chat]\nmax_payload_bytes = \"big\"\nsurprise = 1\n").expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--set", "presence.idle_after_secs=0"])
        .env("CLAWNET_LISTEN", "not-an-address")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "chat.max_payload_bytes",
        "chat.surprise",
        "presence.idle_after_secs",
        "listen",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
}

#[test]
fn chat_dm_and_tail_against_a_real_hub() {
    let (hub, master) = serve_generated();
    let (ok, out, err) = run(
        &hub,
        &master,
        &["agents", "create", "--id", "bob", "--handle", "Bob"],
    );
    assert!(ok, "{err}");
    let bob = out
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once): "))
        .expect("token line")
        .to_owned();

    // Follow global as bob.
    let mut tail = Command::new(BIN)
        .args([
            "tail", "--room", "global", "--json", "--url", &hub.url, "--token", &bob,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tail");
    let (tx, rx) = mpsc::channel();
    let stdout = tail.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Tail connects in the background: send until one arrives.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, sent, err) = run(
            &hub,
            &master,
            &["chat", "--room", "global", "--msg", "ping"],
        );
        assert!(ok, "{err}");
        assert!(sent.starts_with("sent #global seq"), "{sent}");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("json line");
            assert_eq!(v["payload"]["text"], "ping");
            assert_eq!(v["from_handle"], "master");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tail never showed the message"
        );
    }
    let _ = tail.kill();
    let _ = tail.wait();

    // A DM by handle lands in the sorted-id room.
    let (ok, out, err) = run(
        &hub,
        &master,
        &["chat", "--to", "@bob", "--msg", "hi", "--json"],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["to_id"], "dm:bob:master");

    // Errors are clear and exit non-zero.
    let (ok, _, err) = run(&hub, &bob, &["chat", "--room", "nowhere", "--msg", "x"]);
    assert!(!ok);
    assert!(
        err.contains("not_found") || err.contains("no room"),
        "{err}"
    );
    let (ok, _, err) = run(&hub, "cn_wrong", &["chat", "--msg", "x"]);
    assert!(!ok);
    assert!(err.contains("unauthorized") || err.contains("401"), "{err}");
}

#[test]
fn login_stores_url_and_token_privately_and_chat_uses_them() {
    let (hub, master) = serve_generated();
    let home = tempfile::tempdir().expect("tmp");
    let login = Command::new(BIN)
        .args(["login", "--url", &hub.url, "--token", &master])
        .env("XDG_CONFIG_HOME", home.path())
        .env("HOME", home.path())
        .output()
        .expect("login");
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let file = home.path().join("clawnet").join("config.toml");
    let meta = std::fs::metadata(&file).expect("config written");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let chat = Command::new(BIN)
        .args(["chat", "--msg", "from saved login"])
        .env("XDG_CONFIG_HOME", home.path())
        .env("HOME", home.path())
        .env_remove("CLAWNET_URL")
        .env_remove("CLAWNET_TOKEN")
        .output()
        .expect("chat");
    assert!(
        chat.status.success(),
        "{}",
        String::from_utf8_lossy(&chat.stderr)
    );
    // A wrong token is refused at login and nothing is saved.
    let home2 = tempfile::tempdir().expect("tmp");
    let bad = Command::new(BIN)
        .args(["login", "--url", &hub.url, "--token", "cn_bad"])
        .env("XDG_CONFIG_HOME", home2.path())
        .env("HOME", home2.path())
        .output()
        .expect("login");
    assert!(!bad.status.success());
    assert!(!home2.path().join("clawnet").join("config.toml").exists());
}

#[test]
fn completions_are_printed_for_each_shell_and_exit_statuses_are_distinct() {
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawnet"))
            .args(["completions", shell])
            .output()
            .expect("run");
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("quarantine") && text.contains("tasks"),
            "{shell}: {text}"
        );
    }
    // A usage error is clap's 2; an unreachable hub is 5.
    let usage = std::process::Command::new(env!("CARGO_BIN_EXE_clawnet"))
        .args(["tasks", "frobnicate"])
        .output()
        .expect("run");
    assert_eq!(usage.status.code(), Some(2));
    let down = std::process::Command::new(env!("CARGO_BIN_EXE_clawnet"))
        .args([
            "tasks",
            "list",
            "--url",
            "http://127.0.0.1:9",
            "--token",
            "cn_x",
        ])
        .env_remove("CLAWNET_URL")
        .env_remove("CLAWNET_TOKEN")
        .output()
        .expect("run");
    assert_eq!(
        down.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}
