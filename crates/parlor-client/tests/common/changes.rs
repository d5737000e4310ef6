//! The user and stream updates an SDK reported, as short text for assertions ("user ADD a,b",
//! "stream DELETE s1"). Shared by the in-memory tests (`common`) and the multi-node ones
//! (`nodes_common`).

use parlor_client::{Event, UpdateType};

/// `e` as text when it is a user or stream update.
pub fn describe(e: &Event) -> Option<String> {
    match e {
        Event::RoomUserUpdate { update_type, users, .. } => Some(format!(
            "user {} {}",
            kind(update_type),
            users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>().join(",")
        )),
        Event::RoomStreamUpdate { update_type, streams, .. } => Some(format!(
            "stream {} {}",
            kind(update_type),
            streams.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(",")
        )),
        _ => None,
    }
}

fn kind(u: &UpdateType) -> &'static str {
    match u {
        UpdateType::Add => "ADD",
        UpdateType::Delete => "DELETE",
    }
}
