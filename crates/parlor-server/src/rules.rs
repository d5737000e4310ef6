//! The rules of §2 and §4 that need no shared state, written once for every engine: field
//! validation, tokens, the per-session rate limits, and the answer each request gets.
//!
//! [`op`] turns a request into the engine [`Op`] it asks for (or an `Op::Refused` with the code
//! of why not); [`answer`] turns the engine's [`Reply`] into the `ok` or `error` frame. A repeat
//! of a request gets its answer rebuilt from what the engine remembered and the repeated frame,
//! which carries the same fields as the first.

use parlor_protocol::token::{self, Claims};
use parlor_protocol::{validate, ClientFrame, ErrorCode, OkFrame, ServerFrame};
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::engine::{Done, Grant, Op, Recalled, Refusal, Reply};
use crate::frame::Frame;
use crate::named::Named;
use crate::window::Window;

/// What the node knows of a session it serves: who it is and its own rate windows.
#[derive(Debug)]
pub struct SessionCtx {
    /// Its app.
    pub app: u32,
    /// Its user id.
    pub user: String,
    /// The claims of the session's token (for logins without a token of their own).
    pub claims: Claims,
    /// The highest request id seen on this node (a repeat is never rate-limited).
    pub last_request: u64,
    /// Room requests per second.
    pub requests: Window,
    /// Commands per second.
    pub commands: Window,
    /// Broadcasts / barrages per second, per room.
    pub messages: Named<Window>,
    /// The token the resume of this connection gave, until the client's first frame shows it
    /// holds it ([`Engine::confirm`](crate::engine::Engine::confirm)).
    pub unconfirmed: Option<String>,
}

impl SessionCtx {
    /// A session of `app`'s `user` with `claims`, whose last request id was `last_request`.
    pub fn new(app: u32, user: String, claims: Claims, last_request: u64) -> SessionCtx {
        SessionCtx {
            app,
            user,
            claims,
            last_request,
            requests: Window::default(),
            commands: Window::default(),
            messages: Named::default(),
            unconfirmed: None,
        }
    }
}

type Refuse = (ErrorCode, String);

fn code(c: ErrorCode) -> Refuse {
    (c, c.message().to_string())
}

fn refused((code, message): Refuse) -> Op {
    Op::Refused { code, message }
}

/// The grant of a login to `room`: from the login's own token, else from the session's.
fn login_grant(
    ctx: &SessionCtx,
    room: &str,
    token: Option<&str>,
    cfg: &ServerConfig,
    now_s: u64,
) -> Result<Grant, Refuse> {
    validate::room_id(room).map_err(code)?;
    match token {
        Some(t) => {
            let secret = cfg.apps.get(&ctx.app).ok_or_else(|| code(ErrorCode::AuthFailed))?;
            let claims = token::verify(secret.as_bytes(), t, ctx.app, &ctx.user, Some(room), now_s).map_err(code)?;
            Ok(Grant::of(&claims))
        }
        None => {
            if ctx.claims.room_id.as_deref().is_some_and(|r| r != room) {
                return Err((ErrorCode::AuthFailed, "the session's token is for another room".to_string()));
            }
            if token::expired(&ctx.claims, now_s) {
                return Err(code(ErrorCode::TokenExpired));
            }
            Ok(Grant::of(&ctx.claims))
        }
    }
}

/// The operation `frame` asks for. `fresh` is false for a repeated id: the engine will answer
/// it from memory, so no rate window counts it. `now_s` and `time_ms` are the wall clock.
pub fn op(
    ctx: &mut SessionCtx,
    frame: ClientFrame,
    fresh: bool,
    cfg: &ServerConfig,
    now: Instant,
    now_s: u64,
    time_ms: u64,
) -> Op {
    if fresh && !ctx.requests.allow(now, cfg.request_rate) {
        return refused(code(ErrorCode::RequestsTooFrequent));
    }
    let result = match frame {
        ClientFrame::Login(f) => login_grant(ctx, &f.room, f.token.as_deref(), cfg, now_s).map(|grant| Op::Login {
            room: f.room,
            config: f.config,
            grant,
        }),
        ClientFrame::Logout(f) => Ok(Op::Logout { room: f.room }),
        ClientFrame::Switch(f) => {
            let login = login_grant(ctx, &f.to, f.token.as_deref(), cfg, now_s)
                .map(|grant| (f.config, grant))
                .map_err(|(c, _)| c);
            Ok(Op::Switch { from: f.from, to: f.to, login })
        }
        ClientFrame::Publish(f) => validate::stream_id(&f.stream)
            .map_err(|c| (c, "invalid stream id".to_string()))
            .and_then(|_| {
                validate::stream_extra(&f.extra).map_err(|c| (c, "stream extra info is too long".to_string()))
            })
            .map(|_| Op::Publish { room: f.room, stream: f.stream, extra: f.extra }),
        ClientFrame::Unpublish(f) => Ok(Op::Unpublish { room: f.room, stream: f.stream }),
        ClientFrame::StreamExtra(f) => validate::stream_extra(&f.extra)
            .map_err(|c| (c, "stream extra info is too long".to_string()))
            .map(|_| Op::StreamExtra { room: f.room, stream: f.stream, extra: f.extra }),
        ClientFrame::RoomExtra(f) => validate::room_extra(&f.key, &f.value).map_err(code).map(|_| Op::RoomExtra {
            room: f.room,
            key: f.key,
            value: f.value,
            time_ms,
        }),
        ClientFrame::Broadcast(f) => message(ctx, f.room, false, f.message, cfg, now, time_ms),
        ClientFrame::Barrage(f) => message(ctx, f.room, true, f.message, cfg, now, time_ms),
        ClientFrame::Command(f) => match validate::message(&f.command) {
            Err(c) => Err(code(c)),
            Ok(()) if ctx.commands.full(now, cfg.command_rate) => Err(code(ErrorCode::MessagesTooFrequent)),
            Ok(()) => Ok(Op::Command { room: f.room, to: f.to, command: f.command, time_ms }),
        },
        ClientFrame::RenewToken(f) => {
            let secret = cfg.apps.get(&ctx.app).ok_or_else(|| code(ErrorCode::AuthFailed));
            secret
                .and_then(|s| token::verify(s.as_bytes(), &f.token, ctx.app, &ctx.user, None, now_s).map_err(code))
                .map(|claims| Op::Renew { room: claims.room_id.clone(), grant: Grant::of(&claims), claims })
        }
        // `members` is a read, answered by the node (`Node::members`), never an operation.
        ClientFrame::Hello(_)
        | ClientFrame::Resume(_)
        | ClientFrame::Ping(_)
        | ClientFrame::Bye(_)
        | ClientFrame::Members(_) => Err(code(ErrorCode::InvalidField)),
    };
    result.unwrap_or_else(refused)
}

fn message(
    ctx: &mut SessionCtx,
    room: String,
    barrage: bool,
    message: String,
    cfg: &ServerConfig,
    now: Instant,
    time_ms: u64,
) -> Result<Op, Refuse> {
    validate::message(&message).map_err(code)?;
    let window = ctx.messages.get_mut(&room);
    if window.is_some_and(|w| w.full(now, cfg.user_message_rate)) {
        return Err(code(ErrorCode::MessagesTooFrequent));
    }
    Ok(Op::Message { room, barrage, message, time_ms })
}

/// What an operation, once applied, changes in the session's own state on this node.
#[derive(Debug)]
pub enum Spend {
    /// A broadcast or barrage in this room (its rate window).
    Message(String),
    /// A command (the command rate window).
    Command,
    /// The session left this room (its window is forgotten).
    Left(String),
    /// The session's token is now these claims.
    Claims(Claims),
    /// Nothing.
    Nothing,
}

impl Spend {
    /// What `op` will spend if applied.
    pub fn of(op: &Op) -> Spend {
        match op {
            Op::Message { room, .. } => Spend::Message(room.clone()),
            Op::Command { .. } => Spend::Command,
            Op::Logout { room } | Op::Switch { from: room, .. } => Spend::Left(room.clone()),
            Op::Renew { room: None, claims, .. } => Spend::Claims(claims.clone()),
            _ => Spend::Nothing,
        }
    }
}

/// Count what an applied operation spent of the session's own rate windows, forget the windows
/// of rooms it left, take a renewed token.
pub fn applied(ctx: &mut SessionCtx, spend: Spend, now: Instant) {
    match spend {
        Spend::Message(room) => {
            if ctx.messages.get(&room).is_none() {
                ctx.messages.insert(room.clone(), Window::default());
            }
            if let Some(w) = ctx.messages.get_mut(&room) {
                w.allow(now, u32::MAX);
            }
        }
        Spend::Command => {
            ctx.commands.allow(now, u32::MAX);
        }
        Spend::Left(room) => {
            ctx.messages.remove(&room);
        }
        Spend::Claims(claims) => ctx.claims = claims,
        Spend::Nothing => {}
    }
}

/// What a request answers about: its room (for `switch`, the room entered) and whether it
/// leaves a room (whose "not in the room" is 1002002).
#[derive(Debug, Clone)]
pub struct Subject {
    room: Option<String>,
    leaving: bool,
}

/// The subject of request `frame`.
pub fn subject(frame: &ClientFrame) -> Subject {
    let (room, leaving) = subject_of(frame);
    Subject { room, leaving }
}

fn subject_of(frame: &ClientFrame) -> (Option<String>, bool) {
    match frame {
        ClientFrame::Login(f) => (Some(f.room.clone()), false),
        ClientFrame::Logout(f) => (Some(f.room.clone()), true),
        ClientFrame::Switch(f) => (Some(f.to.clone()), true),
        ClientFrame::Publish(f) => (Some(f.room.clone()), false),
        ClientFrame::Unpublish(f) => (Some(f.room.clone()), false),
        ClientFrame::StreamExtra(f) => (Some(f.room.clone()), false),
        ClientFrame::RoomExtra(f) => (Some(f.room.clone()), false),
        ClientFrame::Broadcast(f) | ClientFrame::Barrage(f) => (Some(f.room.clone()), false),
        ClientFrame::Command(f) => (Some(f.room.clone()), false),
        _ => (None, false),
    }
}

fn ok_of(id: u64, room: Option<String>, done: Done) -> OkFrame {
    match (done.state, room) {
        (Some(state), Some(room)) => OkFrame::with_state(id, room, state, done.seq),
        (_, room) => OkFrame { id, room, seq: done.seq, message_id: done.message_id, ..OkFrame::default() },
    }
}

/// [`answer`], encoded: with a batch's already encoded `users` list ([`Done::users_json`]) in
/// its place.
pub fn answer_frame(id: u64, subject: Subject, mut reply: Reply, rules_refusal: Option<&str>) -> Frame {
    let users = match &mut reply {
        Reply::Fresh(Ok(done)) => done.users_json.take(),
        _ => None,
    };
    let frame = Frame::encode(&answer(id, subject, reply, rules_refusal));
    match users {
        // An `ok`'s only `"users":[]` is its state's (inside a JSON string the quotes are
        // escaped; the seqs' `users` is a number).
        Some(list) => Frame::from(frame.as_str().replacen("\"users\":[]", &format!("\"users\":{list}"), 1)),
        None => frame,
    }
}

/// The answer to request `id` about `subject`, given the engine's reply. `rules_refusal` is the
/// message of an `Op::Refused` this request was turned into, if it was.
pub fn answer(id: u64, subject: Subject, reply: Reply, rules_refusal: Option<&str>) -> ServerFrame {
    let Subject { room, leaving } = subject;
    let refusal = |r: Refusal| {
        let (c, m) = r.error(leaving);
        ServerFrame::error_with(Some(id), c, m)
    };
    match reply {
        Reply::Fresh(Ok(done)) => ServerFrame::Ok(ok_of(id, room, done)),
        Reply::Fresh(Err(Refusal::Login(c))) if rules_refusal.is_some() => {
            ServerFrame::error_with(Some(id), c, rules_refusal.unwrap_or_default())
        }
        Reply::Fresh(Err(r)) => refusal(r),
        Reply::Repeat(Recalled::Done { seq, message_id }) => {
            ServerFrame::Ok(ok_of(id, room, Done { seq, message_id, ..Done::default() }))
        }
        Reply::Repeat(Recalled::LoggedIn(Ok((state, seq)))) => {
            ServerFrame::Ok(OkFrame::with_state(id, room.unwrap_or_default(), state, seq))
        }
        Reply::Repeat(Recalled::LoggedIn(Err(c))) => {
            ServerFrame::error_with(Some(id), c, "no longer in the room this login entered")
        }
        Reply::Repeat(Recalled::Refusal(r)) => refusal(r),
        Reply::Repeat(Recalled::Refused(c, m)) => ServerFrame::error_with(Some(id), c, m),
        Reply::Unavailable => ServerFrame::error(Some(id), ErrorCode::ServiceUnavailable),
        Reply::Forgotten => ServerFrame::error_with(
            Some(id),
            ErrorCode::InvalidField,
            "request id is not increasing and no answer to it is remembered",
        ),
    }
}
