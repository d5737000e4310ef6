//! Starting a Parlor server on a free loopback port for tests.
//!
//! TODO(lead): add the server-start helper here (a `parlor-server` instance bound to
//! `127.0.0.1:0`, returning its address and a handle that shuts it down on drop). Until then
//! this module is intentionally empty; [`crate::FaultProxy`] can be pointed at any
//! `SocketAddr`.
