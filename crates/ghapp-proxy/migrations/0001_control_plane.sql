-- The proxy's state (design section 14): one schema for SQLite and PostgreSQL.
-- Sandboxes added through the admin API. `spec` is the sandbox as JSON, the keys of a
-- [[sandbox]] table, its secret only as { "sha256": HEX }. A disconnected sandbox keeps its row
-- (so "NAME is disconnected" can be said) until it is added again.
CREATE TABLE sandboxes (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    disconnected_at BIGINT
);
-- Bumped by every change: replicas poll it and reload when it moves.
CREATE TABLE generation (
    id INTEGER PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO generation (id, value) VALUES (1, 0);
-- Webhook deliveries acted on, by X-GitHub-Delivery: a redelivery acts once. `summary` is what
-- the event does (JSON), so every replica acts on it.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    summary TEXT NOT NULL
);
