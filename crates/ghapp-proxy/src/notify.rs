//! Notifications: when a pull request is held for a person, a write recorded as a proposal,
//! or a sandbox's budget spent, each `[notify]` URL gets a JSON POST saying so.
//!
//! The body carries a `text` field that Slack's and Teams' incoming webhooks show as is, the
//! facts as fields (`event`, `sandbox`, `repo`, `id`, `link`), and is signed as GitHub signs
//! its webhooks: `X-Ghapp-Signature-256: sha256=HEX`, HMAC-SHA256 of the body with the
//! configured secret. Deliveries leave a bounded queue from one worker; a failed attempt
//! (no answer, 5xx, 408, 429) is tried again after 1, 2, 4 ... seconds (a `Retry-After` up
//! to a minute is honoured), up to `retries` more times. Each attempt is logged with the
//! receiver's host only (an incoming-webhook URL is a credential).
//!
//! Text a sandbox chose (titles, branch names) is cut short, stripped of control characters
//! and escaped as Slack requires (`&`, `<`, `>`), so it cannot forge links or mentions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::audit::Audit;
use crate::config::NotifyConfig;

/// Notifications waiting for the worker; past this, new ones are dropped (and counted).
const QUEUE: usize = 256;
/// Deliveries under way at once.
const DELIVERING: usize = 16;
/// One attempt's deadline.
const ATTEMPT: Duration = Duration::from_secs(10);
/// A budget notification per sandbox at most this often.
const BUDGET_QUIET: Duration = Duration::from_secs(600);

/// Something a person should know.
#[derive(Debug, Clone)]
pub(crate) struct Note {
    /// `held`, `proposed`, `budget` or `test`.
    pub event: &'static str,
    pub sandbox: String,
    pub repo: Option<String>,
    /// The approval's or proposal's id.
    pub id: Option<i64>,
    /// What happened, in words (already made safe with [`safe`] where a sandbox chose it).
    pub text: String,
    /// Where a person acts on it.
    pub link: Option<String>,
}

impl Note {
    fn body(&self, delivery: &str) -> serde_json::Value {
        let text = match &self.link {
            Some(l) => format!("{} <{l}|Open>", self.text),
            None => self.text.clone(),
        };
        serde_json::json!({
            "event": self.event,
            "text": text,
            "sandbox": self.sandbox,
            "repo": self.repo,
            "id": self.id,
            "link": self.link,
            "delivery": delivery,
            "ts": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        })
    }
}

/// `s` as notification text: at most `max` characters, no control characters, `&<>`
/// escaped.
pub(crate) fn safe(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The host a receiver's URL names (what logs say of it).
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Where notifications go; does nothing when `[notify]` is not set.
pub(crate) struct Notifier {
    cfg: Option<Arc<NotifyConfig>>,
    client: reqwest::Client,
    audit: Arc<Audit>,
    tx: mpsc::Sender<Note>,
    rx: Mutex<Option<mpsc::Receiver<Note>>>,
    /// When each sandbox was last told its budget is spent.
    budget_said: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("receivers", &self.cfg.as_ref().map_or(0, |c| c.urls.len()))
            .finish_non_exhaustive()
    }
}

impl Notifier {
    pub(crate) fn new(
        cfg: Option<NotifyConfig>,
        client: reqwest::Client,
        audit: Arc<Audit>,
    ) -> Notifier {
        let (tx, rx) = mpsc::channel(QUEUE);
        Notifier {
            cfg: cfg.map(Arc::new),
            client,
            audit,
            tx,
            rx: Mutex::new(Some(rx)),
            budget_said: Mutex::default(),
        }
    }

    /// Starts the delivery worker on the current runtime (once).
    pub(crate) fn start(&self) {
        let (Some(cfg), Some(mut rx)) = (
            self.cfg.clone(),
            self.rx.lock().unwrap_or_else(|e| e.into_inner()).take(),
        ) else {
            return;
        };
        let client = self.client.clone();
        let audit = self.audit.clone();
        // Each delivery on its own task (a receiver that keeps failing delays no other), at
        // most DELIVERING at once.
        let slots = Arc::new(tokio::sync::Semaphore::new(DELIVERING));
        tokio::spawn(async move {
            while let Some(note) = rx.recv().await {
                let note = Arc::new(note);
                for i in 0..cfg.urls.len() {
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let (client, cfg, audit, note) =
                        (client.clone(), cfg.clone(), audit.clone(), note.clone());
                    tokio::spawn(async move {
                        let _ = deliver(&client, &cfg, cfg.urls[i].expose(), &note, &audit).await;
                        drop(slot);
                    });
                }
            }
        });
    }

    /// The approvals page, for links: `page_url`, else the admin listener.
    pub(crate) fn page(&self, admin: Option<std::net::SocketAddr>) -> Option<String> {
        let cfg = self.cfg.as_ref()?;
        cfg.page_url
            .clone()
            .or_else(|| admin.map(|a| format!("http://{a}")))
    }

    /// Queues `note` when `[notify]` wants its event; a full queue drops it (counted).
    pub(crate) fn send(&self, note: Note) {
        let Some(cfg) = &self.cfg else { return };
        if !cfg.wants(note.event) {
            return;
        }
        if note.event == "budget" {
            let mut said = self.budget_said.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            said.retain(|_, t| now.duration_since(*t) < BUDGET_QUIET);
            if said.contains_key(&note.sandbox) {
                return;
            }
            said.insert(note.sandbox.clone(), now);
        }
        if self.tx.try_send(note).is_err() {
            self.audit.metrics.notification("dropped");
            tracing::warn!("a notification was dropped: {QUEUE} are waiting for delivery");
        }
    }
}

/// Sends `note` to `url` until it is taken or `cfg.retries` more attempts failed; each
/// attempt logged. The outcome: the receiver's last status, or why there was none.
pub(crate) async fn deliver(
    client: &reqwest::Client,
    cfg: &NotifyConfig,
    url: &str,
    note: &Note,
    audit: &Audit,
) -> Result<u16, String> {
    let delivery = format!("{:032x}", rand::random::<u128>());
    let body = note.body(&delivery).to_string();
    let signature = cfg
        .secret
        .as_ref()
        .map(|s| crate::signature::sign(s.expose().as_bytes(), body.as_bytes()));
    let host = host_of(url);
    let mut wait = Duration::from_secs(1);
    let mut last = String::new();
    for attempt in 1..=cfg.retries + 1 {
        let mut req = client
            .post(url)
            .timeout(ATTEMPT)
            .header("content-type", "application/json")
            .header("user-agent", "ghapp-proxy")
            .header("x-ghapp-event", note.event)
            .header("x-ghapp-delivery", &delivery)
            .body(body.clone());
        if let Some(sig) = &signature {
            req = req.header("x-ghapp-signature-256", sig);
        }
        let (retry, said) = match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    audit.metrics.notification("delivered");
                    tracing::info!(
                        receiver = %host, event = note.event, delivery = %delivery, attempt,
                        status = status.as_u16(), "notification delivered"
                    );
                    return Ok(status.as_u16());
                }
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(60)));
                let again = status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                if let Some(a) = after {
                    wait = wait.max(a);
                }
                (again, format!("answered {}", status.as_u16()))
            }
            // reqwest's error names the URL: only its kind is said.
            Err(e) if e.is_timeout() => (true, format!("no answer in {}s", ATTEMPT.as_secs())),
            Err(e) if e.is_connect() => (true, "cannot connect".to_string()),
            Err(_) => (true, "the request failed".to_string()),
        };
        last = said;
        if !retry || attempt > cfg.retries {
            break;
        }
        audit.metrics.notification("retried");
        tracing::warn!(
            receiver = %host, event = note.event, delivery = %delivery, attempt,
            "notification not delivered ({last}); trying again in {}s", wait.as_secs()
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(300));
    }
    audit.metrics.notification("failed");
    tracing::error!(
        receiver = %host, event = note.event, delivery = %delivery,
        "notification not delivered: {last}"
    );
    Err(last)
}

/// `ghapp notify test`: one test notification to each receiver of `cfg`, one attempt each; per
/// receiver (its host), the status it answered or why none.
pub(crate) async fn test(
    cfg: &NotifyConfig,
    client: &reqwest::Client,
) -> Vec<(String, Result<u16, String>)> {
    let once = NotifyConfig {
        retries: 0,
        ..cfg.clone()
    };
    let audit = Audit::open(None, None).expect("no file to open");
    let note = Note {
        event: "test",
        sandbox: String::new(),
        repo: None,
        id: None,
        text: "ghapp: a test notification (ghapp notify test): this receiver is reached".into(),
        link: cfg.page_url.clone(),
    };
    let mut out = Vec::new();
    for url in &cfg.urls {
        let r = deliver(client, &once, url.expose(), &note, &audit).await;
        out.push((host_of(url.expose()), r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_text_cannot_forge_links_or_control_the_terminal() {
        assert_eq!(
            safe("fix <!channel> & <https://evil|x>\x1b[2J\r\n", 100),
            "fix &lt;!channel&gt; &amp; &lt;https://evil|x&gt; [2J  "
        );
        assert_eq!(safe("abcdef", 3), "abc…");
        assert_eq!(safe("a\u{202e}b", 10), "a b");
    }
}
