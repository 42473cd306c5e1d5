//! The GitHub review flavour of learning and assisted (`reviewers`): once GitHub has opened a
//! pull request as a draft, its reviewers are requested: the configured ones, and with
//! `@codeowners` the owners of the changed paths under the base branch's CODEOWNERS.

use ghapp_gitproto::repo::RepoName;
use serde_json::json;

use super::DataPlane;
use crate::config::CODEOWNERS;
use crate::policy::codeowners;
use crate::sandbox::Sandbox;

/// The most reviewers requested of one pull request (GitHub's limit for one request).
const MAX_REVIEWERS: usize = 15;

impl DataPlane {
    /// The review flavour: the drafts GitHub just opened for `heads` get the sandbox's
    /// reviewers requested (with `@codeowners`, also the owners of the changed paths under
    /// the base branch's CODEOWNERS). What was done, for the audit's reason; a failure is said
    /// there and logged (the draft stays a draft: nothing merges without a person).
    pub(super) async fn request_reviews(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        heads: &[String],
    ) -> String {
        let mut said = Vec::new();
        for head in heads {
            let pulls = match self.github.open_pulls(sb, repo, head).await {
                Ok(p) => p,
                Err(e) => {
                    said.push(format!("cannot find the draft of {head}: {}", e.message));
                    continue;
                }
            };
            for p in pulls {
                let mut names: Vec<String> = sb
                    .cfg
                    .reviewers
                    .iter()
                    .filter(|r| *r != CODEOWNERS)
                    .cloned()
                    .collect();
                if sb.cfg.reviewers.iter().any(|r| r == CODEOWNERS) {
                    match self.code_owners(sb, repo, &p.base, head).await {
                        Ok(found) => {
                            for o in found {
                                if !names.contains(&o) {
                                    names.push(o);
                                }
                            }
                        }
                        Err(why) => said.push(why),
                    }
                }
                // GitHub takes at most 15 at once: the configured ones first, then code owners.
                names.truncate(MAX_REVIEWERS);
                let (teams, users): (Vec<&String>, Vec<&String>) =
                    names.iter().partition(|r| r.contains('/'));
                // A team is requested by its slug, in the repository's own organization only.
                let (ours, others): (Vec<&String>, Vec<&String>) =
                    teams.into_iter().partition(|t| {
                        t.split_once('/')
                            .is_some_and(|(org, _)| org.eq_ignore_ascii_case(repo.owner()))
                    });
                if !others.is_empty() {
                    said.push(format!(
                        "teams of another organization not requested: {}",
                        others
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if users.is_empty() && ours.is_empty() {
                    said.push(format!("draft #{} has no one to request", p.number));
                    continue;
                }
                let slugs: Vec<&str> = ours
                    .iter()
                    .filter_map(|t| t.split_once('/').map(|(_, s)| s))
                    .collect();
                let ask = json!({ "reviewers": users, "team_reviewers": slugs });
                let who = users
                    .iter()
                    .map(|s| s.as_str())
                    .chain(ours.iter().map(|s| s.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ");
                match self
                    .github
                    .request_reviewers(sb, repo, p.number, &ask)
                    .await
                {
                    Ok((s, _)) if s.is_success() => {
                        said.push(format!("draft #{} opened for review by {who}", p.number));
                    }
                    Ok((s, v)) => said.push(format!(
                        "requesting reviewers of #{} failed: GitHub answered {s}: {}",
                        p.number,
                        v["message"].as_str().unwrap_or("")
                    )),
                    Err(e) => said.push(format!(
                        "requesting reviewers of #{} failed: {}",
                        p.number, e.message
                    )),
                }
            }
        }
        let said = said.join("; ");
        if said.contains("failed") || said.contains("cannot") {
            tracing::warn!(sandbox = %sb.name(), repo = %repo, "{said}");
        }
        said
    }

    /// The code owners of what `base...head` changes, under the CODEOWNERS file of `base`
    /// (where GitHub looks for it, in its order), or why they cannot be known.
    async fn code_owners(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        base: &str,
        head: &str,
    ) -> Result<Vec<String>, String> {
        let mut text = None;
        for place in codeowners::PLACES {
            match self
                .github
                .file(sb, repo, place, base, codeowners::MAX_BYTES)
                .await
            {
                Ok(Some(t)) => {
                    text = Some(t);
                    break;
                }
                Ok(None) => {}
                Err(e) => return Err(format!("cannot read {place}: {}", e.message)),
            }
        }
        let Some(text) = text else {
            return Err(format!("{repo} has no CODEOWNERS on {base}"));
        };
        let paths = self
            .github
            .compare(sb, repo, base, head)
            .await
            .map_err(|e| format!("cannot compare {base}...{head}: {}", e.message))?
            .paths;
        let (users, teams) = codeowners::owners(&codeowners::parse(&text), &paths);
        Ok(users.into_iter().chain(teams).collect())
    }
}
