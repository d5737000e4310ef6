//! The member list in pages (protocol §9.9), end to end: the Rust SDK's
//! `query_room_member_list` against the real server (in memory) while others come and go.

mod common;

use std::collections::BTreeSet;

use common::*;

/// A walk in pages of 7 through a room of 30, with 3 leaving and 3 joining between pages:
/// everyone who stayed is on exactly one page, nobody is on two, and the last page ends it.
#[tokio::test(start_paused = true)]
async fn a_walk_in_pages_lists_everyone_who_stayed_once() {
    let s = server();
    let mut clients = Vec::new();
    for i in 0..30 {
        let mut c = Client::new(&s, &format!("u{i:02}"));
        c.login("big").await;
        clients.push(c);
    }
    let walker = &clients[0].engine;
    let first = walker.query_room_member_list("big", "", 7).await.expect("first page");
    assert_eq!((first.room.as_str(), first.count, first.users.len()), ("big", 30, 7), "{first:?}");
    assert_eq!(first.next_flag, "u06");
    let (mut seen, mut next, mut left, mut joined) = (Vec::new(), String::new(), BTreeSet::new(), Vec::new());
    let mut pages = 0;
    loop {
        let page = walker.query_room_member_list("big", next.clone(), 7).await.expect("a page");
        seen.extend(page.users.iter().map(|u| u.id.clone()));
        pages += 1;
        assert!(pages <= 10, "the walk does not end: {seen:?}");
        if page.next_flag.is_empty() {
            break;
        }
        next = page.next_flag;
        // Between pages: the next three of u27, u24, … leave; three newcomers join.
        for k in 0..3 {
            let i = 29 - 3 * (pages - 1) - k;
            if i > 0 && clients[i].engine.logout_room("big").await.is_ok() {
                left.insert(format!("u{i:02}"));
            }
            let mut c = Client::new(&s, &format!("n{pages}{k}"));
            c.login("big").await;
            joined.push(c);
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "someone on two pages: {seen:?}");
    for i in 0..30 {
        let id = format!("u{i:02}");
        if !left.contains(&id) {
            assert!(unique.contains(&id), "{id} stayed but is on no page: {seen:?}");
        }
    }
    let end = walker.query_room_member_list("big", "", 500).await.expect("all at once");
    assert_eq!(end.count as usize, 30 - left.len() + joined.len(), "{end:?}");
    assert_eq!(end.users.len(), end.count as usize);
    assert!(end.next_flag.is_empty());
    // Not in the room: refused, nothing sent.
    let err = walker.query_room_member_list("elsewhere", "", 10).await.expect_err("not in it");
    assert_eq!(err.code(), 1009005, "{err:?}");
}
