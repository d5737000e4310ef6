//! `parlor rooms|users|send …`: the admin API (`docs/protocol.md` §9.4) from the command line,
//! like `lk room …`. Each command is one request; the answer is printed as a table, or as the
//! API's JSON with `--json`. Any refusal or an unreachable server is an error (exit code 1) that
//! says what happened.

mod client;
mod table;

use anyhow::Result;
use serde_json::{json, Value};

use self::client::Client;

/// How to reach the admin API: `--url`, `--app`, `--json`, `--ca`.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// The server's base URL.
    #[arg(long, env = "PARLOR_URL", default_value = "http://127.0.0.1:7700", global = true)]
    pub url: String,
    /// The app as ID:SECRET (the first of a comma-separated list in the environment).
    #[arg(long, env = "PARLOR_APP", global = true, hide_env_values = true)]
    pub app: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// A PEM file of extra CA certificates to trust (a server with a private CA).
    #[arg(long, env = "PARLOR_CA", global = true)]
    pub ca: Option<std::path::PathBuf>,
}

/// `parlor rooms …`
#[derive(Debug, clap::Args)]
pub struct RoomsArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: RoomsCmd,
}

#[derive(Debug, clap::Subcommand)]
enum RoomsCmd {
    /// List the app's rooms (one page; `--cursor` for the next).
    List {
        /// Most rooms in the page (1 to 1000; the server's default is 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// The `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one room: its users, streams and extra info.
    Show {
        /// The room id (or `--room ROOM`).
        room: Option<String>,
        /// The room id.
        #[arg(long = "room", conflicts_with = "room")]
        room_flag: Option<String>,
    },
    /// Close a room: every member is kicked with 1002055 and the reason.
    Close {
        /// The room id (or `--room ROOM`).
        room: Option<String>,
        /// The room id.
        #[arg(long = "room", conflicts_with = "room")]
        room_flag: Option<String>,
        /// Sent to every member.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// `parlor users …`
#[derive(Debug, clap::Args)]
pub struct UsersArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: UsersCmd,
}

#[derive(Debug, clap::Subcommand)]
enum UsersCmd {
    /// Kick a user out of a room with 1002055 and the reason: `kick --room ROOM USER` (or
    /// `kick ROOM USER`, or `--user USER`).
    Kick {
        /// The room.
        #[arg(long)]
        room: Option<String>,
        /// The user id.
        #[arg(long = "user")]
        user: Option<String>,
        /// `[ROOM] USER`, for what the flags do not give.
        #[arg(value_name = "[ROOM] USER", num_args = 0..=2)]
        args: Vec<String>,
        /// Sent to the user.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Close the connection of a user's session in a room with 4010: it resumes at once
    /// (`reconnect --room ROOM USER`, or `reconnect ROOM USER`).
    Reconnect {
        /// The room.
        #[arg(long)]
        room: Option<String>,
        /// The user id.
        #[arg(long = "user")]
        user: Option<String>,
        /// `[ROOM] USER`, for what the flags do not give.
        #[arg(value_name = "[ROOM] USER", num_args = 0..=2)]
        args: Vec<String>,
    },
}

/// `parlor send …`
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: SendCmd,
}

#[derive(Debug, clap::Subcommand)]
enum SendCmd {
    /// A broadcast (or `--barrage`) from the server to everyone in the room:
    /// `broadcast --room ROOM TEXT` (or `broadcast ROOM TEXT`, or `--message TEXT`).
    Broadcast {
        /// The room.
        #[arg(long)]
        room: Option<String>,
        /// The message.
        #[arg(long)]
        message: Option<String>,
        /// `[ROOM] TEXT`, for what the flags do not give.
        #[arg(value_name = "[ROOM] TEXT", num_args = 0..=2)]
        args: Vec<String>,
        /// Send a barrage rather than a broadcast.
        #[arg(long)]
        barrage: bool,
    },
    /// A custom command from the server to members of the room (everyone without `--to`):
    /// `command --room ROOM TEXT [--to USER]…` (or `command ROOM TEXT`, or `--command TEXT`).
    Command {
        /// The room.
        #[arg(long)]
        room: Option<String>,
        /// The command text.
        #[arg(long = "command")]
        command: Option<String>,
        /// `[ROOM] TEXT`, for what the flags do not give.
        #[arg(value_name = "[ROOM] TEXT", num_args = 0..=2)]
        args: Vec<String>,
        /// A recipient's user id (repeatable, or comma-separated).
        #[arg(long = "to", value_delimiter = ',')]
        to: Vec<String>,
    },
}

/// The room, as `ROOM` or `--room ROOM`.
fn one_room(positional: Option<String>, flag: Option<String>) -> Result<String> {
    positional.or(flag).ok_or_else(|| anyhow::anyhow!("give the room: ROOM or --room ROOM"))
}

/// The room and one more value (a user id, a text), each from its flag or, in that order, from
/// the positional arguments: so `--room R U`, `R U`, `--room R --user U` all work.
fn room_and(room: Option<String>, other: Option<String>, args: Vec<String>, what: &str) -> Result<(String, String)> {
    let mut args = args.into_iter();
    let room = room.or_else(|| args.next());
    let other = other.or_else(|| args.next());
    match (room, other, args.next()) {
        (Some(room), Some(other), None) => Ok((room, other)),
        (_, _, Some(extra)) => anyhow::bail!("unexpected argument {extra:?}: give the room and the {what} once each"),
        _ => anyhow::bail!("give the room and the {what}: --room ROOM {} (or ROOM {0})", what.to_uppercase()),
    }
}

/// Percent-encode one path segment (room and user ids may hold `/`, `#`, `%`, …).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

fn print(conn: &Conn, answer: &Value, table: impl FnOnce(&Value) -> String) {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(answer).unwrap_or_default());
    } else {
        print!("{}", table(answer));
    }
}

/// An error of an admin command: one line on stderr (no backtrace: it is an answer, not a bug)
/// and exit code 1.
fn done(result: Result<()>) -> Result<()> {
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// `parlor rooms …`
pub async fn rooms(a: RoomsArgs) -> Result<()> {
    done(run_rooms(a).await)
}

/// `parlor users …`
pub async fn users(a: UsersArgs) -> Result<()> {
    done(run_users(a).await)
}

/// `parlor send …`
pub async fn send(a: SendArgs) -> Result<()> {
    done(run_send(a).await)
}

async fn run_rooms(a: RoomsArgs) -> Result<()> {
    let c = Client::new(&a.conn)?;
    match a.cmd {
        RoomsCmd::List { limit, cursor } => {
            let mut query = Vec::new();
            if let Some(l) = limit {
                query.push(format!("limit={l}"));
            }
            if let Some(cur) = cursor {
                query.push(format!("cursor={}", seg(&cur)));
            }
            let q = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
            let answer = c.get(&format!("/rooms{q}")).await?;
            print(&a.conn, &answer, table::rooms);
        }
        RoomsCmd::Show { room, room_flag } => {
            let room = one_room(room, room_flag)?;
            let answer = c.get(&format!("/rooms/{}", seg(&room))).await?;
            print(&a.conn, &answer, table::room);
        }
        RoomsCmd::Close { room, room_flag, reason } => {
            let room = one_room(room, room_flag)?;
            let answer = c.post(&format!("/rooms/{}/close", seg(&room)), json!({ "reason": reason })).await?;
            print(&a.conn, &answer, |v| format!("closed {}\n", v["closed"].as_str().unwrap_or(&room)));
        }
    }
    Ok(())
}

async fn run_users(a: UsersArgs) -> Result<()> {
    let c = Client::new(&a.conn)?;
    match a.cmd {
        UsersCmd::Kick { room, user, args, reason } => {
            let (room, user) = room_and(room, user, args, "user")?;
            let body = json!({ "user": user, "reason": reason });
            let answer = c.post(&format!("/rooms/{}/kick", seg(&room)), body).await?;
            print(&a.conn, &answer, |v| format!("kicked {} from {room}\n", v["kicked"].as_str().unwrap_or(&user)));
        }
        UsersCmd::Reconnect { room, user, args } => {
            let (room, user) = room_and(room, user, args, "user")?;
            let answer = c.post(&format!("/rooms/{}/users/{}/reconnect", seg(&room), seg(&user)), json!({})).await?;
            print(&a.conn, &answer, |v| format!("reconnecting {user} (session {})\n", s(&v["session"])));
        }
    }
    Ok(())
}

async fn run_send(a: SendArgs) -> Result<()> {
    let c = Client::new(&a.conn)?;
    match a.cmd {
        SendCmd::Broadcast { room, message, args, barrage } => {
            let (room, text) = room_and(room, message, args, "text")?;
            let body = json!({ "message": text, "barrage": barrage });
            let answer = c.post(&format!("/rooms/{}/broadcast", seg(&room)), body).await?;
            let kind = if barrage { "barrage" } else { "broadcast" };
            print(&a.conn, &answer, |v| {
                format!("sent {kind} {} to {room} (seq {})\n", v["message_id"].as_str().unwrap_or("?"), v["seq"])
            });
        }
        SendCmd::Command { room, command, args, to } => {
            let (room, text) = room_and(room, command, args, "text")?;
            let body = json!({ "command": text, "to": to });
            let answer = c.post(&format!("/rooms/{}/command", seg(&room)), body).await?;
            print(&a.conn, &answer, |v| format!("sent command to {} member(s) of {room}\n", v["recipients"]));
        }
    }
    Ok(())
}
