//! The Parlor client room state machine, sans-IO.
//!
//! [`Core`] owns no socket, no task and no clock, in the style of `quinn-proto` and `str0m`: the
//! driver (the Rust SDK's tokio loop, or a test) feeds it app commands
//! ([`Core::handle_command`]), connection events ([`Core::handle_opened`],
//! [`Core::handle_closed`]), server frames ([`Core::handle_text`] / [`Core::handle_frame`]) and
//! time ([`Core::handle_timeout`], at [`Core::poll_timeout`]), always with `now` in milliseconds;
//! and it drains [`Output`]s with [`Core::poll_output`]: connect, disconnect, send a frame, tell
//! the app. Reconnect jitter comes from an injected [`Random`], so every test fixes it.
//! Two inputs come from the host rather than the wire: [`Core::handle_network_online`] (the
//! network is back: a waiting attempt starts now) and [`Core::shutdown`] (the app tears the
//! engine down: `bye` when the session is up, nothing while a `hello` or `resume` waits for its
//! answer, and everything is forgotten without a report).
//!
//! # Modules
//!
//! `Core` (in `core.rs`) only coordinates; each part of the machine has its file, and the Web
//! SDK's core (`sdk/web/src/`) has the same files with the same names:
//! `connection` (connecting, liveness, backoff, the session), `timer` (every deadline), `room`
//! (a room's phase and its transitions), `requests` (the queue and each request's wire state),
//! `retry` (requests answered 1000004), `command` (the app's calls), `answers` (`ok` /
//! `error`), `resume` (acks, `resumed`, snapshots, fresh logins, re-publishing), `channel`
//! (events, kicks, notices), [`view`] (what the client knows of a room, and diffs), [`event`]
//! (what the app is told), [`backoff`].
//!
//! # Decisions
//!
//! Protocol §6–§7 leave some choices open; this is how the core decides (the shared scenario
//! files under `tests/scenarios/` pin each one down for both SDKs):
//!
//! - **One session for all rooms.** The first `login_room` names the user and the `hello` token;
//!   later rooms share the session (a different user id fails with LOGIN_FAILED 1002077). When the
//!   last room is gone (logout, kick, failure) and no app call is outstanding, the core sends
//!   `bye` and disconnects: an idle session is not kept alive. So `kicked` followed by close 4009
//!   needs no special case: a closed connection with no rooms left is not reconnected.
//! - **Connection attempts.** A login with no connection connects at once; every later attempt —
//!   after a failed attempt or a lost connection — waits `random × min(10 s, 0.5 s × 2^n)`
//!   ([`backoff`]), `n` counting from 0 at each loss and reset by `welcome` / `resumed`. Any
//!   close code ([`parlor_protocol::close_code`]), 4008 and 4010 included, and an HTTP 503 on
//!   upgrade, is just a failed or lost
//!   connection.
//! - **Liveness.** Every frame from the server counts as life (a `pong` is just the frame that
//!   is certain to come). With nothing heard for two heartbeat intervals the connection is dead:
//!   [`Output::Disconnect`], then as lost. The same limit applies to a connect attempt that
//!   neither opens nor fails (a black-holed SYN), so a hanging attempt counts as a failed one.
//!   `ping` carries the `ack` of §6 every `heartbeat_ms` (from `welcome` / `resumed`).
//! - **Login timeout** (30 s) runs from `login_room` / `switch_room` and covers connecting: when
//!   it passes the room is LOGIN_FAILED 1002031. A login `ok` that arrives after the app gave up
//!   is answered with a quiet `logout` — also one whose request the core had already forgotten
//!   (given up while its connection was lost, then delivered late and run after the resume).
//! - **Reconnecting.** On a loss every logged-in room is RECONNECTING 1002051 and the reconnect
//!   window (5 min) starts; it is not restarted by later failures. `resume` carries the acks.
//!   `resumed` reports each room at once: `replay` and `snapshot` rooms RECONNECTED 0 (then the
//!   replayed events or the snapshot's diff follow, so the app sees "back" first and then what
//!   changed), `kicked:<code>` rooms KICK_OUT with that code. A room the client acked that
//!   `resumed` leaves out is no longer ours on the server (`docs/protocol.md` §9.3): unless our
//!   own logout explains it, the client logs in to it again on the same session and reports it
//!   RECONNECTED with the diff. A room whose login went out but was never answered is acked with
//!   an empty epoch, so a server that has us there answers with a snapshot, which the client
//!   takes as the login's answer. Requests go out again only after `resume_done`. A refused resume (`error` without `id`, 1002057 or any other code) is
//!   followed on the same connection by `hello` and a `login` per room; each room is RECONNECTED
//!   at its login's `ok`, then the diff against what the app knew. When the window passes, every
//!   room still away is RECONNECT_FAILED 1002053, its held requests fail with 1002053, the session
//!   is forgotten and no connection is attempted for those rooms again (terminal).
//! - **The resume token** (`docs/protocol.md` §9.3: a resume can be retried). The core keeps the
//!   token of the last `welcome` or `resumed`, and replaces it only then. Between its `resume`
//!   and the answer it sends nothing on that connection (pings start at `resumed`, requests go
//!   out at `resume_done`), so a resume whose answer was lost (the connection closed, or silent
//!   until the liveness deadline) is tried again with the same token and gets the same outcome.
//!   A connection lost after `resumed`, even before `resume_done`, resumes with the new token
//!   and acks what the replay had applied.
//! - **Requests** are kept until answered. A request made while its room is not in
//!   (LOGINING, RECONNECTING, resuming) is held and sent when the room is back; requests in flight
//!   at a cut are sent again after `resume_done` with the same `id` (the server answers repeats
//!   from memory), before the held ones. An `id` is given when a request is first sent, not when
//!   it is made, so ids increase on the wire even when a held request goes out after a later one
//!   (the server treats an id not above the last as a repeat). After a refused resume the new
//!   session sends every waiting request as new, with a new id. Requests for a room the client is not in fail at once
//!   with 1009005; logout of such a room is LOGOUT_FAILED 1002002 without asking the server.
//! - **Service temporarily unavailable** (`error` 1000004, `docs/protocol.md` §9.6): nothing
//!   was done, so a request so answered is sent again with the same `id` after
//!   `random × min(2 s, 100 ms × 2^n)` ([`backoff::retry_delay_ms`]), all such requests together
//!   and before any new one, until its deadline (a login's login deadline, a fresh login's
//!   reconnect window, else the login timeout from its first 1000004); then it fails as an
//!   `error` 1000004 of its kind fails. `hello` / `resume` answered 1000004 is one failed
//!   connection attempt.
//! - **Exactly once.** Every channel event whose `seq` is not above the last applied one is
//!   dropped. An `ok` counts its `seq`s as received. A gap is applied anyway (and logged).
//!   User and stream updates are computed against the client's view (an ADD of a user already
//!   known, or a DELETE of one not known, is not reported), so the app can build its view from
//!   updates alone. Events about the client's own user and streams, and its own messages, update
//!   the view and the acks but are never reported to the app (a replay carries them:
//!   `docs/protocol.md` §9.3).
//! - **Re-publishing.** The core remembers the streams the app publishes in each room. When a
//!   room comes back (after `resume_done` for a replay, after a snapshot, after a fresh login),
//!   every such stream the server's view no longer holds is published again. For a replay that
//!   view is what the replay said: an offline session's streams were deleted with a
//!   `stream_delete` (reason 2) that the replay carries (`docs/protocol.md` §9.3); when the replay
//!   shows the streams still exist, nothing is re-published.
//! - **After LOGINED** (extended data `{"room_session_id": ...}`) the core reports what the room
//!   held: one user ADD, one stream ADD and — a Parlor addition, so the app learns the initial
//!   room extra info the same way — one `roomExtraInfoUpdate`, each only when non-empty.
//! - **switch_room** reports LOGOUT for `from` at once (the server leaves it in the same step) and
//!   LOGINING for `to`; `to` is LOGINED or LOGIN_FAILED by the answer. Requests for `from` not
//!   sent yet fail with 1009005; those already sent are answered by the server (they are ahead
//!   of the switch on the wire, so they ran in `from`).
//! - **Diffs** (snapshot, fresh login) are reported in this order: users DELETE, users ADD,
//!   streams DELETE, streams ADD, stream extra changes, room extra changes, online count.
//! - **Large rooms** (`docs/protocol.md` §9.10). A `user_update` is applied as a set: DELETE of
//!   the listed users it deletes, ADD of the unlisted users it adds (the client itself skipped),
//!   `roomUserListChanged` when `list_changed`, then the count when it changed. A login `ok`
//!   whose `users` is a page (`users_next`) is reported as any login: the page is the view. A
//!   snapshot or fresh login answer whose `users` is a page (`users_next` not "") is not diffed
//!   for users: `roomUserListChanged(room, online)` takes the users' place in the diff above and
//!   the page becomes the view; with `users_next` "" the page is the whole list and is diffed.
//!   While the view's users are only part of the room (`RoomView::users_partial`: a page, or
//!   emptied by a `list_changed` batch, whose departures it cannot know), the `members` pages
//!   the app reads are added to the view: the app is then told the changes of exactly those it
//!   was told of (by the login, pages and batches), and of nobody else.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod answers;
pub mod backoff;
mod channel;
mod command;
mod connection;
mod core;
pub mod event;
mod requests;
mod resume;
mod retry;
mod room;
mod timer;
pub mod view;

pub use crate::command::Command;
pub use crate::core::{Config, Core, Output, Random};
pub use event::{AppEvent, ExtraInfo, MemberPage, RoomStateReason, UpdateType};
pub use view::RoomView;
