//! The sequence check of §6 on what one client receives: on every channel, each event's `seq`
//! is the last one the client knows + 1 — known from a login `ok`, an `ok`'s own `seq`s, a
//! `snapshot`, the `ack` it sent in `resume`, or the event before. A duplicate or a gap is a
//! violation; a new session (`welcome`) starts every channel afresh.

use std::collections::BTreeMap;

use parlor_protocol::{decode_server_frame, Channel, ClientFrame, ResumeOutcome, Seqs, ServerFrame};

/// One client's channels as the server has told it.
#[derive(Debug, Default)]
pub struct Wire {
    /// The direct channel's last seq.
    direct: Option<u64>,
    /// Each room channel's last seq, by (room, "room" / "users").
    rooms: BTreeMap<(String, &'static str), u64>,
    /// Events whose seq was checked.
    pub checked: u64,
    /// Duplicates and gaps, described.
    pub violations: Vec<String>,
}

impl Wire {
    /// A connection opened: nothing is known of its frames yet (the `welcome` or `resumed`
    /// says what follows).
    pub fn opened(&mut self) {}

    /// The client sent `frame`: a `resume` states what the client has.
    pub fn sent(&mut self, frame: &ClientFrame) {
        if let ClientFrame::Resume(r) = frame {
            self.direct = Some(r.ack.direct);
            self.rooms.clear();
            for (room, a) in &r.ack.rooms {
                if !a.epoch.is_empty() {
                    self.rooms.insert((room.clone(), "room"), a.room);
                    self.rooms.insert((room.clone(), "users"), a.users);
                }
            }
        }
    }

    /// A frame arrived at `ms`.
    pub fn frame(&mut self, ms: u64, text: &str) {
        let Ok(frame) = decode_server_frame(text) else {
            self.violations.push(format!("{ms} ms: undecodable frame {text}"));
            return;
        };
        match frame {
            ServerFrame::Welcome(_) => {
                self.direct = Some(0);
                self.rooms.clear();
            }
            ServerFrame::Resumed(r) => {
                self.rooms.retain(|(room, _), _| matches!(r.rooms.get(room), Some(ResumeOutcome::Replay)));
            }
            ServerFrame::Ok(ok) => {
                let Some(room) = ok.room.clone() else { return };
                if ok.room_session.is_some() {
                    self.set(&room, &ok.seq);
                } else {
                    self.raise(&room, &ok.seq);
                }
            }
            ServerFrame::Snapshot(s) => self.set(&s.room, &s.seq),
            ServerFrame::Kicked(k) => self.rooms.retain(|(room, _), _| *room != k.room),
            ServerFrame::Event(e) => {
                let (Some(ch), Some(seq)) = (e.ch, e.seq) else { return };
                let last = match ch {
                    Channel::Direct => self.direct.as_mut(),
                    Channel::Room => self.rooms.get_mut(&(e.room.clone(), "room")),
                    Channel::Users => self.rooms.get_mut(&(e.room.clone(), "users")),
                };
                let Some(last) = last else {
                    self.violations.push(format!("{ms} ms: {ch:?} event of {} (seq {seq}) before its login", e.room));
                    return;
                };
                self.checked += 1;
                if seq != *last + 1 {
                    let what = if seq <= *last { "duplicate" } else { "gap" };
                    self.violations.push(format!("{ms} ms: {what} on {ch:?} of {}: seq {seq} after {last}", e.room));
                }
                *last = (*last).max(seq);
            }
            _ => {}
        }
    }

    /// A login `ok` or a snapshot: each channel's last seq.
    fn set(&mut self, room: &str, seq: &Seqs) {
        self.rooms.insert((room.to_string(), "room"), seq.room.unwrap_or(0));
        match seq.users {
            Some(u) => self.rooms.insert((room.to_string(), "users"), u),
            None => self.rooms.remove(&(room.to_string(), "users")),
        };
    }

    /// An `ok` of the client's own request: the events it produced count as received.
    fn raise(&mut self, room: &str, seq: &Seqs) {
        for (ch, s) in [("room", seq.room), ("users", seq.users)] {
            if let (Some(s), Some(last)) = (s, self.rooms.get_mut(&(room.to_string(), ch))) {
                *last = (*last).max(s);
            }
        }
    }
}
