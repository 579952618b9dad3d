-- 00002 keeps an app's auto-deploy pause (a manual rollback's, or
-- `drover autodeploy pause`) in the ledger, so it outlives the app's
-- queue workflow, which ends when idle and starts afresh on the next push.

-- +goose Up
CREATE TABLE autodeploy_pauses (
	app       TEXT PRIMARY KEY,
	reason    TEXT NOT NULL,
	paused_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE autodeploy_pauses;
