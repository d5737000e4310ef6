//! The tables the admin commands print: plain columns, padded, one header line.

use serde_json::Value;

/// Columns padded to their widest cell, two spaces apart.
fn columns(rows: &[Vec<String>], indent: &str) -> String {
    let mut widths = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_string();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

fn len(v: &Value) -> usize {
    v.as_array().map(Vec::len).unwrap_or(0)
}

/// `rooms list`.
pub fn rooms(v: &Value) -> String {
    let mut rows = vec![vec!["ROOM".into(), "USERS".into(), "STREAMS".into(), "EXTRA".into()]];
    for r in v["rooms"].as_array().into_iter().flatten() {
        rows.push(vec![
            s(&r["room"]),
            len(&r["users"]).to_string(),
            len(&r["streams"]).to_string(),
            len(&r["extra"]).to_string(),
        ]);
    }
    let mut out = columns(&rows, "");
    if let Some(next) = v["next_cursor"].as_str() {
        out.push_str(&format!("more: --cursor {next}\n"));
    }
    out
}

/// `rooms show`.
pub fn room(v: &Value) -> String {
    let mut out =
        columns(&[vec!["room".into(), s(&v["room"])], vec!["room_session".into(), s(&v["room_session"])]], "");
    out.push_str(&format!("users ({})\n", len(&v["users"])));
    let mut rows = vec![vec!["ID".into(), "NAME".into()]];
    for u in v["users"].as_array().into_iter().flatten() {
        rows.push(vec![s(&u["id"]), s(&u["name"])]);
    }
    out.push_str(&columns(&rows, "  "));
    out.push_str(&format!("streams ({})\n", len(&v["streams"])));
    let mut rows = vec![vec!["ID".into(), "USER".into(), "EXTRA".into()]];
    for st in v["streams"].as_array().into_iter().flatten() {
        rows.push(vec![s(&st["id"]), s(&st["user"]["id"]), s(&st["extra"])]);
    }
    out.push_str(&columns(&rows, "  "));
    out.push_str(&format!("extra ({})\n", len(&v["extra"])));
    let mut rows = vec![vec!["KEY".into(), "VALUE".into(), "BY".into()]];
    for e in v["extra"].as_array().into_iter().flatten() {
        rows.push(vec![s(&e["key"]), s(&e["value"]), s(&e["user"]["id"])]);
    }
    out.push_str(&columns(&rows, "  "));
    out
}
