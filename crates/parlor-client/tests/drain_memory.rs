//! A drained in-memory server, from the SDK's side, on the paused clock: the drain closes the
//! connections with 4010 over its drain time, nothing accepts them meanwhile, then a new
//! process (`MemoryServer::restart`) knows none of the sessions: the clients log in again and
//! report RECONNECTED (never RECONNECT_FAILED), and the room is rebuilt, A's stream published
//! again. What docs/operations.md, "Graceful drain", says the memory engine loses.

mod common;

use std::time::Duration;

use common::*;
use parlor_client::RoomStateReason as S;
use parlor_server::memory::MemoryServer;
use parlor_server::ServerConfig;

#[tokio::test(start_paused = true)]
async fn clients_of_a_drained_memory_server_log_in_again_on_the_next_one() {
    let config = ServerConfig { drain_time: Duration::from_secs(5), ..ServerConfig::for_tests(APP, SECRET) };
    let s = MemoryServer::start(config);
    let mut a = Client::new(&s, "a");
    let mut b = Client::new(&s, "b");
    a.login("r").await;
    a.engine.publish_stream("r", "cam-a", "").await.unwrap();
    b.login("r").await;
    let (a_mark, b_mark) = (a.mark(), b.mark());
    // The draining process accepts no connection (its door is shut; here: the links refuse).
    a.link.refuse();
    b.link.refuse();
    let report = parlor_server::drain::drain(&s.node()).await;
    assert_eq!((report.closed, report.left), (2, 0), "{report:?}");
    a.wait_state(S::Reconnecting, secs(5)).await;
    b.wait_state(S::Reconnecting, secs(5)).await;
    // The next process.
    s.restart();
    a.link.heal();
    b.link.heal();
    a.wait_state(S::Reconnected, secs(30)).await;
    b.wait_state(S::Reconnected, secs(30)).await;
    let rebuilt = room_becomes(&s, "r", 2, 1).await;
    assert!(rebuilt, "the room with both users and A's stream again on the new server");
    a.barrier("r").await;
    b.barrier("r").await;
    for (c, mark) in [(&a, a_mark), (&b, b_mark)] {
        let states: Vec<S> = c.states_since(mark).iter().map(|(s, _)| *s).collect();
        assert_eq!(states, vec![S::Reconnecting, S::Reconnected], "{}: {:?}", c.user.id, c.states_since(mark));
    }
}
