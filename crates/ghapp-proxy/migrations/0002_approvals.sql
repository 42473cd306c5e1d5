-- Pull requests a sandbox in learning mode asked for, held for a human (design section 15).
-- status: pending, approved (pr_url set), denied (reason set), closed (reason set).
CREATE TABLE approvals (
    id BIGINT PRIMARY KEY,
    sandbox TEXT NOT NULL,
    repo TEXT NOT NULL,
    head TEXT NOT NULL,
    base TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    draft BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    pr_url TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_at BIGINT
);
