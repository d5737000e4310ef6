//! Sending one event: a signed `POST` to each of the app's URLs, retried with exponential
//! backoff and jitter until a 2xx or the last attempt.
//!
//! An attempt fails on a non-2xx answer, a timeout (`webhook.timeout`, connect and answer) or a
//! connection error; each failure counts in `parlor_webhook_failures_total`. The retry after
//! attempt n waits `retry_base · 2^(n-1)`, at most 30 s, times a random 0.5–1 (so that receivers
//! coming back are not hit by every node at once). After `webhook.attempts` the event is a dead
//! letter for that URL (`parlor_webhook_dead_letters_total{why="attempts"}`) and the next event
//! goes. Each request is signed anew, so a retry carries a fresh timestamp.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Counters;
use crate::config::{ServerConfig, WebhookSettings};

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where one app's events go.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URLs (the global ones, then the app's own).
    pub urls: Vec<String>,
    /// The app's server secret (the signature's key).
    pub secret: String,
}

/// Whether `url` can be a webhook URL: absolute `http://` or `https://` with a host (for the
/// config check; a URL that is not is left out, with an error in the log).
pub fn check_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("webhook URL {url:?}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return Err(format!("webhook URL {url:?}: must be http:// or https:// with a host"));
    }
    Ok(())
}

/// The endpoints of every app that has at least one webhook URL.
pub fn endpoints(config: &ServerConfig) -> HashMap<u32, Endpoint> {
    let mut out = HashMap::new();
    for (app, secret) in &config.apps {
        let mut urls: Vec<String> = Vec::new();
        let own = config.app_settings.get(app).map(|s| s.webhooks.as_slice()).unwrap_or_default();
        for u in config.webhooks.iter().chain(own) {
            match check_url(u) {
                Ok(()) if !urls.contains(u) => urls.push(u.clone()),
                Ok(()) => {}
                Err(e) => tracing::error!(app, error = %e, "webhook URL left out"),
            }
        }
        if !urls.is_empty() {
            out.insert(*app, Endpoint { urls, secret: secret.clone() });
        }
    }
    out
}

/// Sends events; shared by the memory queue and the Redis leader.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    settings: WebhookSettings,
    counters: Arc<Counters>,
}

/// The wait before the retry that follows failed attempt `attempt` (1-based).
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(MAX_BACKOFF);
    exp.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Sender {
    /// A sender with `settings`' timeout, counting in `counters`.
    pub fn new(settings: &WebhookSettings, counters: Arc<Counters>) -> Result<Sender, String> {
        let client = crate::http_client::client(settings.timeout, &[])?;
        Ok(Sender { client, settings: settings.clone(), counters })
    }

    /// Send `body` to every URL of `ep` (in parallel, each retried on its own). True when every
    /// URL took it; false when it became a dead letter for at least one.
    pub async fn send(&self, app: u32, ep: &Endpoint, body: &str) -> bool {
        let sends = ep.urls.iter().map(|url| self.send_one(app, url, &ep.secret, body));
        futures_util::future::join_all(sends).await.into_iter().all(|ok| ok)
    }

    async fn send_one(&self, app: u32, url: &str, secret: &str, body: &str) -> bool {
        let label = app.to_string();
        let attempts = self.settings.attempts.max(1);
        for attempt in 1..=attempts {
            let signature = super::sign::sign(secret, now_s(), body.as_bytes());
            let sent = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(super::sign::HEADER, signature)
                .body(body.to_string())
                .send()
                .await;
            let failure = match sent {
                Ok(r) if r.status().is_success() => {
                    metrics::counter!("parlor_webhook_sent_total", "app" => label).increment(1);
                    Counters::add(&self.counters.sent);
                    return true;
                }
                Ok(r) => format!("HTTP {}", r.status().as_u16()),
                Err(e) if e.is_timeout() => "timeout".to_string(),
                Err(e) => format!("connection: {e}"),
            };
            metrics::counter!("parlor_webhook_failures_total", "app" => label.clone()).increment(1);
            Counters::add(&self.counters.failures);
            tracing::warn!(app, url, attempt, attempts, failure = %failure, "webhook attempt failed");
            if attempt < attempts {
                tokio::time::sleep(backoff(self.settings.retry_base, attempt)).await;
            }
        }
        metrics::counter!("parlor_webhook_dead_letters_total", "app" => label, "why" => "attempts").increment(1);
        Counters::add(&self.counters.given_up);
        tracing::error!(app, url, attempts, "webhook event given up (dead letter)");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(500);
        for attempt in 1..=12 {
            let full = base.saturating_mul(1 << (attempt - 1)).min(MAX_BACKOFF);
            let d = backoff(base, attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} vs {full:?}");
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF);
    }

    #[test]
    fn endpoints_are_global_plus_the_apps_own() {
        let mut c = ServerConfig::for_tests(7, "s");
        c.apps.insert(8, "t".into());
        assert!(endpoints(&c).is_empty());
        c.app_settings
            .insert(8, crate::config::AppSettings { webhooks: vec!["http://b".into()], ..Default::default() });
        let e = endpoints(&c);
        assert_eq!(e.len(), 1);
        assert_eq!(e[&8].urls, vec!["http://b".to_string()]);
        c.webhooks = vec!["http://a".into()];
        let e = endpoints(&c);
        assert_eq!(e[&7].urls, vec!["http://a".to_string()]);
        assert_eq!(e[&8].urls, vec!["http://a".to_string(), "http://b".to_string()]);
        assert_eq!(e[&8].secret, "t");
        c.webhooks = vec!["ftp://x".into(), "nope".into(), "http://a".into()];
        assert_eq!(endpoints(&c)[&7].urls, vec!["http://a".to_string()], "bad URLs are left out");
        assert!(check_url("https://hooks.example.com/parlor").is_ok());
        assert!(check_url("http://").is_err());
    }
}
