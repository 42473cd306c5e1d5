-- An approval is pinned to what the person was shown: the head and base commits when the pull
-- request was held. Approving opens the pull request only while the head is still there.
ALTER TABLE approvals ADD COLUMN head_sha TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN base_sha TEXT NOT NULL DEFAULT '';
