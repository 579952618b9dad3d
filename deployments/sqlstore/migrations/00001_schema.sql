-- 00001 is the schema drover had before it used numbered migrations,
-- exactly as that code made it. Every statement keeps IF NOT EXISTS, so on
-- a database that code already made this is a no-op that goose records as
-- applied, and every row is kept.
--
-- No Down section: undoing the first migration would drop the whole
-- ledger, which no command should do.

-- +goose Up
CREATE TABLE IF NOT EXISTS apps (
	name       TEXT PRIMARY KEY,
	pipeline   TEXT NOT NULL,
	stage      TEXT NOT NULL,
	repo       TEXT NOT NULL,
	branch     TEXT NOT NULL,
	regions    TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
	app            TEXT NOT NULL,
	version        INTEGER NOT NULL,
	status         TEXT NOT NULL,
	slug           TEXT NOT NULL,
	commit_sha     TEXT NOT NULL,
	config_version INTEGER NOT NULL,
	formation      TEXT NOT NULL,
	procfile       TEXT NOT NULL,
	description    TEXT NOT NULL,
	operation      TEXT NOT NULL,
	reason         TEXT NOT NULL,
	output         TEXT NOT NULL,
	regions        TEXT NOT NULL,
	created_at     TIMESTAMP NOT NULL,
	updated_at     TIMESTAMP NOT NULL,
	PRIMARY KEY (app, version)
);
CREATE INDEX IF NOT EXISTS releases_operation ON releases (app, operation);
CREATE TABLE IF NOT EXISTS config_vars (
	app        TEXT NOT NULL,
	version    INTEGER NOT NULL,
	vars       TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (app, version)
);
CREATE TABLE IF NOT EXISTS builds (
	repo       TEXT NOT NULL,
	commit_sha TEXT NOT NULL,
	slug       TEXT NOT NULL,
	buildpack  TEXT NOT NULL,
	procfile   TEXT NOT NULL,
	output     TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (repo, commit_sha)
);
CREATE TABLE IF NOT EXISTS review_apps (
	app          TEXT PRIMARY KEY,
	pipeline     TEXT NOT NULL,
	repo         TEXT NOT NULL,
	pr           INTEGER NOT NULL,
	title        TEXT NOT NULL,
	branch       TEXT NOT NULL,
	commit_sha   TEXT NOT NULL,
	url          TEXT NOT NULL,
	fork         BOOLEAN NOT NULL,
	created_at   TIMESTAMP NOT NULL,
	deployed_at  TIMESTAMP NULL,
	destroyed_at TIMESTAMP NULL,
	reason       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS review_apps_pipeline ON review_apps (pipeline);
CREATE TABLE IF NOT EXISTS deliveries (
	id          TEXT PRIMARY KEY,
	event       TEXT NOT NULL,
	received_at TIMESTAMP NOT NULL
);
