//! What a batch of logins holds back for one room until it is announced ([`super::batch`]):
//! the users for its one `user_add`, the new members to hand to the deliverer, and their
//! answers.

use parlor_protocol::User;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::room::RoomKey;
use crate::engine::{Outcome, Reply, Req, SessionKey};
use crate::frame::Frame;

/// The answer of a queued request, made under the lock.
pub(super) type Answer = Box<dyn FnOnce(Reply) -> Frame + Send>;

/// A login applied and not yet answered.
pub(super) struct Held {
    pub req: Req,
    pub answer: Answer,
    pub done: oneshot::Sender<Outcome>,
    pub reply: Reply,
}

/// One room's logins not yet announced.
pub(super) struct Pending {
    pub room: RoomKey,
    /// The users to announce (a login that replaces the same user's session adds none).
    pub users: Vec<User>,
    /// Each new member, with whether it gets the `users` channel.
    pub joiners: Vec<(SessionKey, bool)>,
    /// Their answers.
    pub held: Vec<Held>,
    /// When it is announced at the latest (None until the batch that opened it ends).
    pub deadline: Option<Instant>,
}

impl Pending {
    /// Nothing pending yet for `room`.
    pub fn new(room: RoomKey) -> Pending {
        Pending { room, users: Vec::new(), joiners: Vec::new(), held: Vec::new(), deadline: None }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("room", &self.room).field("joiners", &self.joiners.len()).finish()
    }
}
