//! A push through the proxy: its command section read and decided on the ref names, then the
//! pack streamed on, or inspected (`inspect`) with the verdict coming back beside GitHub's
//! answer; a refusal answered the git way.

use std::sync::atomic::Ordering;

use hyper::body::Incoming;
use hyper::{Response, StatusCode};

use crate::audit::{Decision, Pending, RefUpdate};
use crate::respond::Refusal;
use crate::transport::Origin;
use crate::{Body, Proxy, body, inspect, policy, respond, upstream};

impl Proxy {
    /// Reads a push's command section and decides it on its ref names: the body to forward
    /// (the section, then the rest streamed; with inspection, the pack held back by its
    /// trailer until the verdict that comes with it), or the answer (git's report-status for
    /// a refused push).
    pub(crate) async fn push_body(
        &self,
        mut body: Incoming,
        o: &Origin,
        plan: &policy::Plan,
        p: &mut Pending,
    ) -> Result<(reqwest::Body, Option<inspect::Verdict>), Response<Body>> {
        let sb = &o.sandbox;
        let section =
            match body::command_section(&mut body, &self.gate.limits, &self.gate.budget).await {
                Ok(s) => s,
                Err(r) => return Err(p.refuse(r)),
            };
        p.event.ref_updates = section
            .commands
            .commands
            .iter()
            .map(|c| RefUpdate {
                old: c.old.clone(),
                new: c.new.clone(),
                refname: c.refname.clone(),
            })
            .collect();
        p.bytes_in
            .fetch_add(section.bytes.len() as u64, Ordering::Relaxed);
        if let Err(refused) = policy::push(sb, &section.commands) {
            drop(section);
            p.bytes_in
                .fetch_add(body::drain(body).await, Ordering::Relaxed);
            return Err(push_refused(p, refused));
        }
        if sb.cfg.mode == crate::config::Mode::Observe {
            return Err(self.observe_push(section, body, o, plan, p).await);
        }
        // Deletes and git's probe carry no pack: nothing to inspect.
        let has_pack = section.commands.commands.iter().any(|c| !c.is_delete());
        if !sb.cfg.rules.inspect || !has_pack {
            return Ok((
                upstream::prefixed(section.bytes, body, p.bytes_in.clone()),
                None,
            ));
        }
        let push = match self.git_push(sb, &section.commands, plan).await {
            Ok(push) => push,
            Err(r) => return Err(p.refuse(r)),
        };
        let consumed = section.commands.consumed;
        let bytes = section.bytes;
        match inspect::start(
            self.git.clone(),
            push,
            bytes,
            consumed,
            body,
            p.bytes_in.clone(),
        )
        .await
        {
            Ok((b, v)) => Ok((b, Some(v))),
            Err(why) => {
                tracing::warn!("push inspection cannot start: {why}");
                Err(p.refuse(Refusal::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot inspect the push: {why}"),
                )))
            }
        }
    }

    /// What the proxy's git needs to read a push of `commands` to `plan`'s repository: its
    /// URL, and the sandbox's token for it.
    pub(crate) async fn git_push(
        &self,
        sb: &std::sync::Arc<crate::sandbox::Sandbox>,
        commands: &ghapp_gitproto::receive_pack::Commands,
        plan: &policy::Plan,
    ) -> Result<inspect::Push, Refusal> {
        let token = self.token(sb, plan.repo.owner()).await?;
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
        })
    }
}

/// A push refused: git's report-status answer, the reason in the audit.
pub(crate) fn push_refused(p: &mut Pending, refused: policy::PushRefusal) -> Response<Body> {
    p.event.decision = Decision::Deny;
    p.event.reason = refused.reason;
    p.event.status = 200;
    p.bytes_out = refused.report.len() as u64;
    respond::push_report(refused.report)
}
