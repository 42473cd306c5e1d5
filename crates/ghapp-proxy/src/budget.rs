//! Budgets below GitHub's limits (`[budget]`), so that one sandbox in a loop cannot make
//! GitHub limit (or block) the app for every other.
//!
//! - **Content creation** (pushes, REST writes, GraphQL mutations): at most
//!   `content_per_minute` and `content_per_hour` for the whole proxy, every replica counted
//!   through the state store (this replica's own counts without one). Each sandbox is held to
//!   its share of a window: `limit × weight / (the weights of the sandboxes that spent in it,
//!   its own included, + 1)`; the `+ 1` is a share kept free for a sandbox that has not spent
//!   yet, so one sandbox alone takes at most half. Past half its share a request is slowed
//!   (spread over the rest of the minute, at most [`MAX_DELAY`]); past its share, or past the
//!   whole budget, it is refused with 429 and `Retry-After` until the window ends.
//!   A request is counted before it is checked (one atomic increment per window), so replicas
//!   racing for the last unit may both be refused, never both let through; a refused one gives
//!   its unit back.
//! - **GraphQL points** (a query 1, a mutation 5, as GitHub counts them for its secondary
//!   limit of 2,000 a minute): at most `graphql_points_per_minute` for the whole proxy, each
//!   sandbox held to its share as above.
//! - **An installation's hourly requests**: every answer's `x-ratelimit-remaining`, `-limit`,
//!   `-reset` and `-resource` are remembered per owner and resource (this replica's view);
//!   when what remains falls to `reserve_percent` of the limit, sandboxes' API requests to that
//!   owner wait (429, `Retry-After` until GitHub's reset), keeping the rest for the proxy's own
//!   calls and for people.
//! - **Requests at once** ([`Budgets::slots`]): per replica, at most
//!   `concurrent_per_installation` requests to one owner and `concurrent_per_sandbox` of one
//!   sandbox are under way (sent and their answers streamed); one more waits up to
//!   [`SLOT_WAIT`] for a slot, then is answered 429. GitHub allows 100 at once for the app:
//!   the default 30 keeps three replicas below it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use hyper::StatusCode;

use crate::config::BudgetConfig;
use crate::respond::{Form, Refusal};
use crate::store::{Store, Table};

/// What one charge is: the budget's table, its name in refusals, its cost.
struct Spent {
    table: Table,
    what: &'static str,
    cost: i64,
}

/// A sandbox's use now: content creation in this minute and hour, GraphQL points this minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Used {
    pub content_minute: i64,
    pub content_hour: i64,
    pub points_minute: i64,
}

/// The longest a request is slowed.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(3);
/// Owners and resources remembered.
const MAX_OWNERS: usize = 10_000;
/// The longest a request waits for a slot.
pub(crate) const SLOT_WAIT: Duration = Duration::from_secs(5);
/// How long [`Budgets::used`] answers a sandbox from what the store said last: `GET /policy`
/// asks on every call, and a sandbox may call it in a loop (three store queries each).
const USED_FRESH: Duration = Duration::from_secs(1);

/// What GitHub last said of an installation's requests: (remaining, limit, reset).
type Primary = (u64, u64, i64);

pub(crate) struct Budgets {
    cfg: BudgetConfig,
    /// Without a store: (table, sandbox, span, window) -> use.
    local: Mutex<HashMap<(Table, String, i64, i64), i64>>,
    /// (owner lowercased, resource) -> what GitHub said last.
    primary: Mutex<HashMap<(String, String), Primary>>,
    /// Requests under way: per owner (lowercased), per sandbox.
    owners: Mutex<HashMap<String, Arc<Semaphore>>>,
    sandboxes: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// With a store: a sandbox's use as last read, and when.
    used: Mutex<HashMap<String, (std::time::Instant, Used)>>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// A sandbox's share of `limit`: its weight over the spenders' (its own included) plus one
/// share kept free; at least 1.
pub(crate) fn share(limit: u32, weight: u32, spenders_weight: u32) -> i64 {
    let w = i64::from(weight.max(1));
    let all = i64::from(spenders_weight.max(weight)) + 1;
    (i64::from(limit) * w / all).max(1)
}

impl Budgets {
    pub(crate) fn new(cfg: BudgetConfig) -> Budgets {
        Budgets {
            cfg,
            local: Mutex::default(),
            primary: Mutex::default(),
            owners: Mutex::default(),
            sandboxes: Mutex::default(),
            used: Mutex::default(),
        }
    }

    /// Slots for one request of `sandbox` to `owner` (held until its answer is streamed), or
    /// the refusal once none came free within [`SLOT_WAIT`].
    pub(crate) async fn slots(
        &self,
        owner: &str,
        sandbox: &str,
        form: Form,
    ) -> Result<[OwnedSemaphorePermit; 2], Refusal> {
        let of = |map: &Mutex<HashMap<String, Arc<Semaphore>>>, key: String, n: u32| {
            let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
            if m.len() > MAX_OWNERS {
                // Only idle ones go: a semaphore with a permit out stays.
                m.retain(|_, s| s.available_permits() < n as usize);
            }
            m.entry(key)
                .or_insert_with(|| Arc::new(Semaphore::new(n as usize)))
                .clone()
        };
        let mine = of(
            &self.sandboxes,
            sandbox.to_owned(),
            self.cfg.concurrent_per_sandbox,
        );
        let theirs = of(
            &self.owners,
            owner.to_ascii_lowercase(),
            self.cfg.concurrent_per_installation,
        );
        let wait = |s: Arc<Semaphore>, what: String| async move {
            match tokio::time::timeout(SLOT_WAIT, s.acquire_owned()).await {
                Ok(Ok(p)) => Ok(p),
                _ => Err(refusal(form, what, 1)),
            }
        };
        // The sandbox's own slot first: a sandbox at its cap does not hold one of the owner's.
        let a = wait(
            mine,
            format!(
                "sandbox {sandbox} has {} requests under way (concurrent_per_sandbox): retry in 1s",
                self.cfg.concurrent_per_sandbox
            ),
        )
        .await?;
        let b = wait(
            theirs,
            format!(
                "{} requests to {owner} are under way (concurrent_per_installation), below GitHub's limit of 100 at once: retry in 1s",
                self.cfg.concurrent_per_installation
            ),
        )
        .await?;
        Ok([a, b])
    }

    /// One content-creating request of `sandbox` (of `weight`; `weight_of` the others'): how
    /// long to slow it, or the refusal in the client's `form`.
    pub(crate) async fn content(
        &self,
        store: Option<&Store>,
        sandbox: &str,
        weight: u32,
        weight_of: &(dyn Fn(&str) -> u32 + Sync),
        form: Form,
    ) -> Result<Duration, Refusal> {
        let windows = [
            (60, self.cfg.content_per_minute, "minute"),
            (3600, self.cfg.content_per_hour, "hour"),
        ];
        let spent = Spent {
            table: Table::Content,
            what: "content creation",
            cost: 1,
        };
        self.charge(store, sandbox, weight, weight_of, form, spent, &windows)
            .await
    }

    /// One GraphQL request of `sandbox` costing `cost` points: as [`Budgets::content`].
    pub(crate) async fn points(
        &self,
        store: Option<&Store>,
        sandbox: &str,
        weight: u32,
        weight_of: &(dyn Fn(&str) -> u32 + Sync),
        cost: i64,
        form: Form,
    ) -> Result<Duration, Refusal> {
        let windows = [(60, self.cfg.graphql_points_per_minute, "minute")];
        let spent = Spent {
            table: Table::Points,
            what: "GraphQL points",
            cost,
        };
        self.charge(store, sandbox, weight, weight_of, form, spent, &windows)
            .await
    }

    /// Charges `spent.cost` to `sandbox` in each window (`(span, limit, name)`): how long to
    /// slow it, or the refusal (every window's charge given back).
    #[expect(clippy::too_many_arguments, reason = "one charge's facts, once")]
    async fn charge(
        &self,
        store: Option<&Store>,
        sandbox: &str,
        weight: u32,
        weight_of: &(dyn Fn(&str) -> u32 + Sync),
        form: Form,
        spent: Spent,
        windows: &[(i64, u32, &str)],
    ) -> Result<Duration, Refusal> {
        let Spent {
            table,
            what: kind,
            cost,
        } = spent;
        let now = ghapp_core::jwt::unix_now();
        let mut delay = Duration::ZERO;
        let mut taken: Vec<(i64, i64)> = Vec::new();
        for &(span, limit, what) in windows {
            let win = now / span;
            let rows = match self.add(store, table, sandbox, span, win, cost).await {
                Ok(r) => r,
                // The store failing must not stop every write: this replica's counts stand in.
                Err(e) => {
                    tracing::warn!("budget: {e}; counting on this replica only");
                    self.add(None, table, sandbox, span, win, cost)
                        .await
                        .unwrap_or_default()
                }
            };
            taken.push((span, win));
            let total: i64 = rows.iter().map(|(_, n)| n).sum();
            let mine = rows
                .iter()
                .find(|(s, _)| s == sandbox)
                .map_or(0, |(_, n)| *n);
            let spenders: u32 = rows
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(s, _)| if s == sandbox { weight } else { weight_of(s) })
                .sum();
            let share = share(limit, weight, spenders);
            let left = span - now % span;
            if total > i64::from(limit) || mine > share {
                for (span, win) in taken {
                    let _ = self.add(store, table, sandbox, span, win, -cost).await;
                }
                let why = if mine > share {
                    format!("its share of this {what}'s {kind} ({share} of {limit}) is spent")
                } else {
                    format!("the proxy's {kind} for this {what} ({limit}) is spent")
                };
                return Err(refusal(
                    form,
                    format!(
                        "sandbox {sandbox}: {why}, to stay below GitHub's secondary rate limits: retry in {left}s"
                    ),
                    left as u64,
                ));
            }
            if span == 60 && mine * 2 > share {
                // Past half its share: the rest spread over what is left of the minute.
                let remaining = ((share - mine) / cost.max(1) + 1).max(1);
                delay = Duration::from_secs(left as u64)
                    .checked_div(remaining as u32)
                    .unwrap_or_default()
                    .min(MAX_DELAY);
            }
        }
        Ok(delay)
    }

    async fn add(
        &self,
        store: Option<&Store>,
        table: Table,
        sandbox: &str,
        span: i64,
        win: i64,
        delta: i64,
    ) -> Result<Vec<(String, i64)>, crate::store::StoreError> {
        if let Some(s) = store {
            return s.budget_add(table, sandbox, span, win, delta).await;
        }
        let mut m = self.local.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|(t, _, sp, w), _| *t != table || *sp != span || *w >= win - 1);
        *m.entry((table, sandbox.to_owned(), span, win)).or_default() += delta;
        Ok(m.iter()
            .filter(|((t, _, sp, w), _)| *t == table && *sp == span && *w == win)
            .map(|((_, s, _, _), n)| (s.clone(), *n))
            .collect())
    }

    /// `sandbox`'s use now (every replica's with a store, as read at most [`USED_FRESH`] ago;
    /// 0 where it cannot be read).
    pub(crate) async fn used(&self, store: Option<&Store>, sandbox: &str) -> Used {
        if store.is_some()
            && let Some((at, used)) = self
                .used
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(sandbox)
            && at.elapsed() < USED_FRESH
        {
            return *used;
        }
        let now = ghapp_core::jwt::unix_now();
        let mut out = [0i64; 3];
        for (i, (table, span)) in [
            (Table::Content, 60i64),
            (Table::Content, 3600),
            (Table::Points, 60),
        ]
        .into_iter()
        .enumerate()
        {
            let win = now / span;
            out[i] = match store {
                Some(s) => s.budget_used(table, sandbox, span, win).await.unwrap_or(0),
                None => self
                    .local
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&(table, sandbox.to_owned(), span, win))
                    .copied()
                    .unwrap_or(0),
            };
        }
        let used = Used {
            content_minute: out[0],
            content_hour: out[1],
            points_minute: out[2],
        };
        if store.is_some() {
            let mut m = self.used.lock().unwrap_or_else(|e| e.into_inner());
            if m.len() >= MAX_OWNERS {
                m.retain(|_, (at, _)| at.elapsed() < USED_FRESH);
            }
            m.insert(sandbox.to_owned(), (std::time::Instant::now(), used));
        }
        used
    }

    /// Remembers what an answer from GitHub says of `owner`'s installation's requests.
    pub(crate) fn observe(&self, owner: &str, headers: &hyper::HeaderMap) {
        let num = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let (Some(remaining), Some(limit), Some(reset)) = (
            num("x-ratelimit-remaining"),
            num("x-ratelimit-limit"),
            num("x-ratelimit-reset"),
        ) else {
            return;
        };
        let resource = headers
            .get("x-ratelimit-resource")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("core")
            .chars()
            .take(32)
            .collect::<String>();
        let mut m = self.primary.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_OWNERS {
            m.clear();
        }
        m.insert(
            (owner.to_ascii_lowercase(), resource),
            (remaining.max(0) as u64, limit.max(0) as u64, reset),
        );
    }

    /// Refuses an API request to `owner` (`resource`: `core` or `graphql`) while its
    /// installation is down to the reserve, until GitHub's reset.
    pub(crate) fn primary(&self, owner: &str, resource: &str, form: Form) -> Result<(), Refusal> {
        let m = self.primary.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&(remaining, limit, reset)) =
            m.get(&(owner.to_ascii_lowercase(), resource.to_owned()))
        else {
            return Ok(());
        };
        let now = ghapp_core::jwt::unix_now();
        let reserve = limit * u64::from(self.cfg.reserve_percent) / 100;
        if reset > now && remaining <= reserve {
            let left = (reset - now) as u64;
            return Err(refusal(
                form,
                format!(
                    "{owner}'s GitHub App installation has {remaining} of its {limit} hourly requests left, the reserve kept for the proxy and people: retry in {left}s, after GitHub's reset"
                ),
                left,
            ));
        }
        Ok(())
    }
}

fn refusal(form: Form, message: String, retry_after: u64) -> Refusal {
    Refusal {
        status: StatusCode::TOO_MANY_REQUESTS,
        message,
        form,
        retry_after: Some(retry_after.max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_keep_one_free_and_follow_weights() {
        // Alone: half. Two equal spenders: a third each. A weight of 2 among 1s: twice as much.
        assert_eq!(share(60, 1, 1), 30);
        assert_eq!(share(60, 1, 2), 20);
        assert_eq!(share(60, 2, 3), 30);
        assert_eq!(share(60, 1, 3), 15);
        assert_eq!(share(1, 1, 50), 1);
    }

    #[tokio::test]
    async fn a_looping_sandbox_is_slowed_then_refused_and_another_goes_on() {
        let b = Budgets::new(BudgetConfig {
            content_per_minute: 20,
            content_per_hour: 400,
            ..BudgetConfig::default()
        });
        let one = |_: &str| 1;
        let mut slowed = 0;
        let mut n = 0;
        let refused = loop {
            match b.content(None, "a", 1, &one, Form::Json).await {
                Ok(d) => {
                    slowed += usize::from(!d.is_zero());
                    n += 1;
                }
                Err(r) => break r,
            }
            assert!(n <= 20, "never refused");
        };
        assert_eq!(n, 10, "alone: half of 20");
        assert!(slowed >= 4, "{slowed}");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.retry_after.is_some_and(|s| s <= 60));
        assert!(refused.message.contains("its share"), "{}", refused.message);
        // The other sandbox: a share of its own.
        assert!(b.content(None, "b", 1, &one, Form::Json).await.is_ok());
    }

    #[test]
    fn an_installation_at_its_reserve_waits_for_the_reset() {
        let b = Budgets::new(BudgetConfig::default());
        let mut h = hyper::HeaderMap::new();
        let reset = ghapp_core::jwt::unix_now() + 120;
        for (k, v) in [
            ("x-ratelimit-limit", "5000".to_string()),
            ("x-ratelimit-remaining", "501".to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        b.observe("Octo-Org", &h);
        assert!(b.primary("octo-org", "core", Form::Json).is_ok());
        h.insert("x-ratelimit-remaining", "500".parse().unwrap());
        b.observe("octo-org", &h);
        let r = b.primary("octo-org", "core", Form::Json).unwrap_err();
        assert!(r.retry_after.is_some_and(|s| (100..=120).contains(&s)));
        assert!(b.primary("octo-org", "graphql", Form::Json).is_ok());
    }

    #[tokio::test]
    async fn requests_at_once_wait_for_a_slot_then_are_refused() {
        let b = Arc::new(Budgets::new(BudgetConfig {
            concurrent_per_sandbox: 1,
            concurrent_per_installation: 2,
            ..BudgetConfig::default()
        }));
        let first = b.slots("Octo-Org", "a", Form::Json).await.unwrap();
        // The sandbox's second waits for its first to finish.
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.slots("octo-org", "a", Form::Json).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert!(waiting.await.unwrap());
        // The owner's two slots taken (any case of its name): a third sandbox waits, then 429.
        let _x = b.slots("octo-org", "x", Form::Json).await.unwrap();
        let _y = b.slots("OCTO-ORG", "y", Form::Json).await.unwrap();
        let started = std::time::Instant::now();
        let r = b.slots("octo-org", "z", Form::Json).await.unwrap_err();
        assert!(started.elapsed() >= SLOT_WAIT);
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            r.message.contains("concurrent_per_installation"),
            "{}",
            r.message
        );
        // Another owner is not held up.
        assert!(b.slots("other", "z", Form::Json).await.is_ok());
    }
}
