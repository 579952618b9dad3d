-- 00007 keeps the deploys waiting for a commit's CI, one row per workflow,
-- so a CI webhook signals only those and one nobody waits on is answered
-- from the store, without a round trip to Temporal.

-- +goose Up
CREATE TABLE ci_waits (
	workflow_id TEXT NOT NULL PRIMARY KEY,
	repo        TEXT NOT NULL,
	commit_sha  TEXT NOT NULL,
	since       TIMESTAMP NOT NULL
);
CREATE INDEX ci_waits_commit ON ci_waits (commit_sha);

-- +goose Down
DROP TABLE ci_waits;
