//! A large room (protocol §9.10), end to end: the Rust SDK against the real server (in memory,
//! `full_presence_up_to` 3). A login storm of 210 makes more net changes than one batch carries:
//! the first member is told `RoomUserListChanged`, reads the list in pages, and from then on is
//! told of the departures of those it read; a late member's login lists only the first page;
//! every count is exact.

mod common;

use std::collections::BTreeSet;

use common::*;
use parlor_client::{Event, UpdateType, User};
use parlor_server::memory::MemoryServer;
use parlor_server::ServerConfig;
use tokio::task::JoinSet;

const ROOM: &str = "live";

fn large_server() -> MemoryServer {
    let mut config = ServerConfig::for_tests(APP, SECRET);
    config.full_presence_up_to = 3;
    MemoryServer::start(config)
}

/// The room's member list, walked in pages of 100 by `c` (the SDK adds what it reads to its
/// picture of a room whose list it knows only in part).
async fn walk(c: &Client) -> BTreeSet<String> {
    let (mut all, mut next) = (BTreeSet::new(), String::new());
    for _ in 0..10 {
        let page = c.engine.query_room_member_list(ROOM, next.clone(), 100).await.expect("a page");
        all.extend(page.users.into_iter().map(|u| u.id));
        if page.next_flag.is_empty() {
            return all;
        }
        next = page.next_flag;
    }
    panic!("the walk does not end: {all:?}");
}

async fn count_becomes(c: &mut Client, n: u32) {
    c.wait_for(
        &format!("count {n}"),
        secs(3),
        |e| matches!(e, Event::RoomOnlineUserCountUpdate { count, .. } if *count == n),
    )
    .await;
}

/// The users of `c`'s first ADD since `from` (a login's page).
fn first_add(c: &Client, from: usize) -> Vec<String> {
    let users: &Vec<User> = c.log[from..]
        .iter()
        .find_map(|(_, e)| match e {
            Event::RoomUserUpdate { update_type: UpdateType::Add, users, .. } => Some(users),
            _ => None,
        })
        .expect("an ADD");
    users.iter().map(|u| u.id.clone()).collect()
}

/// The users added and deleted by the user updates of `log`, each reported once.
fn tally(log: &[(tokio::time::Instant, Event)]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut added, mut deleted) = (BTreeSet::new(), BTreeSet::new());
    for (_, e) in log {
        if let Event::RoomUserUpdate { update_type, users, .. } = e {
            let to = if *update_type == UpdateType::Add { &mut added } else { &mut deleted };
            for u in users {
                assert!(to.insert(u.id.clone()), "{} reported twice", u.id);
            }
        }
    }
    (added, deleted)
}

#[tokio::test(start_paused = true)]
async fn a_login_storm_is_a_list_change_then_departures_are_exact() {
    let s = large_server();
    let mut first = Client::new(&s, "u000");
    first.login(ROOM).await;
    // 210 log in at once: more net arrivals than a batch carries (100), within an interval or two.
    let mut storm = JoinSet::new();
    for i in 1..=210 {
        let mut c = Client::new(&s, &format!("u{i:03}"));
        storm.spawn(async move {
            c.login(ROOM).await;
            c
        });
    }
    let mut clients: Vec<Client> = storm.join_all().await;
    clients.sort_by(|a, b| a.user.id.cmp(&b.user.id));
    count_becomes(&mut first, 211).await;
    first.barrier(ROOM).await;
    let changed = first.log.iter().filter(|(_, e)| matches!(e, Event::RoomUserListChanged { .. })).count();
    assert!(changed >= 1, "a batch of over 100 arrivals is a list change: {:#?}", first.log);
    // What an app does then: read the list again.
    let mut list = walk(&first).await;
    assert_eq!(list.len(), 211);
    list.remove("u000");
    first.barrier(ROOM).await;
    let from = first.mark();

    // A late member's login lists the first page of the others: 100, in user id order.
    let mut late = Client::new(&s, "u999");
    late.login(ROOM).await;
    late.collect();
    let page = first_add(&late, 0);
    assert_eq!(page, (0..100).map(|i| format!("u{i:03}")).collect::<Vec<_>>());
    count_becomes(&mut first, 212).await;

    // Five who came in the storm (so in `first`'s picture only by its pages) leave: each is
    // reported once, nobody else; the late one and its arrival's batch come as an ADD.
    for c in &clients[9..14] {
        c.engine.logout_room(ROOM).await.expect("logout");
    }
    let (added, deleted) = loop {
        first.collect();
        let (added, deleted) = tally(&first.log[from..]);
        if deleted.len() >= 5 {
            break (added, deleted);
        }
        first.wait_for("the departures", secs(3), |e| matches!(e, Event::RoomUserUpdate { .. })).await;
    };
    assert_eq!(deleted, (10..15).map(|i| format!("u{i:03}")).collect());
    assert_eq!(added, ["u999".to_string()].into());
    count_becomes(&mut first, 207).await;
    first.barrier(ROOM).await;
    assert!(!first.log[from..].iter().any(|(_, e)| matches!(e, Event::RoomUserListChanged { .. })));
    // The picture an app kept (the pages, then the reports) is the room's list.
    let mut now = walk(&first).await;
    now.remove("u000");
    let kept: BTreeSet<String> = list.union(&added).filter(|u| !deleted.contains(*u)).cloned().collect();
    assert_eq!(kept, now);
}
