-- 00005 keeps the output of steps still running (a build, a release
-- phase), so whoever follows an operation sees it as it is written, from
-- any server. A step's final output is recorded where it always was (the
-- build, the release); its live row goes when it ends.

-- +goose Up
CREATE TABLE live_output (
	step       TEXT PRIMARY KEY,
	output     TEXT NOT NULL,
	total      BIGINT NOT NULL,
	updated_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE live_output;
