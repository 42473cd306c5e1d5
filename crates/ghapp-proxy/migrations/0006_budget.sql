-- Content-creating requests per sandbox and window (span 60: the minute, 3600: the hour,
-- win: the window's number since the epoch), shared by every replica.
CREATE TABLE budget_use (
    sandbox TEXT NOT NULL,
    span BIGINT NOT NULL,
    win BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (sandbox, span, win)
);
