-- 00006 keeps the pushes drover has queued, one row per app and commit,
-- so a storm of deliveries of one commit (GitHub's redeliveries, or the
-- same signed body under new IDs) is answered from the store without a
-- round trip to Temporal for each.

-- +goose Up
CREATE TABLE queued_pushes (
	app        TEXT NOT NULL,
	commit_sha TEXT NOT NULL,
	queued_at  TIMESTAMP NOT NULL,
	PRIMARY KEY (app, commit_sha)
);

-- +goose Down
DROP TABLE queued_pushes;
