-- GraphQL points per sandbox and window (span 60: the minute), shared by every replica: a
-- query costs 1, a mutation 5, as GitHub counts them for its secondary limit.
CREATE TABLE budget_points (
    sandbox TEXT NOT NULL,
    span BIGINT NOT NULL,
    win BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (sandbox, span, win)
);
