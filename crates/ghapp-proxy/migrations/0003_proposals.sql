-- What a sandbox in observe mode would have done (design section 15): a push (its ref updates,
-- commits, changed paths and diff) or a pull request (its title, body, head and base), recorded
-- instead of done. kind: push or pull_request; detail: JSON; diff: the push's diff, bounded;
-- bundle: the pushed commits as a git bundle (kept for a sandbox's newest proposals only).
CREATE TABLE proposals (
    id BIGINT PRIMARY KEY,
    sandbox TEXT NOT NULL,
    repo TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    diff TEXT NOT NULL,
    bundle BYTEA,
    created_at BIGINT NOT NULL
);
CREATE INDEX proposals_by_sandbox ON proposals (sandbox, id);
