-- 00004 records one-off runs (`drover run`): who ran what, from which
-- release, where, and how it ended. Numbered per app, as run.N dynos.

-- +goose Up
CREATE TABLE runs (
	app        TEXT NOT NULL,
	number     INTEGER NOT NULL,
	command    TEXT NOT NULL,
	requested_by TEXT NOT NULL,
	region     TEXT NOT NULL,
	release    INTEGER NOT NULL,
	attached   BOOLEAN NOT NULL,
	started_at TIMESTAMP NOT NULL,
	ended_at   TIMESTAMP,
	exit_code  INTEGER,
	PRIMARY KEY (app, number)
);

-- +goose Down
DROP TABLE runs;
