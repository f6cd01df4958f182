//! The authorization matrix: for every REST route and every WebSocket
//! method, which roles may call it (SPEC §6).
//!
//! This is the one table. The REST router registers a route only through
//! [`crate::rest`]'s builder, which refuses to build a route missing here,
//! and the WebSocket table is an exhaustive `match`, so a new method without
//! an entry does not compile. The gate runs before the handler; the core
//! still checks what depends on data (room membership, "tasks it dispatched
//! or that target it"), so the table is the coarse first wall, not the only
//! one.

use clawnet_proto::methods::Method;
use clawnet_proto::Role;

/// Who may call a route or method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a credential (health, the upgrade itself).
    Public,
    /// Any authenticated agent; the operation limits a worker to its own
    /// rooms, messages and tasks.
    Agent,
    /// The agent named by the `{id}` path segment, or master and warden.
    SelfOrStaff,
    /// The agent named by the `{id}` path segment, or master.
    SelfOrMaster,
    /// Master and warden.
    Staff,
    /// Master only (high-risk actions, SPEC §6).
    Master,
}

impl Access {
    /// Whether `role` may call, `is_self` telling whether the `{id}` of the
    /// path is the caller itself.
    pub fn allows(self, role: Role, is_self: bool) -> bool {
        match self {
            Self::Public | Self::Agent => true,
            Self::SelfOrStaff => is_self || role.reads_everything(),
            Self::SelfOrMaster => is_self || role == Role::Master,
            Self::Staff => role.reads_everything(),
            Self::Master => role == Role::Master,
        }
    }

    /// Why a role is refused, for the `forbidden` answer.
    pub fn refusal(self) -> &'static str {
        match self {
            Self::Public | Self::Agent => "allowed",
            Self::SelfOrStaff => "allowed only on yourself, or to master and warden",
            Self::SelfOrMaster => "allowed only on yourself, or to master",
            Self::Staff => "needs master or warden",
            Self::Master => "needs master",
        }
    }
}

/// One REST route.
#[derive(Debug, Clone, Copy)]
pub struct RestRule {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// The route as registered (axum syntax, `{param}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

const fn r(method: &'static str, path: &'static str, access: Access) -> RestRule {
    RestRule {
        method,
        path,
        access,
    }
}

use Access::{Agent, Master, Public, SelfOrMaster, SelfOrStaff, Staff};

/// Every REST route. Keep it in the order of `rest::routes`.
pub const REST: &[RestRule] = &[
    r("GET", "/healthz", Public),
    r("GET", "/readyz", Public),
    r("GET", "/metrics", Public),
    r("GET", "/ws", Public),
    r("GET", "/api/v1/openapi.json", Public),
    r("GET", "/api/v1/me", Agent),
    r("GET", "/api/v1/agents", Agent),
    r("POST", "/api/v1/agents", Master),
    r("GET", "/api/v1/agents/{id}", Agent),
    r("PATCH", "/api/v1/agents/{id}", Master),
    r("DELETE", "/api/v1/agents/{id}", Master),
    r("GET", "/api/v1/agents/{id}/tokens", SelfOrStaff),
    r("POST", "/api/v1/agents/{id}/tokens", SelfOrMaster),
    r("POST", "/api/v1/agents/{id}/tokens/rotate", SelfOrMaster),
    r(
        "DELETE",
        "/api/v1/agents/{id}/tokens/{token_id}",
        SelfOrMaster,
    ),
    r("GET", "/api/v1/agents/{id}/inbox", SelfOrStaff),
    r("PUT", "/api/v1/agents/{id}/inbox", SelfOrMaster),
    r("POST", "/api/v1/handles", Agent),
    r("GET", "/api/v1/rooms", Agent),
    r("POST", "/api/v1/rooms", Agent),
    r("GET", "/api/v1/rooms/{room}", Agent),
    r("DELETE", "/api/v1/rooms/{room}", Agent),
    r("GET", "/api/v1/rooms/{room}/members", Agent),
    r("POST", "/api/v1/rooms/{room}/join", Agent),
    r("POST", "/api/v1/rooms/{room}/leave", Agent),
    r("POST", "/api/v1/rooms/{room}/invite", Agent),
    r("GET", "/api/v1/rooms/{room}/history", Agent),
    r("DELETE", "/api/v1/rooms/{room}/messages/{seq}", Agent),
    r("POST", "/api/v1/messages", Agent),
    r("GET", "/api/v1/dms", Agent),
    r("GET", "/api/v1/dms/{id}/history", Agent),
    r("GET", "/api/v1/presence", Agent),
    r("GET", "/api/v1/tasks", Agent),
    r("POST", "/api/v1/tasks", Agent),
    r("GET", "/api/v1/tasks/{id}", Agent),
    r("POST", "/api/v1/tasks/{id}/retry", Master),
    r("POST", "/api/v1/tasks/{id}/cancel", Agent),
    r("GET", "/api/v1/queues", Agent),
    r("POST", "/api/v1/queues/{name}/pause", Master),
    r("POST", "/api/v1/queues/{name}/resume", Master),
    r("GET", "/api/v1/schedules", Agent),
    r("POST", "/api/v1/schedules", Agent),
    r("DELETE", "/api/v1/schedules/{id}", Agent),
    r("GET", "/api/v1/activity", Agent),
    r("GET", "/api/v1/logs", Staff),
    r("GET", "/api/logs", Staff),
    r("GET", "/api/v1/settings", Staff),
    r("PATCH", "/api/v1/settings", Master),
    r("GET", "/api/settings", Staff),
    r("PATCH", "/api/settings", Master),
    r("POST", "/api/settings", Master),
    r("GET", "/api/v1/quarantine", Staff),
    r("POST", "/api/v1/quarantine/{id}/approve", Staff),
    r("POST", "/api/v1/quarantine/{id}/reject", Staff),
];

/// The rule of a REST route, by method and registered path.
pub fn rest(method: &str, path: &str) -> Option<&'static RestRule> {
    // HEAD is answered by the GET route.
    let method = if method == "HEAD" { "GET" } else { method };
    REST.iter().find(|r| r.method == method && r.path == path)
}

/// Whether the `{id}` segment of `path` (a request path matching the
/// registered `template`) names the caller: its agent id, or `@handle`
/// (handles compare case-insensitively; `@` may arrive as `%40`).
pub fn names_self(template: &str, path: &str, agent_id: &str, handle: &str) -> bool {
    template.split('/').zip(path.split('/')).any(|(t, p)| {
        if t != "{id}" {
            return false;
        }
        let h = p.strip_prefix('@').or_else(|| p.strip_prefix("%40"));
        p == agent_id || h.is_some_and(|h| h.eq_ignore_ascii_case(handle))
    })
}

/// Who may call a WebSocket method. An exhaustive match: a new method does
/// not compile until it has an entry.
pub fn ws(method: Method) -> Access {
    match method {
        Method::Connect => Public,
        Method::ChatSend
        | Method::ChatDelete
        | Method::RoomCreate
        | Method::RoomJoin
        | Method::RoomLeave
        | Method::RoomInvite
        | Method::RoomList
        | Method::RoomHistory
        | Method::Typing
        | Method::PresenceSet
        | Method::PresenceList
        | Method::Report
        | Method::Ack
        | Method::Ping
        | Method::TaskDispatch
        | Method::TaskProgress
        | Method::TaskResult
        | Method::TaskRelease
        | Method::TaskGet
        | Method::TaskList
        | Method::TaskCancel
        | Method::QueueList
        | Method::ScheduleCreate
        | Method::ScheduleList
        | Method::ScheduleDelete
        | Method::Activity => Agent,
        Method::QuarantineList | Method::QuarantineApprove | Method::QuarantineReject => Staff,
        Method::TaskRetry | Method::QueuePause | Method::QueueResume => Master,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rest_rule_is_unique() {
        for (i, a) in REST.iter().enumerate() {
            for b in &REST[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn self_is_the_id_segment() {
        let t = "/api/v1/agents/{id}/tokens";
        assert!(names_self(t, "/api/v1/agents/w1/tokens", "w1", "one"));
        assert!(names_self(t, "/api/v1/agents/@One/tokens", "w1", "one"));
        assert!(names_self(t, "/api/v1/agents/%40one/tokens", "w1", "one"));
        assert!(!names_self(t, "/api/v1/agents/w2/tokens", "w1", "one"));
        assert!(!names_self(t, "/api/v1/agents/@two/tokens", "w1", "one"));
        let room = "/api/v1/rooms/{room}";
        assert!(!names_self(room, "/api/v1/rooms/w1", "w1", "one"));
    }

    #[test]
    fn high_risk_actions_need_master() {
        for (m, p) in [
            ("POST", "/api/v1/agents"),
            ("POST", "/api/v1/queues/{name}/pause"),
            ("POST", "/api/v1/tasks/{id}/retry"),
            ("PATCH", "/api/v1/agents/{id}"),
            ("DELETE", "/api/v1/agents/{id}"),
            ("PATCH", "/api/v1/settings"),
            ("PATCH", "/api/settings"),
            ("POST", "/api/settings"),
        ] {
            assert_eq!(rest(m, p).map(|r| r.access), Some(Master), "{m} {p}");
        }
        assert!(!Master.allows(Role::Warden, false));
        assert!(Staff.allows(Role::Warden, false));
        assert!(!Staff.allows(Role::Worker, false));
        assert!(SelfOrMaster.allows(Role::Worker, true));
        assert!(!SelfOrMaster.allows(Role::Warden, false));
    }
}
