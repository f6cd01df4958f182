//! `clawnet rooms`, `presence`, `handles`, `dm`, `agents` and `settings`
//! end to end against a real hub, in both output forms: tables for people,
//! JSON lines for scripts.

mod common;

use common::*;

#[test]
fn rooms_from_creation_to_deletion() {
    let hub = serve(&[]);
    let w1 = agent(&hub, "w1");
    let w2 = agent(&hub, "w2");

    let r = cli(&hub, &w1, &["rooms", "create", "alpha"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.out.trim(), "created alpha");
    let r = cli(
        &hub,
        &w1,
        &["rooms", "create", "vault", "--private", "--json"],
    );
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.json()["private"], true);

    // People get a table; a private room is invisible to outsiders.
    let r = cli(&hub, &w2, &["rooms", "list"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(
        r.header(),
        [
            "ROOM",
            "VISIBILITY",
            "MEMBERS",
            "JOINED",
            "LAST",
            "SEQ",
            "CREATED"
        ]
    );
    assert_eq!(r.row("alpha")[1], "public");
    assert!(!r.out.contains("vault"), "{}", r.out);

    assert!(cli(&hub, &w2, &["rooms", "join", "alpha"]).ok);
    let r = cli(&hub, &w1, &["rooms", "invite", "vault", "@w2"]);
    assert!(r.ok, "{}", r.err);
    let r = cli(&hub, &w2, &["rooms", "members", "vault", "--json"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.json()["members"], serde_json::json!(["w1", "w2"]));

    assert!(
        cli(
            &hub,
            &w1,
            &["chat", "--room", "alpha", "--msg", "hello alpha"]
        )
        .ok
    );
    let r = cli(&hub, &w2, &["rooms", "history", "alpha"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.header(), ["SEQ", "WHEN", "FROM", "TEXT"]);
    assert!(
        r.out.contains("@w1") && r.out.contains("hello alpha"),
        "{}",
        r.out
    );
    let r = cli(&hub, &w2, &["rooms", "history", "alpha", "--json"]);
    assert_eq!(r.json()["payload"]["text"], "hello alpha");

    assert!(cli(&hub, &w2, &["rooms", "leave", "alpha"]).ok);
    let r = cli(&hub, &w2, &["rooms", "delete", "alpha"]);
    assert!(
        r.refused("forbidden"),
        "only its creator or master: {}",
        r.err
    );
    let r = cli(&hub, &w1, &["rooms", "delete", "alpha"]);
    assert!(r.ok, "{}", r.err);
    let r = cli(&hub, &w1, &["rooms", "show", "alpha"]);
    assert!(r.refused("not_found"), "{}", r.err);
}

#[test]
fn presence_handles_dms_and_agents() {
    let hub = serve(&[]);
    let w1 = agent(&hub, "w1");
    agent(&hub, "w2");

    let r = cli(&hub, &w1, &["presence"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(
        r.header(),
        ["HANDLE", "AGENT", "STATUS", "SINCE", "ACTIVITY"]
    );
    assert_eq!(r.row("@w2")[2], "offline", "plain text when piped");

    let r = cli(&hub, &w1, &["handles", "set", "w1", "builder"]);
    assert!(r.ok, "{}", r.err);
    let r = cli(&hub, &w1, &["handles", "set", "w2", "thief"]);
    assert!(r.refused("forbidden"), "{}", r.err);

    let r = cli(&hub, &w1, &["dm", "@w2", "--msg", "hello there"]);
    assert!(r.ok, "{}", r.err);
    assert!(r.out.contains("dm:w1:w2"), "{}", r.out);
    let r = cli(&hub, &w1, &["dm", "--json"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.json()["room"], "dm:w1:w2");

    let r = cli(&hub, MASTER, &["agents", "role", "w2", "warden", "--json"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.json()["role"], "warden");
    let r = cli(&hub, &w1, &["agents", "role", "w1", "master"]);
    assert!(r.refused("forbidden"), "{}", r.err);
    let r = cli(&hub, MASTER, &["agents", "show", "@builder"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.out.trim(), "w1 (@builder, worker)");
    let r = cli(&hub, &w1, &["agents", "issue", "w1", "--json"]);
    assert!(r.ok, "{}", r.err);
    let spare = r.json()["token_id"].as_str().expect("token id").to_owned();
    let r = cli(&hub, &w1, &["agents", "tokens", "w1"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.header(), ["TOKEN", "ID", "ISSUED"]);
    assert!(r.out.contains(&spare), "{}", r.out);
    let r = cli(&hub, &w1, &["agents", "revoke", "w1", &spare]);
    assert!(r.ok, "{}", r.err);
    let r = cli(&hub, &w1, &["agents", "tokens", "w1", "--json"]);
    assert_eq!(r.out.lines().count(), 1, "one token left: {}", r.out);
    let r = cli(&hub, MASTER, &["agents", "remove", "w1"]);
    assert!(r.ok, "{}", r.err);
    let r = cli(&hub, &w1, &["presence"]);
    assert!(
        r.refused("unauthorized"),
        "a removed agent's token: {}",
        r.err
    );
}

#[test]
fn settings_are_read_and_changed_at_runtime() {
    let hub = serve(&[]);
    let w1 = agent(&hub, "w1");
    let r = cli(&hub, MASTER, &["settings", "get"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.header(), ["KEY", "VALUE"]);
    assert!(r.out.contains("tasks.max_pending"), "{}", r.out);

    let r = cli(
        &hub,
        MASTER,
        &["settings", "set", "tasks.max_pending=7", "--json"],
    );
    assert!(r.ok, "{}", r.err);
    let r = cli(&hub, MASTER, &["settings", "get", "--json"]);
    let v = r.json();
    let settings = v.get("settings").unwrap_or(&v);
    assert_eq!(settings["tasks.max_pending"], 7, "{v}");

    let r = cli(&hub, MASTER, &["settings", "set", "tasks.nope=1"]);
    assert!(r.refused("invalid"), "{}", r.err);
    let r = cli(&hub, &w1, &["settings", "set", "tasks.max_pending=9"]);
    assert!(r.refused("forbidden"), "{}", r.err);
}
