//! WebSocket methods: decode params, call the hub, encode the result.

use clawnet_core::{Error, Hub};
use clawnet_proto::guard::{DeleteParams, QuarantineListParams, QuarantineRef};
use clawnet_proto::methods::{
    to_value, AckParams, AckResult, HistoryParams, Method, Pong, PresenceList, PresenceSetParams,
    ReportParams, RoomCreateParams, RoomInviteParams, RoomList, RoomParams, SendParams,
    TypingParams,
};
use clawnet_proto::tasks::{
    DispatchParams, ProgressParams, QueueRef, ResultParams, ScheduleParams, ScheduleRef,
    TaskListParams, TaskRef,
};
use clawnet_proto::ErrorCode;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// A method's result: a JSON value, or JSON text already built (the send
/// path reuses the envelope text it made for fan-out).
#[derive(Debug)]
pub enum Reply {
    /// A value to serialize.
    Value(Value),
    /// Serialized JSON.
    Raw(String),
}

/// `v` serialized as the result.
fn raw<T: serde::Serialize>(v: &T) -> Result<Reply, Error> {
    serde_json::to_string(v)
        .map(Reply::Raw)
        .map_err(|e| Error::unavailable(format!("cannot encode the result: {e}")))
}

/// A request's `params` as the JSON text the client sent, decoded only by
/// the method into its own type: no `Value` tree in between, which was a
/// measurable share of the task hot path. Absent and `null` are `None`.
#[derive(Debug)]
pub struct Params(Option<Box<RawValue>>);

impl Params {
    /// Params read straight from a frame.
    pub fn raw(p: Option<Box<RawValue>>) -> Self {
        Self(p)
    }

    /// Params already parsed into a value.
    pub fn value(v: Value) -> Self {
        if v.is_null() {
            return Self(None);
        }
        Self(serde_json::value::to_raw_value(&v).ok())
    }

    /// The params as the method's own type; absent is `{}`.
    pub fn decode<T: DeserializeOwned>(self) -> Result<T, Error> {
        let text = self.0.as_deref().map_or("{}", RawValue::get);
        serde_json::from_str(text).map_err(|e| {
            // The position is within `params`, not the frame: leave it out.
            let mut msg = e.to_string();
            if let Some(at) = msg.find(" at line ") {
                msg.truncate(at);
            }
            Error::invalid("params", msg)
        })
    }
}

/// Methods without parameters still refuse unknown ones.
fn no_params(p: &Params) -> Result<(), Error> {
    let Some(raw) = &p.0 else {
        return Ok(());
    };
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Object(m)) if m.is_empty() => Ok(()),
        _ => Err(Error::invalid("params", "this method takes no parameters")),
    }
}

/// Call one method for `agent` on its connection `conn_id`. `connect` is
/// handled by the connection itself.
pub async fn call(
    hub: &Hub,
    agent: &str,
    conn_id: u64,
    method: Method,
    p: Params,
) -> Result<Reply, Error> {
    let v = match method {
        Method::Connect => return Err(Error::invalid("method", "already connected")),
        Method::ChatSend => {
            let t0 = std::time::Instant::now();
            let out = hub.send(agent, p.decode::<SendParams>()?).await?;
            crate::metrics::send_seconds().record(t0.elapsed().as_secs_f64());
            return Ok(Reply::Raw(format!(
                r#"{{"message":{},"duplicate":{}}}"#,
                out.json, out.duplicate
            )));
        }
        Method::RoomCreate => to_value(
            &hub.create_room(agent, p.decode::<RoomCreateParams>()?)
                .await?,
        ),
        Method::RoomJoin => to_value(
            &hub.join_room(agent, &p.decode::<RoomParams>()?.room)
                .await?,
        ),
        Method::RoomLeave => {
            let room = p.decode::<RoomParams>()?.room;
            let left = hub.leave_room(agent, &room).await?;
            json!({"room": room, "left": left})
        }
        Method::RoomInvite => {
            let p = p.decode::<RoomInviteParams>()?;
            to_value(&hub.invite(agent, &p.room, &p.agent).await?)
        }
        Method::RoomList => to_value(&RoomList {
            rooms: {
                no_params(&p)?;
                hub.list_rooms(agent).await?
            },
        }),
        Method::RoomHistory => {
            let p = p.decode::<HistoryParams>()?;
            to_value(
                &hub.history(agent, &p.room, p.after_seq.unwrap_or(0), p.limit)
                    .await?,
            )
        }
        Method::Typing => {
            let p = p.decode::<TypingParams>()?;
            hub.typing(agent, &p.room, p.typing).await?;
            json!({})
        }
        Method::PresenceSet => to_value(
            &hub.set_presence(agent, p.decode::<PresenceSetParams>()?.status)
                .await?,
        ),
        Method::PresenceList => {
            no_params(&p)?;
            to_value(&PresenceList {
                agents: hub.presence(agent).await?,
            })
        }
        Method::Report => {
            let p = p.decode::<ReportParams>()?;
            to_value(&hub.report(agent, p.status, p.activity, p.meta).await?)
        }
        Method::Ack => {
            let p = p.decode::<AckParams>()?;
            let mut want = p.cursors;
            match (p.room, p.seq) {
                (Some(r), Some(s)) => {
                    want.insert(r, s);
                }
                (None, None) => {}
                _ => return Err(Error::invalid("params", "ack takes room and seq together")),
            }
            if want.is_empty() {
                return Err(Error::invalid(
                    "params",
                    "ack needs room and seq, or cursors",
                ));
            }
            to_value(&AckResult {
                cursors: hub.ack_many(agent, want).await?,
            })
        }
        // The task hot path: the answer straight to text, without a `Value`
        // tree in between.
        Method::TaskDispatch => {
            return raw(&hub
                .dispatch_via(agent, conn_id, p.decode::<DispatchParams>()?)
                .await?)
        }
        Method::TaskProgress => {
            return raw(&hub
                .task_progress(agent, p.decode::<ProgressParams>()?)
                .await?)
        }
        Method::TaskResult => {
            return raw(&hub.task_result(agent, p.decode::<ResultParams>()?).await?)
        }
        Method::TaskRelease => to_value(
            &hub.task_release(agent, p.decode::<ProgressParams>()?)
                .await?,
        ),
        Method::TaskGet => to_value(&hub.task(agent, &p.decode::<TaskRef>()?.task_id).await?),
        Method::TaskList => to_value(&hub.tasks(agent, p.decode::<TaskListParams>()?).await?),
        Method::TaskRetry => to_value(
            &hub.retry_task(agent, &p.decode::<TaskRef>()?.task_id)
                .await?,
        ),
        Method::TaskCancel => to_value(
            &hub.cancel_task(agent, &p.decode::<TaskRef>()?.task_id)
                .await?,
        ),
        Method::QueueList => {
            no_params(&p)?;
            to_value(&hub.queues(agent).await?)
        }
        Method::QueuePause => to_value(
            &hub.set_queue_paused(agent, &p.decode::<QueueRef>()?.name, true)
                .await?,
        ),
        Method::QueueResume => to_value(
            &hub.set_queue_paused(agent, &p.decode::<QueueRef>()?.name, false)
                .await?,
        ),
        Method::ScheduleCreate => to_value(
            &hub.create_schedule(agent, p.decode::<ScheduleParams>()?)
                .await?,
        ),
        Method::ScheduleList => {
            no_params(&p)?;
            to_value(&hub.schedules(agent).await?)
        }
        Method::ScheduleDelete => to_value(
            &hub.delete_schedule(agent, &p.decode::<ScheduleRef>()?.schedule_id)
                .await?,
        ),
        Method::Activity => {
            no_params(&p)?;
            to_value(&hub.activity(agent).await?)
        }
        Method::Ping => {
            no_params(&p)?;
            to_value(&Pong { ts: hub.now() })
        }
        Method::ChatDelete => {
            let p = p.decode::<DeleteParams>()?;
            json!({"message": hub.delete_message(agent, &p.room, p.seq).await?})
        }
        Method::QuarantineList => to_value(
            &hub.quarantine_list(agent, p.decode::<QuarantineListParams>()?)
                .await?,
        ),
        Method::QuarantineApprove => {
            let p = p.decode::<QuarantineRef>()?;
            json!({"item": hub.quarantine_approve(agent, &p.id, p.reason).await?})
        }
        Method::QuarantineReject => {
            let p = p.decode::<QuarantineRef>()?;
            json!({"item": hub.quarantine_reject(agent, &p.id, p.reason).await?})
        }
    };
    Ok(Reply::Value(v))
}

/// Resolve a method name or answer `unknown_method`.
pub fn resolve(name: &str) -> Result<Method, Error> {
    Method::parse(name)
        .ok_or_else(|| Error::new(ErrorCode::UnknownMethod, format!("unknown method '{name}'")))
}
