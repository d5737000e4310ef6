//! What a script answers the calling node ([`Out`]): its status, its payload, and the items it
//! asks the node to apply in order (events, departures, messages to sessions, rooms entered;
//! the item shapes are listed at the top of `lua/lib.lua`).

use serde_json::Value;

use super::fanout::{Ev, Msg};
use super::node;
use crate::engine::SessionKey;
use crate::frame::Frame;

/// One thing a script asks the calling node to do, in order.
#[derive(Debug)]
pub(super) enum Item {
    /// An event it produced, or a departure (what the room's channel carries).
    Ev(String, Msg),
    /// A message for a session of this node.
    Ctl(node::Ctl),
    /// A session of this node entered a room (or, after a resume, is in it) at these seqs.
    Join(Joined),
    /// A frame for the resumed session's new connection.
    Send(Frame),
}

fn parse_item(raw: &str) -> Option<Item> {
    let v: Vec<Value> = serde_json::from_str(raw).ok()?;
    let s = |i: usize| v.get(i).and_then(Value::as_str).map(str::to_string);
    let n = |i: usize| v.get(i).and_then(Value::as_u64);
    match v.first()?.as_str()? {
        "ev" => {
            let ch = if s(2)? == "u" { 1 } else { 0 };
            let ev = Ev { ch, seq: n(3)?, author: n(4)?, epoch: s(5)?, frame: Frame::from(s(6)?) };
            Some(Item::Ev(s(1)?, Msg::Event(ev)))
        }
        "left" => {
            let ord = n(6).unwrap_or(u64::MAX);
            Some(Item::Ev(s(1)?, Msg::Left { key: n(2)?, at: [n(3)?, n(4)?], epoch: s(5)?, ord }))
        }
        "ctl" => node::Ctl::parse(v.get(1)?).map(Item::Ctl),
        "join" | "at" => Some(Item::Join(Joined {
            room: s(1)?,
            key: n(2)?,
            notify: v.get(3)?.as_bool()?,
            rseq: n(4)?,
            useq: n(5)?,
            epoch: s(6)?,
            ord: n(7).unwrap_or(0),
        })),
        "send" => Some(Item::Send(Frame::from(s(1)?))),
        _ => None,
    }
}

/// A session of this node is in `room` since these seqs of the room's life `epoch`.
#[derive(Debug)]
pub(super) struct Joined {
    pub(super) room: String,
    pub(super) key: SessionKey,
    pub(super) notify: bool,
    pub(super) rseq: u64,
    pub(super) useq: u64,
    pub(super) epoch: String,
    /// The join's ordinal in the room's life ([`crate::engine::Joining`]).
    pub(super) ord: u64,
}

/// A script's answer: its status, its payload, and the items (raw).
pub(super) struct Out {
    pub(super) status: String,
    pub(super) payload: String,
    pub(super) raw: Vec<String>,
}

impl Out {
    /// What the script asked the calling node to apply. Called once per script result: the
    /// events in it are counted here, once in the deployment (only the calling node gets them).
    pub(super) fn items(&self) -> Vec<Item> {
        let items: Vec<Item> = self.raw.iter().filter_map(|raw| parse_item(raw)).collect();
        let events = items.iter().filter(|i| matches!(i, Item::Ev(..))).count();
        metrics::counter!("parlor_events_total").increment(events as u64);
        items
    }
}
