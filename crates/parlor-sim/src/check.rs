//! The invariants checked after a run settles (see the crate docs for what each promises,
//! and what a restart of the in-memory engine legitimately loses). They hold unchanged on the
//! Redis engine, under Redis faults and node kills, but for what §9.6 says of a Redis that
//! fails: a call reported failed with 1000004 may still have run once (as one reported 1002053
//! already may), and a failed admin kick may have run (the harness counts it as made).

use std::collections::{BTreeMap, BTreeSet};

use parlor_client_core::{AppEvent, Command, RoomStateReason};
use parlor_protocol::ErrorCode;

use crate::client::{RoomNow, SimClient};
use crate::harness::{Issued, Run, ServerRoom, WATCH_MS};
use crate::picture::{self, Picture};
use crate::schedule::{Action, Schedule};

/// How long before a removal its cause may lie (the watch interval and a tick).
const SLACK_MS: u64 = WATCH_MS + 1_500;
/// The server's `session_timeout_ms` in the simulation (`ServerConfig::for_tests`).
const SESSION_TIMEOUT_MS: u64 = 90_000;
/// A session offline by timeout must have been cut off at least this long: the timeout (90 s)
/// less two heartbeats (the last ping may be 10 s before the fault, and 10 s of slack).
const OFFLINE_AFTER_MS: u64 = 70_000;

/// Every invariant over a finished run: failures, described, and how many events were checked.
pub fn all(run: &Run) -> (u64, Vec<String>) {
    let mut failures = Vec::new();
    let mut checked = 0;
    let calls = calls_by_client(&run.issued, run.clients.len());
    let pictures: Vec<Picture> = run
        .clients
        .iter()
        .enumerate()
        .map(|(c, client)| picture::build(&run.users[c], &client.record.lock().events, &calls[c]))
        .collect();
    for (c, client) in run.clients.iter().enumerate() {
        let record = client.record.lock();
        checked += record.wire.checked + record.events.len() as u64;
        failures.extend(record.wire.violations.iter().map(|v| format!("c{c} wire: {v}")));
        failures.extend(record.violations.iter().map(|v| format!("c{c} driver: {v}")));
        failures.extend(pictures[c].violations.iter().map(|v| format!("c{c} events: {v}")));
    }
    let orphans = orphaned_users(&run.schedule, &run.users, &run.clients, run.end_ms);
    failures.extend(views(&run.users, &run.server, &run.views, &pictures, &orphans));
    failures.extend(answered_once(run));
    failures.extend(executed_once(run, &pictures));
    failures.extend(presence(run));
    (checked, failures)
}

/// Settled, every client's rooms equal the server's: the app's picture and the core's view of
/// each room it is in (users, streams, extra info), and who is in which room.
pub fn views(
    users: &[String],
    server: &BTreeMap<String, ServerRoom>,
    views: &[Vec<RoomNow>],
    pictures: &[Picture],
    orphans: &BTreeSet<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut claimed: BTreeSet<(String, String)> = BTreeSet::new();
    for (c, rooms) in views.iter().enumerate() {
        let me = &users[c];
        let pic = &pictures[c];
        for r in rooms {
            match r.state {
                RoomStateReason::Logined | RoomStateReason::Reconnected => {}
                RoomStateReason::Logining | RoomStateReason::Reconnecting => {
                    out.push(format!("c{c} {}: still {:?} after settling", r.room, r.state));
                    continue;
                }
                _ => continue,
            }
            claimed.insert((me.clone(), r.room.clone()));
            let Some(srv) = server.get(&r.room).filter(|s| s.users.contains(me)) else {
                out.push(format!("c{c} {}: in the room, but the server does not have {me} there", r.room));
                continue;
            };
            let others: BTreeSet<String> = srv.users.iter().filter(|u| *u != me).cloned().collect();
            let others_streams: BTreeMap<String, String> =
                srv.streams.iter().filter(|(_, (u, _))| u != me).map(|(s, (_, x))| (s.clone(), x.clone())).collect();
            let app = pic.rooms.get(&r.room).cloned().unwrap_or_default();
            if app.users != others {
                out.push(format!("c{c} {}: app users {:?}, server {:?}", r.room, app.users, others));
            }
            if app.streams != others_streams {
                out.push(format!("c{c} {}: app streams {:?}, server {:?}", r.room, app.streams, others_streams));
            }
            // Room extra info has no deletion on the wire: a key of an earlier room life (before
            // a restart, or before the room emptied) stays in the app's picture. Every key the
            // server has must be as the server has it.
            let app_extra: BTreeMap<String, String> = app
                .extra
                .iter()
                .filter(|(k, _)| srv.extra.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if app_extra != srv.extra {
                out.push(format!("c{c} {}: app extra {:?}, server {:?}", r.room, app.extra, srv.extra));
            }
            if let Some(v) = &r.view {
                let core_users: BTreeSet<String> = v.users.keys().cloned().collect();
                let core_streams: BTreeMap<String, (String, String)> =
                    v.streams.values().map(|s| (s.id.clone(), (s.user.id.clone(), s.extra.clone()))).collect();
                if core_users != others || core_streams != srv.streams {
                    out.push(format!(
                        "c{c} {}: core view {core_users:?} {core_streams:?}, server {others:?} {:?}",
                        r.room, srv.streams
                    ));
                }
            }
        }
    }
    // A client that gave up every room while cut off could not say `bye`, and what it sent
    // before (a switch, a login) may reach the server only when the stalled path heals: the
    // server keeps that session (and its rooms) until the session timeout, longer than the
    // settling. That is one client's session: another client of the same user may hold rooms
    // meanwhile, so a user is let off when any client of theirs holds no room, or left such a
    // session behind for a new one not a session timeout ago (`orphaned_users`).
    let holds_rooms =
        |c: usize| views[c].iter().any(|r| matches!(r.state, RoomStateReason::Logined | RoomStateReason::Reconnected));
    let idle: BTreeSet<&String> = (0..views.len()).filter(|c| !holds_rooms(*c)).map(|c| &users[c]).collect();
    for (room, srv) in server {
        for u in &srv.users {
            if !idle.contains(u) && !orphans.contains(u) && !claimed.contains(&(u.clone(), room.clone())) {
                out.push(format!("server has {u} in {room}, no client of {u} is in it"));
            }
        }
    }
    out
}

/// The users one of whose clients left a session behind (see
/// [`Record::orphaned`](crate::client::Record::orphaned)) that the server may still keep at
/// `now_ms`: it last heard of that session no later than when the client started the next one
/// or, if later, when the client's path last healed (a stalled frame of it arriving), and it
/// keeps a silent session for the session timeout.
pub fn orphaned_users(schedule: &Schedule, users: &[String], clients: &[SimClient], now_ms: u64) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (c, client) in clients.iter().enumerate() {
        let Some(&left) = client.record.lock().orphaned.last() else { continue };
        let healed = schedule
            .steps
            .iter()
            .filter(|(at, a)| *a == Action::Heal { c } && *at <= now_ms)
            .map(|(at, _)| *at)
            .max()
            .unwrap_or(0);
        if now_ms < left.max(healed) + SESSION_TIMEOUT_MS + SLACK_MS {
            out.insert(users[c].clone());
        }
    }
    out
}

/// Each client's calls by handle.
pub fn calls_by_client(issued: &BTreeMap<u64, Issued>, clients: usize) -> Vec<BTreeMap<u64, Command>> {
    let mut calls = vec![BTreeMap::new(); clients];
    for (handle, i) in issued {
        calls[i.c].insert(*handle, i.cmd.clone());
    }
    calls
}

/// Every call got exactly one result, and by the end.
fn answered_once(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    for (handle, i) in &run.issued {
        match i.results.len() {
            1 => {}
            0 => out.push(format!("c{} call {handle} at {} ms never answered: {:?}", i.c, i.at_ms, i.cmd)),
            n => out.push(format!("c{} call {handle} answered {n} times: {:?} {:?}", i.c, i.cmd, i.results)),
        }
    }
    out
}

/// Whether the server may have forgotten this call while it was under way (a restart between
/// it being made and answered): then it may legitimately run again on the new server.
fn spans_restart(run: &Run, at_ms: u64, answered_ms: Option<u64>) -> bool {
    run.restarts.iter().any(|r| *r >= at_ms && answered_ms.is_none_or(|a| *r <= a))
}

/// No message or command was executed twice (others got it under one message id, each once)
/// or executed when its call failed.
fn executed_once(run: &Run, pictures: &[Picture]) -> Vec<String> {
    let mut out = Vec::new();
    for (handle, i) in &run.issued {
        let (text, is_command) = match &i.cmd {
            Command::Broadcast { message, .. } | Command::Barrage { message, .. } => (message, false),
            Command::CustomCommand { command, .. } => (command, true),
            _ => continue,
        };
        let answered = i.results.first();
        if spans_restart(run, i.at_ms, answered.map(|r| r.0)) {
            continue;
        }
        let mut ids = BTreeSet::new();
        let mut received = 0;
        for (c, p) in pictures.iter().enumerate() {
            let n = if is_command {
                p.commands.get(text).copied().unwrap_or(0)
            } else {
                let got = p.messages.get(text).cloned().unwrap_or_default();
                ids.extend(got.iter().cloned());
                got.len()
            };
            if n > 1 {
                out.push(format!("c{c} got {text} (call {handle} of c{}) {n} times", i.c));
            }
            received += n;
        }
        if ids.len() > 1 {
            out.push(format!("{text} (call {handle} of c{}) executed under ids {ids:?}", i.c));
        }
        match answered {
            // 1002053: the core gave the session up with this request unanswered (no room left
            // to reconnect for, or the reconnect window over). If it went out before the path
            // failed, a stalled connection may still deliver it when the path heals (as TCP
            // delivers what was written before a close): its fate is unknown, not failed, so it
            // may have run (once, under one id, as checked above; seed 3010818).
            Some((_, Some(ErrorCode::ReconnectFailed), _)) => {}
            // 1000004 at the retry deadline (Redis engine): §9.6 says the same of it — a script
            // whose call was given up may still have run once (a stalled path delivers it).
            Some((_, Some(ErrorCode::ServiceUnavailable), _)) => {}
            Some((_, Some(code), _)) if received > 0 => {
                out.push(format!("{text} (call {handle} of c{}) failed with {code:?} yet was delivered", i.c))
            }
            Some((_, None, Some(id))) if !is_command && !ids.is_empty() && !ids.contains(id) => {
                out.push(format!("{text} (call {handle}) answered id {id}, delivered as {ids:?}"))
            }
            _ => {}
        }
    }
    out
}

/// Nobody whose client still holds a room was removed from it without a reason: their own
/// logout or switch under way, an admin kick, their token expiring, a login of the same user
/// elsewhere, a restart, or their path down for most of the session timeout.
/// The delay per chunk of client `c`'s path at `at_ms` (0 when it is not slowed).
fn path_delay(run: &Run, c: usize, at_ms: u64) -> u64 {
    let mut delay = 0;
    for (_, a) in run.schedule.steps.iter().take_while(|(t, _)| *t <= at_ms) {
        match a {
            Action::Delay { c: x, ms } if *x == c => delay = *ms,
            Action::Heal { c: x } if *x == c => delay = 0,
            _ => {}
        }
    }
    delay
}

fn presence(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    // When each client's path healed (every path heals after the last step).
    let heals: Vec<(usize, u64)> = run
        .schedule
        .steps
        .iter()
        .filter_map(|(t, a)| match a {
            Action::Heal { c } => Some((*c, *t)),
            _ => None,
        })
        .chain((0..run.clients.len()).map(|c| (c, run.schedule.end_ms)))
        .collect();
    for (at, user, room, token) in &run.removals {
        let window = at.saturating_sub(SLACK_MS)..=*at;
        let restart = run.restarts.iter().any(|r| window.contains(r));
        let kick = run.kicks.iter().any(|(t, u, r)| window.contains(t) && u == user && r == room);
        let own = run.issued.values().any(|i| {
            // On a slow path what a call sets off reaches the server chunks later than its answer
            // came: a logout of a room still logining is answered at once, and its quiet `logout`
            // goes when the login's `ok` is back (a round trip, then one way: seed 6003249).
            let slow = 4 * path_delay(run, i.c, i.at_ms);
            run.users[i.c] == *user
                && i.at_ms <= *at
                // A switch whose login timed out on the client still goes out when the path is
                // back: its logout part then runs after its (early) answer.
                && (i.results.first().is_none_or(|r| r.0 + SLACK_MS + slow >= *at || r.1 == Some(ErrorCode::LoginTimeout))
                    // A login or switch held by a stalled path reaches the server when the path
                    // heals, whatever became of the call meanwhile (the app gave it up, say): a
                    // login of the same user then takes the room over (kicks the other session, §4),
                    // and a switch leaves its room.
                    || heals.iter().any(|(c, h)| *c == i.c && i.at_ms <= *h && window.contains(h)))
                && match &i.cmd {
                    Command::LogoutRoom { room: r } => r == room,
                    Command::SwitchRoom { from, .. } => from == room,
                    Command::LoginRoom { .. } => true,
                    _ => false,
                }
        });
        let cut_off = run
            .schedule
            .outages
            .iter()
            .any(|o| run.users[o.c] == *user && o.from_ms + OFFLINE_AFTER_MS <= *at && o.to_ms + SLACK_MS >= *at);
        // "Gone" is false only for a user whose client still holds the room (in it, or getting
        // it back); one that left or gave it up while cut off is not back.
        let held = run.clients.iter().enumerate().filter(|(c, _)| run.users[*c] == *user).any(|(_, client)| {
            let record = client.record.lock();
            let last = record.events.iter().rev().filter(|(ms, _)| *ms <= *at).find_map(|(_, e)| match e {
                AppEvent::RoomStateChanged { room: r, reason, .. } if r == room => Some(*reason),
                _ => None,
            });
            matches!(
                last,
                Some(RoomStateReason::Logined | RoomStateReason::Reconnected | RoomStateReason::Reconnecting)
            )
        });
        if held && !(restart || kick || *token || own || cut_off) {
            out.push(format!("{at} ms: {user} removed from {room} with no reason (falsely gone)"));
        }
    }
    out
}
