//! `[budget]`: what the whole proxy lets sandboxes spend of GitHub's limits (see the `budget`
//! module for how each is counted).

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBudget {
    content_per_minute: Option<u32>,
    content_per_hour: Option<u32>,
    reserve_percent: Option<u32>,
    concurrent_per_installation: Option<u32>,
    concurrent_per_sandbox: Option<u32>,
    graphql_points_per_minute: Option<u32>,
}

/// `[budget]`: what the whole proxy (every replica, through the state store) lets sandboxes
/// spend of GitHub's limits, each sandbox held to its weighted share when they contend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Content-creating requests (pushes, REST writes, GraphQL mutations) per minute: 60, below
    /// GitHub's secondary limit of about 80.
    pub content_per_minute: u32,
    /// Per hour: 400, below GitHub's 500.
    pub content_per_hour: u32,
    /// The part of an installation's hourly requests kept back (10 %): past it, sandboxes wait
    /// for GitHub's reset; the proxy's own calls and people go on.
    pub reserve_percent: u32,
    /// Requests to one installation's owner under way at once, on this replica: 30 (GitHub
    /// allows 100 at once for the app; three replicas stay below).
    pub concurrent_per_installation: u32,
    /// A sandbox's requests under way at once, on this replica: 8.
    pub concurrent_per_sandbox: u32,
    /// GraphQL points per minute (a query 1, a mutation 5): 1,000, below GitHub's 2,000.
    pub graphql_points_per_minute: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            content_per_minute: 60,
            content_per_hour: 400,
            reserve_percent: 10,
            concurrent_per_installation: 30,
            concurrent_per_sandbox: 8,
            graphql_points_per_minute: 1000,
        }
    }
}

impl FileBudget {
    pub(super) fn build(self, origin: &str) -> Result<BudgetConfig, ConfigError> {
        let d = BudgetConfig::default();
        let budget = BudgetConfig {
            content_per_minute: self.content_per_minute.unwrap_or(d.content_per_minute),
            content_per_hour: self.content_per_hour.unwrap_or(d.content_per_hour),
            reserve_percent: self.reserve_percent.unwrap_or(d.reserve_percent),
            concurrent_per_installation: self
                .concurrent_per_installation
                .unwrap_or(d.concurrent_per_installation),
            concurrent_per_sandbox: self
                .concurrent_per_sandbox
                .unwrap_or(d.concurrent_per_sandbox),
            graphql_points_per_minute: self
                .graphql_points_per_minute
                .unwrap_or(d.graphql_points_per_minute),
        };
        if budget.content_per_minute == 0
            || budget.content_per_hour == 0
            || budget.reserve_percent > 90
            || budget.concurrent_per_installation == 0
            || budget.concurrent_per_sandbox == 0
            || budget.graphql_points_per_minute < 5
        {
            return Err(ConfigError(format!(
                "proxy config {origin}: [budget] content_per_minute, content_per_hour, concurrent_per_installation and concurrent_per_sandbox must be at least 1, graphql_points_per_minute at least 5 (a mutation's cost), reserve_percent at most 90"
            )));
        }
        Ok(budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_that_cannot_work_is_refused_in_one_line() {
        let read = |t: &str| toml::from_str::<FileBudget>(t).unwrap().build("p.toml");
        assert_eq!(read("").unwrap(), BudgetConfig::default());
        let e = read("graphql_points_per_minute = 4")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("proxy config p.toml: [budget]") && e.contains("at least 5"),
            "{e}"
        );
        assert!(read("concurrent_per_sandbox = 0").is_err());
        assert!(read("reserve_percent = 91").is_err());
        assert!(
            toml::from_str::<FileBudget>("per_minute = 1").is_err(),
            "unknown keys refused"
        );
    }
}
