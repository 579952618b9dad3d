-- 00003 records a release phase's exit code as its own fact. Before, "it
-- already ran" was read from a header at the start of the kept output,
-- which keeps only its last 1 MiB: a longer output lost the header, and a
-- retry ran the release phase (migrations) again. NULL: it has not run.

-- +goose Up
ALTER TABLE releases ADD COLUMN release_phase_exit INTEGER;

-- +goose Down
ALTER TABLE releases DROP COLUMN release_phase_exit;
