//! Join a room from the command line and print every event.
//!
//! ```text
//! cargo run -p parlor-client --example room -- \
//!     --server ws://127.0.0.1:7700/v1/ws --app 1 --user u1 --room r1 --secret <app secret>
//! ```
//! `--token <jwt>` uses a token minted elsewhere instead of `--secret`. Every line typed is
//! sent to the room as a broadcast message; `/quit` or Ctrl-C logs out.

use std::time::{SystemTime, UNIX_EPOCH};

use parlor_client::{Engine, RoomConfig, User};
use parlor_protocol::token::{mint, Claims};

struct Args {
    server: String,
    app: u32,
    user: String,
    name: String,
    room: String,
    token: Option<String>,
    secret: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: room [--server ws://127.0.0.1:7700/v1/ws] [--app 1] --user <id> [--name <name>] \
         --room <id> (--token <jwt> | --secret <app secret>)"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut a = Args {
        server: "ws://127.0.0.1:7700/v1/ws".into(),
        app: 1,
        user: String::new(),
        name: String::new(),
        room: String::new(),
        token: None,
        secret: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else { usage() };
        match flag.as_str() {
            "--server" => a.server = value,
            "--app" => a.app = value.parse().unwrap_or_else(|_| usage()),
            "--user" => a.user = value,
            "--name" => a.name = value,
            "--room" => a.room = value,
            "--token" => a.token = Some(value),
            "--secret" => a.secret = Some(value),
            _ => usage(),
        }
    }
    if a.user.is_empty() || a.room.is_empty() || (a.token.is_none() && a.secret.is_none()) {
        usage()
    }
    a
}

#[tokio::main]
async fn main() {
    let args = parse();
    let token = match (&args.token, &args.secret) {
        (Some(t), _) => t.clone(),
        (None, Some(secret)) => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let claims = Claims::new(args.app, args.user.clone(), now, 3600, format!("{now}"));
            mint(secret.as_bytes(), &claims)
        }
        (None, None) => usage(),
    };
    let engine = Engine::new(args.app, args.server.clone());
    let Some(mut events) = engine.events() else {
        return;
    };
    let user = User { id: args.user.clone(), name: args.name.clone() };
    let login = engine.login_room(args.room.clone(), user, token, RoomConfig::default());
    tokio::pin!(login);
    let mut logged_in = false;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
    let mut input_open = true;
    loop {
        tokio::select! {
            r = &mut login, if !logged_in => {
                logged_in = true;
                match r {
                    Ok(()) => println!("logged in to {}", args.room),
                    Err(e) => {
                        eprintln!("login failed: {e}");
                        // Print what is left (the LOGIN_FAILED event), then stop.
                        while let Ok(ev) = events.try_recv() {
                            println!("{ev:?}");
                        }
                        std::process::exit(1);
                    }
                }
            }
            ev = events.recv() => match ev {
                Some(ev) => println!("{ev:?}"),
                None => break,
            },
            line = lines.next_line(), if input_open && logged_in => match line {
                Ok(Some(line)) if line.trim() == "/quit" => {
                    if let Err(e) = engine.logout_room(args.room.clone()).await {
                        eprintln!("logout: {e}");
                    }
                    break;
                }
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => match engine.send_broadcast_message(args.room.clone(), line.trim()).await {
                    Ok(id) => println!("sent broadcast {id}"),
                    Err(e) => eprintln!("broadcast: {e}"),
                },
                // End of input: keep running until Ctrl-C (a client started with no terminal).
                Ok(None) | Err(_) => input_open = false,
            },
            _ = tokio::signal::ctrl_c() => {
                if let Err(e) = engine.logout_room(args.room.clone()).await {
                    eprintln!("logout: {e}");
                }
                break;
            }
        }
    }
}
