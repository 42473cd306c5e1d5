//! A push: its command section read and its ref moves decided on their names; the trust mode
//! on the heads of held and open pull requests; then the pack streamed on, or inspected
//! ([`crate::inspect`]) with the verdict coming back beside GitHub's answer. A refusal is
//! answered the git way (report-status), so git prints `! [remote rejected]` with the reason.

use hyper::Response;
use hyper::body::Incoming;

use super::{Answer, DataPlane, Req};
use crate::audit::{Decision, Meter, Outcome, RefUpdate};
use crate::body;
use crate::config::Mode;
use crate::inspect;
use crate::policy::write::{self, Write};
use crate::policy::{Plan, PushRefusal, push_refusal};
use crate::respond::{self, Refusal};

/// A push allowed on its command section: the body to send and the verdict to come.
pub(super) struct Pushed {
    pub body: reqwest::Body,
    pub verdict: Option<inspect::Verdict>,
    pub ref_updates: Vec<RefUpdate>,
}

/// A push refused: git's report-status answer, the reason in the audit.
pub(super) fn refused(refusal: PushRefusal, outcome: Outcome) -> Answer {
    let outcome = Outcome {
        decision: Decision::Deny,
        reason: refusal.reason,
        status: 200,
        ..outcome
    };
    let resp: Response<respond::Body> = respond::push_report(refusal.report);
    (resp, outcome)
}

impl DataPlane {
    /// Reads a push's command section and decides it on its ref names and the trust mode: the
    /// body to forward (the section, then the rest streamed; with inspection, the pack held
    /// back by its trailer until the verdict that comes with it), or the answer.
    pub(super) async fn push(
        &self,
        mut body: Incoming,
        r: &Req,
        plan: &Plan,
        meter: &Meter,
    ) -> Result<Pushed, Answer> {
        let sb = r.sb();
        let section =
            match body::command_section(&mut body, &self.gate.limits, &self.gate.budget).await {
                Ok(s) => s,
                Err(refusal) => return Err(r.refuse(refusal)),
            };
        meter.read(section.bytes.len() as u64);
        let cmds = &section.commands;
        let ref_updates: Vec<RefUpdate> = cmds
            .commands
            .iter()
            .map(|c| RefUpdate {
                old: c.old.clone(),
                new: c.new.clone(),
                refname: c.refname.clone(),
            })
            .collect();
        let outcome = Outcome {
            ref_updates: ref_updates.clone(),
            ..r.outcome()
        };
        // The ref names first, each ref's commands as their combined move.
        let names = Write {
            refs: write::moves(&cmds.commands),
            atomic: cmds.has_capability("atomic"),
            ..Write::default()
        };
        if let Err(refusal) = write::decide(sb, &names) {
            let report = push_refusal(sb, cmds, &refusal);
            drop(section);
            meter.read(body::drain(body).await);
            return Err(refused(report, outcome));
        }
        if sb.cfg.mode == Mode::Observe {
            return Err(self
                .observe_push(section, body, r, plan, meter, outcome)
                .await);
        }
        // The trust mode on the heads of held and open pull requests.
        let refnames: Vec<String> = names.refs.iter().map(|m| m.refname.clone()).collect();
        let growth = match self.push_heads(sb, &plan.repo, &refnames).await {
            Ok(Ok(g)) => g,
            Ok(Err((refname, why))) => {
                let refusal = write::Refused {
                    rule: "mode",
                    refs: names
                        .refs
                        .iter()
                        .map(|m| {
                            let why = if m.refname == refname {
                                format!("{why}; rule mode")
                            } else {
                                "push refused: another ref in this push is not allowed".into()
                            };
                            (m.refname.clone(), why)
                        })
                        .collect(),
                };
                let report = push_refusal(sb, cmds, &refusal);
                drop(section);
                meter.read(body::drain(body).await);
                return Err(refused(report, outcome));
            }
            Err(refusal) => {
                meter.read(body::drain_refused(body).await);
                let (resp, o) = r.refuse(refusal);
                return Err((resp, Outcome { ref_updates, ..o }));
            }
        };
        // Deletes and git's probe carry no pack: nothing to inspect.
        let has_pack = cmds.commands.iter().any(|c| !c.is_delete());
        if !sb.cfg.rules.inspect || !has_pack {
            if !growth.is_empty() {
                let why = "assisted mode measures a push to an open pull request's head, which needs inspect = true";
                let refusal = write::whole("mode", why.into(), &refnames);
                let report = push_refusal(sb, cmds, &refusal);
                drop(section);
                meter.read(body::drain(body).await);
                return Err(refused(report, outcome));
            }
            return Ok(Pushed {
                body: body::prefixed(section.bytes, body, meter.bytes_in.clone()),
                verdict: None,
                ref_updates,
            });
        }
        let mut push = match self.git_push(r, cmds, plan).await {
            Ok(push) => push,
            Err(refusal) => return Err(r.refuse(refusal)),
        };
        push.growth = growth;
        let consumed = cmds.consumed;
        match inspect::start(
            self.git.clone(),
            push,
            section.bytes,
            consumed,
            body,
            meter.bytes_in.clone(),
        )
        .await
        {
            Ok((b, v)) => Ok(Pushed {
                body: b,
                verdict: Some(v),
                ref_updates,
            }),
            Err(why) => {
                tracing::warn!("push inspection cannot start: {why}");
                let (resp, o) = r.refuse(Refusal::text(
                    hyper::StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot inspect the push: {why}"),
                ));
                Err((resp, Outcome { ref_updates, ..o }))
            }
        }
    }

    /// What the proxy's git needs to read a push of `commands` to `plan`'s repository: its
    /// URL, and the sandbox's token for it.
    pub(super) async fn git_push(
        &self,
        r: &Req,
        commands: &ghapp_gitproto::receive_pack::Commands,
        plan: &Plan,
    ) -> Result<inspect::Push, Refusal> {
        let sb = r.sb();
        let token = self.tokens.token(sb, plan.repo.owner()).await?;
        Ok(inspect::Push {
            sb: sb.clone(),
            commands: commands.clone(),
            fetch_url: plan
                .url
                .as_str()
                .trim_end_matches("/git-receive-pack")
                .to_owned(),
            host: self.hosts.git.clone(),
            repo: plan.repo.clone(),
            auth: inspect::Auth::basic(token.token.expose()),
            idle: self.gate.limits.idle_timeout,
            max_inflated: self.gate.limits.max_inflated_bytes,
            growth: Vec::new(),
        })
    }
}
