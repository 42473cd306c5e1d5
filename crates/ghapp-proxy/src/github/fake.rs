//! A GitHub for the pipeline's unit tests: answers from tables, counts what was asked.

use super::*;

#[derive(Debug, Default)]
pub(crate) struct FakeHub {
    pub nodes: HashMap<String, Node>,
    pub compares: HashMap<String, Compare>,
    pub pulls: Vec<(RepoName, Pull)>,
    pub branches: HashMap<String, String>,
    pub asked: Mutex<Vec<String>>,
}

impl FakeHub {
    fn ask(&self, what: String) {
        self.asked.lock().unwrap().push(what);
    }
}

impl GitHub for FakeHub {
    fn nodes<'a>(
        &'a self,
        _: &'a Sandbox,
        ids: &'a [&'a str],
    ) -> Fut<'a, Result<HashMap<String, Node>, Refusal>> {
        self.ask(format!("nodes {}", ids.join(",")));
        let found = ids
            .iter()
            .filter_map(|id| Some(((*id).to_owned(), self.nodes.get(*id)?.clone())))
            .collect();
        Box::pin(async move { Ok(found) })
    }

    fn compare<'a>(
        &'a self,
        _: &'a Sandbox,
        _: &'a RepoName,
        base: &'a str,
        head: &'a str,
    ) -> Fut<'a, Result<Compare, Refusal>> {
        let key = format!("{base}...{head}");
        self.ask(format!("compare {key}"));
        let m = self.compares.get(&key).cloned().unwrap_or_default();
        Box::pin(async move { Ok(m) })
    }

    fn checks<'a>(
        &'a self,
        _: &'a RepoName,
        git_ref: &'a str,
    ) -> Fut<'a, Result<Vec<Check>, String>> {
        self.ask(format!("checks {git_ref}"));
        Box::pin(async move { Ok(Vec::new()) })
    }

    fn pull<'a>(
        &'a self,
        _: &'a Sandbox,
        repo: &'a RepoName,
        n: u64,
    ) -> Fut<'a, Result<Option<Pull>, Refusal>> {
        let p = self
            .pulls
            .iter()
            .find(|(r, p)| r == repo && p.number == n)
            .map(|(_, p)| p.clone());
        Box::pin(async move { Ok(p) })
    }

    fn open_pulls<'a>(
        &'a self,
        _: &'a Sandbox,
        repo: &'a RepoName,
        head: &'a str,
    ) -> Fut<'a, Result<Vec<Pull>, Refusal>> {
        self.ask(format!("open pulls {head}"));
        let v = self
            .pulls
            .iter()
            .filter(|(r, p)| r == repo && p.head == head && p.state == "open")
            .map(|(_, p)| p.clone())
            .collect();
        Box::pin(async move { Ok(v) })
    }

    fn branch<'a>(
        &'a self,
        _: &'a Sandbox,
        _: &'a RepoName,
        name: &'a str,
    ) -> Fut<'a, Result<Option<String>, Refusal>> {
        self.ask(format!("branch {name}"));
        let b = self.branches.get(name).cloned();
        Box::pin(async move { Ok(b) })
    }

    fn create_pull<'a>(
        &'a self,
        _: &'a Sandbox,
        _: &'a RepoName,
        ask: &'a Value,
    ) -> Fut<'a, Result<(StatusCode, Value), Refusal>> {
        self.ask(format!("create pull {ask}"));
        Box::pin(async move { Ok((StatusCode::CREATED, json!({"html_url": "https://x/pull/1"}))) })
    }

    fn file<'a>(
        &'a self,
        _: &'a Sandbox,
        _: &'a RepoName,
        path: &'a str,
        _: &'a str,
        _: usize,
    ) -> Fut<'a, Result<Option<String>, Refusal>> {
        self.ask(format!("file {path}"));
        Box::pin(async move { Ok(None) })
    }

    fn request_reviewers<'a>(
        &'a self,
        _: &'a Sandbox,
        _: &'a RepoName,
        n: u64,
        ask: &'a Value,
    ) -> Fut<'a, Result<(StatusCode, Value), Refusal>> {
        self.ask(format!("request reviewers {n} {ask}"));
        Box::pin(async move { Ok((StatusCode::CREATED, json!({}))) })
    }
}
