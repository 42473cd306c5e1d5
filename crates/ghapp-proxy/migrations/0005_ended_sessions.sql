-- Approvals-page sessions a person signed out of: a session is signed, not stored, so ending
-- one before it expires means remembering it here until then (every replica checks).
CREATE TABLE ended_sessions (
    session TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
