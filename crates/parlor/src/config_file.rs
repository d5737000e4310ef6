//! The configuration file of `parlor serve --config FILE` (TOML), and `parlor config check`.
//!
//! Every key is a flag of `serve` in snake_case (`listen`, `heartbeat = "10s"`, …), plus the
//! `[[app]]` tables (`id`, `secret`, `webhooks`, `max_sessions`), `webhooks = [...]` and the
//! `[webhook]` table. A flag beats its environment variable, which beats the file, which beats
//! the default (see `crate::serve::resolve`). Unknown keys are errors, not ignored: a typo
//! must not silently leave a default in place. Durations are humantime strings ("10s", "20m").
//!
//! Every error names the file, line and column (`parlor.toml:3:13: …`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// `--log-format`: how log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (colours only when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The file, as written. `None`: the key is absent (the env, then the default, decide).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    #[serde(default, rename = "app")]
    pub apps: Vec<FileApp>,
    #[serde(default, deserialize_with = "duration")]
    pub heartbeat: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub session_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub retention: Option<Duration>,
    pub max_frame: Option<usize>,
    pub room_message_rate: Option<u32>,
    pub user_message_rate: Option<u32>,
    pub request_rate: Option<u32>,
    pub outbound_limit: Option<usize>,
    pub redis: Option<String>,
    pub node_id: Option<String>,
    pub max_connections_per_ip: Option<usize>,
    pub connection_rate: Option<u32>,
    pub max_sessions_per_app: Option<usize>,
    pub max_offline_sessions: Option<usize>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default, deserialize_with = "duration")]
    pub drain_time: Option<Duration>,
    pub log_format: Option<LogFormat>,
    pub users_batch_from: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    pub users_batch_window: Option<Duration>,
    pub full_presence_up_to: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    pub presence_interval: Option<Duration>,
    pub webhooks: Option<Vec<Spanned<String>>>,
    pub webhook: Option<FileWebhook>,
}

/// One `[[app]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileApp {
    pub id: Spanned<u32>,
    pub secret: Spanned<String>,
    #[serde(default)]
    pub webhooks: Vec<Spanned<String>>,
    /// This app's own `max_sessions_per_app` (0: no limit).
    pub max_sessions: Option<usize>,
    /// This app's own `full_presence_up_to` (protocol §9.10; 0: no room of it is large).
    pub full_presence_up_to: Option<usize>,
}

/// The `[webhook]` table: how webhooks are queued and retried.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWebhook {
    pub queue: Option<usize>,
    pub attempts: Option<u32>,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub retry_base: Option<Duration>,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map(Some).map_err(|e| {
        serde::de::Error::custom(format!("bad duration {s:?} ({e}); write e.g. \"500ms\", \"10s\", \"20m\""))
    })
}

/// `line:column` (1-based) of byte `at` of `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn at(path: &Path, text: &str, span: Option<Range<usize>>, message: &str) -> String {
    match span {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            format!("{}:{line}:{col}: {message}", path.display())
        }
        None => format!("{}: {message}", path.display()),
    }
}

/// Parse and check `text` (read from `path`, which names it in errors). Every error found is
/// returned, one message each.
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, Vec<String>> {
    let file: FileConfig = toml::from_str(text).map_err(|e| vec![at(path, text, e.span(), e.message().trim())])?;
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for app in &file.apps {
        let id = *app.id.get_ref();
        if id == 0 {
            errors.push(at(
                path,
                text,
                Some(app.id.span()),
                "bad app id 0: an app id is an integer from 1 to 4294967295",
            ));
        } else if !seen.insert(id) {
            errors.push(at(path, text, Some(app.id.span()), &format!("duplicate app {id}: each [[app]] id once")));
        }
        if app.secret.get_ref().is_empty() {
            errors.push(at(path, text, Some(app.secret.span()), &format!("app {id}: the secret must not be empty")));
        }
    }
    let urls = file.webhooks.iter().flatten().chain(file.apps.iter().flat_map(|a| &a.webhooks));
    for url in urls {
        if !(url.get_ref().starts_with("http://") || url.get_ref().starts_with("https://")) {
            let message = format!("bad webhook URL {:?}: it must start with http:// or https://", url.get_ref());
            errors.push(at(path, text, Some(url.span()), &message));
        }
    }
    if file.tls_cert.is_some() != file.tls_key.is_some() {
        errors.push(at(path, text, None, "tls_cert and tls_key go together: give both or neither"));
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(errors)
    }
}

/// Read and [`parse`] `path`.
pub fn load(path: &Path) -> Result<FileConfig, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    parse(path, &text)
}

/// What `parlor config check` prints for a good file: what it sets, in one line each.
pub fn summary(path: &Path, f: &FileConfig) -> String {
    let mut out = format!("OK: {}\n", path.display());
    let set = |name: &str, v: Option<String>| v.map(|v| format!("  {name} = {v}\n")).unwrap_or_default();
    out += &set("listen", f.listen.map(|l| l.to_string()));
    let apps: Vec<String> = f.apps.iter().map(|a| a.id.get_ref().to_string()).collect();
    out += &format!("  apps: {}\n", if apps.is_empty() { "none (the dev app)".to_string() } else { apps.join(", ") });
    out += &format!("  engine: {}\n", if f.redis.is_some() { "redis" } else { "memory" });
    let hooks = f.webhooks.as_ref().map_or(0, Vec::len) + f.apps.iter().map(|a| a.webhooks.len()).sum::<usize>();
    out += &format!("  webhooks: {hooks}\n");
    out += &set("drain_time", f.drain_time.map(|d| humantime::format_duration(d).to_string()));
    out += &set("log_format", f.log_format.map(|l| format!("{l:?}").to_lowercase()));
    out
}

/// `parlor config check FILE`: true when the file is good (the summary is printed), false
/// otherwise (every error is printed to stderr).
pub fn check(path: &Path) -> bool {
    match load(path) {
        Ok(f) => {
            print!("{}", summary(path, &f));
            true
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", path.display(), errors.len());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse(Path::new("p.toml"), text).expect_err("an error")
    }

    #[test]
    fn every_key_parses() {
        let f = parse(
            Path::new("p.toml"),
            r#"
listen = "0.0.0.0:7700"
heartbeat = "5s"
session_timeout = "1m"
retention = "20m"
max_frame = 1000
room_message_rate = 1
user_message_rate = 2
request_rate = 3
outbound_limit = 4
redis = "redis://127.0.0.1:6379"
node_id = "n1"
max_connections_per_ip = 5
connection_rate = 6
max_sessions_per_app = 7
max_offline_sessions = 8
tls_cert = "c.pem"
tls_key = "k.pem"
drain_time = "30s"
log_format = "json"
users_batch_from = 50
users_batch_window = "20ms"
webhooks = ["https://a.example/h"]
[webhook]
queue = 9
attempts = 3
timeout = "2s"
retry_base = "250ms"
[[app]]
id = 7
secret = "s"
webhooks = ["http://b.example/h"]
max_sessions = 100
"#,
        )
        .expect("valid");
        assert_eq!(f.heartbeat, Some(Duration::from_secs(5)));
        assert_eq!(f.drain_time, Some(Duration::from_secs(30)));
        assert_eq!(f.log_format, Some(LogFormat::Json));
        assert_eq!((f.users_batch_from, f.users_batch_window), (Some(50), Some(Duration::from_millis(20))));
        assert_eq!(f.webhook.as_ref().and_then(|w| w.retry_base), Some(Duration::from_millis(250)));
        assert_eq!((*f.apps[0].id.get_ref(), f.apps[0].max_sessions), (7, Some(100)));
    }

    #[test]
    fn an_unknown_key_is_named_with_its_place_and_the_valid_ones() {
        let e = errors("listen = \"127.0.0.1:1\"\nheartbeet = \"1s\"\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("p.toml:2:1: unknown field `heartbeet`, expected one of"), "{e:?}");
        assert!(e[0].contains("`heartbeat`") && e[0].contains("`drain_time`"), "{e:?}");
        let e = errors("[[app]]\nid = 1\nsecret = \"s\"\nmax_session = 3\n");
        assert!(e[0].starts_with("p.toml:4:1: unknown field `max_session`"), "{e:?}");
        assert!(e[0].contains("`max_sessions`"), "{e:?}");
    }

    #[test]
    fn a_bad_duration_is_named_with_its_place() {
        let e = errors("\n\nheartbeat = \"10 parsecs\"\n");
        assert!(e[0].starts_with("p.toml:3:13: bad duration \"10 parsecs\""), "{e:?}");
        let e = errors("[webhook]\ntimeout = 5\n");
        assert!(e[0].starts_with("p.toml:2:11: invalid type: integer `5`, expected a string"), "{e:?}");
    }

    #[test]
    fn bad_and_duplicate_apps_are_named_with_their_place() {
        let e = errors(
            "[[app]]\nid = 0\nsecret = \"\"\n[[app]]\nid = 4\nsecret = \"a\"\n[[app]]\nid = 4\nsecret = \"b\"\n",
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("p.toml:2:6: bad app id 0"), "{e:?}");
        assert!(e[1].starts_with("p.toml:3:10: app 0: the secret must not be empty"), "{e:?}");
        assert!(e[2].starts_with("p.toml:8:6: duplicate app 4"), "{e:?}");
        let e = errors("[[app]]\nid = -3\nsecret = \"s\"\n");
        assert!(e[0].starts_with("p.toml:2:6: invalid value: integer `-3`, expected u32"), "{e:?}");
        let e = errors("[[app]]\nid = 3\n");
        assert!(e[0].starts_with("p.toml:1:1: missing field `secret`"), "{e:?}");
    }

    #[test]
    fn bad_webhooks_tls_and_syntax() {
        let e = errors("webhooks = [\"ftp://x\"]\ntls_cert = \"c.pem\"\n");
        assert!(e[0].starts_with("p.toml:1:13: bad webhook URL \"ftp://x\""), "{e:?}");
        assert_eq!(e[1], "p.toml: tls_cert and tls_key go together: give both or neither");
        let e = errors("listen = \n");
        assert!(e[0].starts_with("p.toml:1:"), "{e:?}");
        let e = errors("listen = \"nowhere\"\n");
        assert!(e[0].starts_with("p.toml:1:10: invalid socket address syntax"), "{e:?}");
    }
}
