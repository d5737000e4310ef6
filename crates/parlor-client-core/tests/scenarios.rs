//! Replays every `tests/scenarios/*.json` file of the repository (format: that folder's
//! README) against the core, and fails with a readable diff on the first mismatch of each file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parlor_client_core::{Command, Config, Core, Output};
use parlor_protocol::{DecodeError, RoomConfig, User};
use serde_json::{json, Value};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios")
}

/// Every field written in `expected` is present and equal in `actual`; arrays match in length
/// and element by element.
fn partial_match(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            e.iter().all(|(k, ev)| a.get(k).is_some_and(|av| partial_match(ev, av)))
        }
        (Value::Array(e), Value::Array(a)) => e.len() == a.len() && e.iter().zip(a).all(|(e, a)| partial_match(e, a)),
        (Value::Number(e), Value::Number(a)) => e.as_f64() == a.as_f64(),
        (e, a) => e == a,
    }
}

fn output_json(o: &Output) -> Value {
    match o {
        Output::Connect => json!({"connect": true}),
        Output::Disconnect => json!({"disconnect": true}),
        Output::Send(f) => json!({"send": serde_json::to_value(f).unwrap_or(Value::Null)}),
        Output::Event(e) => json!({"event": e.to_json()}),
    }
}

struct Runner {
    core: Core,
    now: u64,
    ignore: Vec<String>,
    outputs: Vec<Value>,
    last_id: Option<u64>,
    last_by_t: BTreeMap<String, u64>,
}

fn s(v: &Value, k: &str) -> Result<String, String> {
    v.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("step {v} needs string field {k:?}"))
}

impl Runner {
    fn drain(&mut self) {
        while let Some(o) = self.core.poll_output() {
            if let Output::Send(f) = &o {
                if let Some(id) = f.request_id() {
                    self.last_id = Some(id);
                    self.last_by_t.insert(f.type_name().to_string(), id);
                }
                if self.ignore.iter().any(|t| t == f.type_name()) {
                    continue;
                }
            }
            self.outputs.push(output_json(&o));
        }
    }

    fn substitute(&self, v: &Value) -> Result<Value, String> {
        Ok(match v {
            Value::String(x) if x == "$last" => {
                json!(self.last_id.ok_or("$last before any request was sent")?)
            }
            Value::String(x) if x.starts_with("$last:") => {
                let t = &x["$last:".len()..];
                json!(self.last_by_t.get(t).ok_or_else(|| format!("{x}: no {t} frame was sent"))?)
            }
            Value::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    out.insert(k.clone(), self.substitute(v)?);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|v| self.substitute(v)).collect::<Result<_, _>>()?),
            other => other.clone(),
        })
    }

    fn command(&mut self, step: &Value) -> Result<(), String> {
        let what = s(step, "do")?;
        let handle = step.get("handle").and_then(Value::as_u64).unwrap_or(0);
        let config: RoomConfig = match step.get("config") {
            Some(c) => serde_json::from_value(c.clone()).map_err(|e| format!("{step}: {e}"))?,
            None => RoomConfig::default(),
        };
        let cmd = match what.as_str() {
            "login_room" => Command::LoginRoom {
                room: s(step, "room")?,
                user: serde_json::from_value::<User>(step.get("user").cloned().unwrap_or_default())
                    .map_err(|e| format!("{step}: user: {e}"))?,
                token: s(step, "token")?,
                config,
            },
            "logout_room" => Command::LogoutRoom { room: s(step, "room")? },
            "switch_room" => {
                Command::SwitchRoom { from: s(step, "from")?, to: s(step, "to")?, token: s(step, "token").ok(), config }
            }
            "publish" => Command::Publish {
                room: s(step, "room")?,
                stream: s(step, "stream")?,
                extra: s(step, "extra").unwrap_or_default(),
            },
            "unpublish" => Command::Unpublish { room: s(step, "room")?, stream: s(step, "stream")? },
            "set_stream_extra" => {
                Command::SetStreamExtra { room: s(step, "room")?, stream: s(step, "stream")?, extra: s(step, "extra")? }
            }
            "set_room_extra" => {
                Command::SetRoomExtra { room: s(step, "room")?, key: s(step, "key")?, value: s(step, "value")? }
            }
            "broadcast" => Command::Broadcast { room: s(step, "room")?, message: s(step, "message")? },
            "barrage" => Command::Barrage { room: s(step, "room")?, message: s(step, "message")? },
            "command" => Command::CustomCommand {
                room: s(step, "room")?,
                to: step
                    .get("to")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
                command: s(step, "command")?,
            },
            "renew_token" => Command::RenewToken { token: s(step, "token")? },
            "query_room_member_list" => Command::QueryRoomMemberList {
                room: s(step, "room")?,
                next_flag: s(step, "next_flag").unwrap_or_default(),
                count: step.get("count").and_then(Value::as_u64).unwrap_or(100) as u32,
            },
            other => return Err(format!("unknown do {other:?}")),
        };
        self.core.handle_command(self.now, handle, cmd);
        Ok(())
    }

    fn step(&mut self, i: usize, step: &Value) -> Result<(), String> {
        if step.get("do").is_some() {
            self.command(step)?;
        } else if step.get("opened").is_some() {
            self.core.handle_opened(self.now);
        } else if step.get("closed").is_some() {
            self.core.handle_closed(self.now);
        } else if let Some(ms) = step.get("refused_retry_after_ms") {
            let ms = ms.as_u64().ok_or_else(|| format!("step {i}: refused_retry_after_ms must be a number"))?;
            self.core.handle_refused(self.now, ms);
        } else if step.get("recv").is_some() || step.get("recv_text").is_some() {
            // `recv` is a frame as JSON, `recv_text` the exact text of one (for text that is not
            // JSON). Without `rejected` the frame must decode; with it, the decoder must refuse it
            // for that reason (and the core then ignores it).
            let text = match (step.get("recv"), step.get("recv_text").and_then(Value::as_str)) {
                (Some(frame), _) => self.substitute(frame)?.to_string(),
                (None, Some(text)) => text.to_string(),
                (None, None) => return Err(format!("step {i}: recv_text must be a string")),
            };
            let outcome = match self.core.handle_text(self.now, &text) {
                Ok(()) => None,
                Err(DecodeError::Malformed(_)) => Some("malformed"),
                Err(DecodeError::UnknownType { .. }) => Some("unknown_type"),
                Err(DecodeError::InvalidField { .. }) => Some("invalid_field"),
            };
            let expected = step.get("rejected").and_then(Value::as_str);
            if outcome != expected {
                return Err(format!(
                    "step {i}: frame {text}: expected {}, got {}",
                    expected.map_or("it to decode".to_string(), |e| format!("rejection as {e}")),
                    outcome.map_or("it decoded".to_string(), |o| format!("rejection as {o}"))
                ));
            }
        } else if step.get("online").is_some() {
            self.core.handle_network_online(self.now);
        } else if step.get("destroy").is_some() {
            self.core.shutdown(self.now);
        } else if let Some(ms) = step.get("advance").and_then(Value::as_u64) {
            let target = self.now + ms;
            let mut guard = 0;
            while let Some(t) = self.core.poll_timeout() {
                if t > target {
                    break;
                }
                self.now = self.now.max(t);
                self.core.handle_timeout(self.now);
                guard += 1;
                if guard > 100_000 {
                    return Err(format!("step {i}: timers do not settle at {t}"));
                }
            }
            self.now = target;
        } else if let Some(exp) = step.get("expect").and_then(Value::as_array) {
            self.drain();
            let actual = std::mem::take(&mut self.outputs);
            let ok = exp.len() == actual.len() && exp.iter().zip(&actual).all(|(e, a)| partial_match(e, a));
            if !ok {
                let mut msg = format!("step {i} (now = {} ms): outputs differ\n", self.now);
                for k in 0..exp.len().max(actual.len()) {
                    let e = exp.get(k).map_or("-".to_string(), Value::to_string);
                    let a = actual.get(k).map_or("-".to_string(), Value::to_string);
                    let mark = match (exp.get(k), actual.get(k)) {
                        (Some(e), Some(a)) if partial_match(e, a) => "  ",
                        _ => "!!",
                    };
                    msg.push_str(&format!("{mark} #{k}\n   expected: {e}\n   actual:   {a}\n"));
                }
                return Err(msg);
            }
            return Ok(());
        } else {
            return Err(format!("step {i}: unknown step {step}"));
        }
        self.drain();
        Ok(())
    }
}

fn run_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    run_doc(&doc)
}

fn run_doc(doc: &Value) -> Result<(), String> {
    let cfg = doc.get("config").cloned().unwrap_or(json!({}));
    let num = |k: &str, d: u64| cfg.get(k).and_then(Value::as_u64).unwrap_or(d);
    let random = cfg.get("random").and_then(Value::as_f64).unwrap_or(0.5);
    let config = Config {
        app_id: num("app_id", 1) as u32,
        heartbeat_ms: num("heartbeat_ms", 10_000),
        login_timeout_ms: num("login_timeout_ms", 30_000),
        reconnect_window_ms: num("reconnect_window_ms", 300_000),
    };
    let ignore = doc
        .get("ignore_sends")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let mut r = Runner {
        core: Core::new(config, Box::new(move || random)),
        now: 0,
        ignore,
        outputs: Vec::new(),
        last_id: None,
        last_by_t: BTreeMap::new(),
    };
    let steps = doc.get("steps").and_then(Value::as_array).ok_or("no steps")?;
    for (i, step) in steps.iter().enumerate() {
        r.step(i, step)?;
    }
    // Every output must be accounted for: a scenario ends with an `expect` of what the last
    // steps produced (possibly `[]`).
    r.drain();
    if !r.outputs.is_empty() {
        let left: Vec<String> = r.outputs.iter().map(Value::to_string).collect();
        return Err(format!("outputs left unchecked after the last step:\n   {}", left.join("\n   ")));
    }
    Ok(())
}

#[test]
fn every_scenario_file_replays() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("tests/scenarios exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let names: Vec<String> =
        files.iter().filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())).collect();
    for required in [
        "back_before_timeout",
        "back_after_timeout",
        "never_back",
        "kick_out_duplicate_login",
        "kicked_while_away",
        "snapshot_diff",
        "epoch_changed",
        "resume_refused_fallback",
        "login_timeout",
        "logout_failed",
        "held_requests",
        "pong_loss",
        "duplicate_seq_dropped",
        "multi_room",
        "switch_room",
        "malformed_server_frames",
        "resumed_outcomes_strict",
        "clamped_heartbeat_ceiling",
        "clamped_heartbeat_floor",
        "network_online",
        "destroy",
    ] {
        assert!(names.iter().any(|n| n == required), "scenario {required}.json is missing");
    }
    let mut failures = Vec::new();
    for f in &files {
        if let Err(e) = run_file(f) {
            failures.push(format!("=== {}\n{e}", f.display()));
        }
    }
    assert!(failures.is_empty(), "{} of {} scenarios failed:\n{}", failures.len(), files.len(), failures.join("\n"));
    eprintln!("{} scenarios replayed", files.len());
}

#[test]
fn partial_match_is_strict_where_it_must_be() {
    assert!(partial_match(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    assert!(!partial_match(&json!({"a": 1, "c": 3}), &json!({"a": 1})));
    assert!(!partial_match(&json!([1]), &json!([1, 2])));
    assert!(partial_match(&json!([{"id": "u"}]), &json!([{"id": "u", "name": "x"}])));
    assert!(!partial_match(&json!({"a": "1"}), &json!({"a": 1})));
}

#[test]
fn outputs_left_unchecked_fail_the_scenario() {
    let login = json!({"do": "login_room", "room": "r1", "user": {"id": "u1"}, "token": "t", "handle": 1});
    let e = run_doc(&json!({"steps": [login]})).unwrap_err();
    assert!(e.contains("left unchecked"), "{e}");
    let checked = json!({"steps": [login, {"expect": [{"event": {"reason": "LOGINING"}}, {"connect": true}]}]});
    assert_eq!(run_doc(&checked), Ok(()));
    let wrongly_rejected = json!({"steps": [login, {"recv_text": "{", "rejected": "invalid_field"}]});
    assert!(run_doc(&wrongly_rejected).unwrap_err().contains("rejection as malformed"));
}
