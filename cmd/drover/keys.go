package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/sqlstore"
)

// envPreviousConfigKeys names earlier config keys, comma-separated base64:
// they open what they sealed, and their slug grants still pass, while the
// key rotates.
const envPreviousConfigKeys = "DROVER_CONFIG_KEYS_PREVIOUS"

// KeysRotateOptions are drover keys rotate's flags.
type KeysRotateOptions struct {
	Database string
	Data     string
}

func newKeysCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage the config key that seals config vars"}
	cmd.AddCommand(newKeysRotateCmd(s, runKeysRotate))
	return cmd
}

func newKeysRotateCmd(s Streams, runF func(*cobra.Command, Streams, KeysRotateOptions) error) *cobra.Command {
	opts := KeysRotateOptions{}
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Re-seal every config vars row under the current config key",
		Long: `Re-seal every stored config vars row under the current config key
($DROVER_CONFIG_KEY, or the data dir's config-key file in dev): rows sealed
under a key in $` + envPreviousConfigKeys + `, rows sealed before key IDs,
and rows kept in clear from before config vars were sealed, which drover
refuses to read until this seals them. Rows already under the current key
are skipped, so it can run again; each app's rows change in one transaction.

It works on the database in --database, else $DATABASE_URL, else the data
dir's SQLite file (drover dev). To rotate: give every server and worker the
new key in ` + envPreviousConfigKeys + `; then make it $DROVER_CONFIG_KEY with the old
one in ` + envPreviousConfigKeys + `; run drover keys rotate with the same variables;
then drop the old key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runF(cmd, s, opts) },
	}
	cmd.Flags().StringVar(&opts.Database, "database", "", "database to re-seal: a postgres:// URL or a SQLite file (default $DATABASE_URL, else DATA/drover.db)")
	cmd.Flags().StringVar(&opts.Data, "data", ".drover", "drover dev's data dir: its SQLite file and config-key file")
	return cmd
}

func runKeysRotate(cmd *cobra.Command, s Streams, opts KeysRotateOptions) error {
	ctx := cmd.Context()
	dsn := opts.Database
	if dsn == "" {
		dsn = os.Getenv(envDatabaseURL)
	}
	if dsn == "" {
		dsn = filepath.Join(opts.Data, "drover.db")
	}
	if !strings.Contains(dsn, "://") {
		// Opening a SQLite file that is not there would make an empty one.
		if _, err := os.Stat(dsn); err != nil {
			return &hintError{err: fmt.Errorf("state store %s: %w", dsn, err),
				hint: "pass --database (a postgres:// URL or SQLite file), set " + envDatabaseURL + ", or --data for drover dev's data dir", code: exitUsage}
		}
	}
	// Never make a new key here: rows sealed under one nobody else has
	// would be lost to every server.
	keyFile := filepath.Join(opts.Data, "config-key")
	if os.Getenv(envConfigKey) == "" {
		if _, err := os.Stat(keyFile); err != nil {
			return &hintError{err: fmt.Errorf("%s is not set and %s is not there: no config key to seal with", envConfigKey, keyFile),
				hint: "set " + envConfigKey + " to the key drover's servers and workers have", code: exitUsage}
		}
	}
	key, err := deployments.LoadKey(envConfigKey, keyFile, os.Getenv)
	if err != nil {
		return err
	}
	previous, err := deployments.LoadPreviousKeys(envPreviousConfigKeys, os.Getenv)
	if err != nil {
		return &hintError{err: err, hint: "list the earlier keys as base64, separated by commas", code: exitUsage}
	}
	ring, err := deployments.OpenKeyRing(key, previous...)
	if err != nil {
		return err
	}
	st, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		return &hintError{err: fmt.Errorf("state store %s: %w", sqlstore.Redact(dsn), redactErr(err, dsn)), hint: "check the database and that it answers"}
	}
	defer st.Close()
	st.SetSealer(ring)
	fmt.Fprintf(s.Err, "re-sealing config vars in %s under key %s\n", sqlstore.Redact(dsn), ring.KeyID())
	res, err := st.ResealConfigVars(ctx, func(app string, resealed, rows int) {
		fmt.Fprintf(s.Err, "  %s: re-sealed %d of %d config rows\n", app, resealed, rows)
	})
	if err != nil {
		if errors.Is(err, deployments.ErrUnseal) {
			return &hintError{err: err, hint: "put the key that sealed it in " + envPreviousConfigKeys + " and run drover keys rotate again; apps listed above are done"}
		}
		return err
	}
	fmt.Fprintf(s.Out, "re-sealed %d of %d config rows in %d apps under key %s\n", res.Resealed, res.Rows, res.Apps, ring.KeyID())
	return nil
}
