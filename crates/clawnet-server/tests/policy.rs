//! The authorization matrix, walked in full: every REST route and every
//! WebSocket method, for master, warden, worker and an unauthenticated
//! caller. A refusal must be `forbidden` with a reason and leave a
//! `policy.blocked` audit entry; an allowed call must reach its handler.

mod common;

use clawnet_core::HubConfig;
use clawnet_proto::methods::Method;
use clawnet_proto::Role;
use clawnet_server::policy::{self, Access};
use common::*;
use serde_json::{json, Value};

struct Caller {
    role: Option<Role>,
    id: String,
    token: Option<String>,
}

fn fill(template: &str, id: &str) -> String {
    template
        .replace("{id}", id)
        .replace("{room}", "global")
        .replace("{name}", "w2")
        .replace("{token_id}", "tok-none")
        .replace("{seq}", "1")
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let url = format!("{base}{path}");
    let mut req = http.request(method.parse().expect("method"), &url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        req = req.json(&json!({}));
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_rest_route_follows_the_matrix_for_every_role() {
    let hub = start_full(HubConfig::default(), None, None, unlimited()).await;
    let m = hub.master();
    let (_, warden) = m
        .create_agent("warden1", "warden1", "warden")
        .await
        .expect("warden");
    let worker = hub.agent("w1").await;
    hub.agent("w2").await;
    // Removing an agent is tried on a throwaway one, so the rows after it
    // still run against an agent that exists.
    hub.agent("w3").await;
    let mut callers = vec![
        Caller {
            role: None,
            id: "anonymous".into(),
            token: None,
        },
        Caller {
            role: Some(Role::Master),
            id: "master".into(),
            token: Some(MASTER.into()),
        },
        Caller {
            role: Some(Role::Warden),
            id: "warden1".into(),
            token: Some(warden),
        },
        Caller {
            role: Some(Role::Worker),
            id: "w1".into(),
            token: Some(worker),
        },
    ];
    let http = reqwest::Client::new();
    let mut refusals = Vec::new();
    let mut checked = 0;
    for rule in policy::REST {
        let selfish = matches!(rule.access, Access::SelfOrStaff | Access::SelfOrMaster);
        for c in &mut callers {
            // Self rules are tried on the caller itself and on another agent.
            let other = if (rule.method, rule.path) == ("DELETE", "/api/v1/agents/{id}") {
                "w3"
            } else {
                "w2"
            };
            let targets: Vec<(String, bool)> = if selfish {
                vec![(c.id.clone(), true), (other.into(), false)]
            } else {
                vec![(other.into(), false)]
            };
            for (target, is_self) in targets {
                let path = fill(rule.path, &target);
                let (status, body) =
                    call(&http, &hub.base, rule.method, &path, c.token.as_deref()).await;
                checked += 1;
                let what = format!("{} {} as {} ({status} {body})", rule.method, path, c.id);
                let Some(role) = c.role else {
                    if rule.access == Access::Public {
                        assert!(
                            status != 401 && status != 403,
                            "public route refused: {what}"
                        );
                    } else {
                        assert_eq!(status, 401, "no credential must be 401: {what}");
                        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
                    }
                    continue;
                };
                if rule.access.allows(role, is_self) {
                    assert!(
                        status != 401 && status != 403,
                        "allowed call refused: {what}"
                    );
                    assert!(
                        body["error"]["message"] != "no such route",
                        "a matrix entry without a route: {what}"
                    );
                    // Rotating one's own tokens replaces the credential.
                    if path.ends_with("/tokens/rotate") && is_self && status == 201 {
                        c.token = body["token"].as_str().map(str::to_owned);
                    }
                } else {
                    assert_eq!(status, 403, "refused call must be 403: {what}");
                    assert_eq!(body["error"]["code"], "forbidden", "{what}");
                    let msg = body["error"]["message"].as_str().unwrap_or_default();
                    assert!(
                        msg.contains("needs") || msg.contains("allowed only"),
                        "reason given: {what}"
                    );
                    refusals.push((c.id.clone(), format!("{} {}", rule.method, rule.path)));
                }
            }
        }
    }
    assert!(checked > 4 * policy::REST.len(), "walked {checked} calls");
    assert!(!refusals.is_empty());
    hub.hub.flush_audit().await;
    let master = callers[1].token.clone().expect("master token");
    let logs: Value = hub
        .rest(&master)
        .get("/logs?type=policy&limit=1000")
        .await
        .expect("logs");
    let entries = logs["entries"].as_array().expect("entries");
    for (actor, action) in &refusals {
        assert!(
            entries.iter().any(|e| e["action"] == "policy.blocked"
                && e["actor"] == actor.as_str()
                && e["meta"]["action"] == action.as_str()),
            "no policy.blocked entry for {actor} {action}"
        );
    }
}

#[tokio::test]
async fn every_websocket_method_follows_the_matrix_for_every_role() {
    let hub = start_full(HubConfig::default(), None, None, unlimited()).await;
    let (_, warden) = hub
        .master()
        .create_agent("warden1", "warden1", "warden")
        .await
        .expect("warden");
    let worker = hub.agent("w1").await;
    for (role, token) in [
        (Role::Master, MASTER.to_owned()),
        (Role::Warden, warden),
        (Role::Worker, worker),
    ] {
        let mut ws = hub.raw_connected(&token, json!({})).await;
        for m in Method::ALL {
            if m == Method::Connect {
                continue;
            }
            let res = ws.req(m.name(), json!({})).await;
            let code = res["error"]["code"].as_str().unwrap_or("");
            if policy::ws(m).allows(role, false) {
                assert!(
                    code != "forbidden" && code != "unauthorized",
                    "{} as {role:?} refused: {res}",
                    m.name()
                );
            } else {
                assert_eq!(code, "forbidden", "{} as {role:?}: {res}", m.name());
            }
        }
    }
    // Before `connect`, nothing but `connect` is answered.
    let mut raw = hub.raw(MASTER).await;
    let res = raw.req("chat.send", json!({})).await;
    assert_eq!(res["ok"], false, "{res}");
}

/// Every route answers its documented error shapes: no credential (401),
/// a malformed body (400) where it takes one, and an unknown id (404, or
/// 400 where the name itself is refused), each a status the OpenAPI
/// document lists for that operation, with the JSON error body.
#[tokio::test]
async fn every_route_answers_its_documented_errors() {
    let hub = start_full(HubConfig::default(), None, None, unlimited()).await;
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{}/api/v1/openapi.json", hub.base))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let mut checked = 0;
    for rule in policy::REST {
        if rule.path == "/ws" {
            continue;
        }
        let op = &doc["paths"][rule.path][rule.method.to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} undocumented", rule.method, rule.path);
        let documented = |status: u16| op["responses"].get(status.to_string()).is_some();
        let method: reqwest::Method = rule.method.parse().expect("method");
        let unknown = rule
            .path
            .replace("{id}", "nobody-here")
            .replace("{room}", "no-such-room")
            .replace("{name}", "nobody-here")
            .replace("{token_id}", "tok-none")
            .replace("{seq}", "999999");
        let check = |what: &str, status: u16, body: &Value| {
            assert!(
                documented(status),
                "{what} on {} {}: {status} is not documented",
                rule.method,
                rule.path
            );
            if status >= 400 {
                assert!(body["error"]["code"].is_string(), "{what}: {body}");
            }
        };
        if rule.access != policy::Access::Public {
            let r = http
                .request(method.clone(), format!("{}{}", hub.base, rule.path))
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 401, "{} {}", rule.method, rule.path);
            check("no credential", status, &body);
        }
        if op.get("requestBody").is_some() {
            let r = http
                .request(method.clone(), format!("{}{}", hub.base, unknown))
                .bearer_auth(MASTER)
                .header("content-type", "application/json")
                .body("{\"unterminated\": [")
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                status == 400 || status == 404,
                "malformed body on {} {}: {status} {body}",
                rule.method,
                rule.path
            );
            check("malformed body", status, &body);
        }
        if rule.path.contains('{') && rule.access != policy::Access::Public {
            let mut req = http
                .request(method.clone(), format!("{}{}", hub.base, unknown))
                .bearer_auth(MASTER);
            if matches!(rule.method, "POST" | "PUT" | "PATCH") {
                req = req.json(&json!({}));
            }
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                status == 404 || status == 400,
                "unknown id on {} {}: {status} {body}",
                rule.method,
                unknown
            );
            check("unknown id", status, &body);
        }
        checked += 1;
    }
    assert!(checked > 40, "{checked} routes checked");
}
