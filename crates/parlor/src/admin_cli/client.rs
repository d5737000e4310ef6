//! One admin API request, with the errors a person can act on.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::Conn;

/// The admin API of one app on one server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    app: u32,
    secret: String,
}

fn parse_app(s: &str) -> Result<(u32, String)> {
    let first = s.split(',').next().unwrap_or("").trim();
    let (id, secret) = first.split_once(':').context("--app is ID:SECRET")?;
    let id: u32 = id.trim().parse().context("the app id is an unsigned 32-bit integer")?;
    if id == 0 || secret.is_empty() {
        bail!("--app is ID:SECRET with an id > 0 and a secret");
    }
    Ok((id, secret.to_string()))
}

impl Client {
    pub fn new(conn: &Conn) -> Result<Client> {
        let app = conn.app.as_deref().context("no app: give --app ID:SECRET or set PARLOR_APP")?;
        let (app, secret) = parse_app(app)?;
        let roots = match &conn.ca {
            Some(path) => std::fs::read(path).with_context(|| format!("cannot read --ca {}", path.display()))?,
            None => Vec::new(),
        };
        let http = parlor_server::http_client::client(Duration::from_secs(10), &roots).map_err(anyhow::Error::msg)?;
        let base = conn.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url must start with http:// or https:// (got {base})");
        }
        Ok(Client { http, base, app, secret })
    }

    /// `GET /v1/admin/apps/{app}{path}`.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST /v1/admin/apps/{app}{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/admin/apps/{}{path}", self.base, self.app)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let res = req.bearer_auth(&self.secret).send().await.map_err(|e| {
            let why = if e.is_timeout() { "no answer within 10 s".to_string() } else { root_cause(&e) };
            anyhow::anyhow!("cannot reach the Parlor server at {}: {why}", self.base)
        })?;
        let status = res.status();
        let text = res.text().await.with_context(|| format!("{}: the answer broke off", self.base))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            if body.is_null() {
                bail!("{}: the answer is not JSON (is this a Parlor server?)", self.base);
            }
            return Ok(body);
        }
        let error = body["error"].as_str().unwrap_or("").to_string();
        let code = body["code"].as_str().unwrap_or("").to_string();
        match status.as_u16() {
            401 => bail!("the server refused the secret of app {} (401 {code}): check --app / PARLOR_APP", self.app),
            404 if code == "unknown_app" => bail!("the server has no app {} (404 unknown_app)", self.app),
            404 if code.is_empty() => bail!("{}: no admin API here (404): is --url a Parlor server?", self.base),
            _ => bail!("{} {code}: {error}", status.as_u16()),
        }
    }
}

/// The innermost error of a chain (reqwest's own text is "error sending request").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
