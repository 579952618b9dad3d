package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/pipelines"
)

// SetSealer makes the store keep config vars encrypted with sealer. Rows
// written before, in clear, are still read, and sealed on the next change.
func (s *Store) SetSealer(sealer deployments.Sealer) { s.sealer = sealer }

// Sealed vars columns. v2, written now, is "sealed:v2:<key id>:" and the
// base64 of nonce || ciphertext, authenticated with the app and version
// (configAAD). v1, from before, had neither and is still read.
const (
	sealedV1 = "sealed:v1:"
	sealedV2 = "sealed:v2:"
)

// configAAD binds sealed config vars to their app and version, so a row
// copied to another app, or to another version, does not open.
func configAAD(app string, version int) []byte {
	return []byte(fmt.Sprintf("drover config vars\x00%s\x00%d", app, version))
}

func (s *Store) encodeVars(app string, version int, vars map[string]string) (string, error) {
	plain, err := json.Marshal(vars)
	if err != nil {
		return "", err
	}
	if s.sealer == nil {
		return string(plain), nil
	}
	sealed, err := s.sealer.Seal(plain, configAAD(app, version))
	if err != nil {
		return "", err
	}
	return sealedV2 + s.sealer.KeyID() + ":" + base64.StdEncoding.EncodeToString(sealed), nil
}

func (s *Store) decodeVars(app string, version int, data string, into *map[string]string) error {
	plain := []byte(data)
	var sealed string
	var aad []byte
	if rest, ok := strings.CutPrefix(data, sealedV2); ok {
		id, body, _ := strings.Cut(rest, ":")
		if s.sealer != nil && id != s.sealer.KeyID() {
			return fmt.Errorf("config v%d of %q was sealed with key %s; this store has key %s: %w", version, app, id, s.sealer.KeyID(), deployments.ErrUnseal)
		}
		sealed, aad = body, configAAD(app, version)
	} else if rest, ok := strings.CutPrefix(data, sealedV1); ok {
		sealed = rest
	}
	if sealed != "" {
		if s.sealer == nil {
			return fmt.Errorf("config vars are encrypted and this store has no key: %w", deployments.ErrUnseal)
		}
		raw, err := base64.StdEncoding.DecodeString(sealed)
		if err != nil {
			return deployments.ErrUnseal
		}
		if plain, err = s.sealer.Open(raw, aad); err != nil {
			return err
		}
	}
	return json.Unmarshal(plain, into)
}

func (s *Store) ConfigVars(ctx context.Context, app string) (pipelines.ConfigVars, error) {
	return s.configVars(ctx, `SELECT version, vars FROM config_vars WHERE app = ? ORDER BY version DESC LIMIT 1`, app)
}

func (s *Store) ConfigVarsAt(ctx context.Context, app string, version int) (pipelines.ConfigVars, error) {
	if version == 0 {
		return pipelines.ConfigVars{Vars: map[string]string{}}, nil
	}
	cv, err := s.configVars(ctx, `SELECT version, vars FROM config_vars WHERE app = ? AND version = ?`, app, version)
	if err == nil && cv.Version == 0 {
		return cv, fmt.Errorf("config v%d of %q: %w", version, app, pipelines.ErrNotFound)
	}
	return cv, err
}

func (s *Store) configVars(ctx context.Context, q string, args ...any) (pipelines.ConfigVars, error) {
	cv := pipelines.ConfigVars{Vars: map[string]string{}}
	var data string
	err := s.conn().queryRow(ctx, q, args...).Scan(&cv.Version, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return cv, nil
	}
	if err != nil {
		return cv, fmt.Errorf("config vars: %w", err)
	}
	if err := s.decodeVars(args[0].(string), cv.Version, data, &cv.Vars); err != nil {
		return cv, fmt.Errorf("config vars: %w", err)
	}
	return cv, nil
}

func (s *Store) SetConfigVars(ctx context.Context, app string, set map[string]string, unset []string) (pipelines.ConfigVars, error) {
	var out pipelines.ConfigVars
	err := s.tx(ctx, func(tx conn) error {
		cur := pipelines.ConfigVars{Vars: map[string]string{}}
		var data string
		if err := tx.lockApp(ctx, app); err != nil {
			return err
		}
		err := tx.queryRow(ctx, `SELECT version, vars FROM config_vars WHERE app = ? ORDER BY version DESC LIMIT 1`, app).Scan(&cur.Version, &data)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if err := s.decodeVars(app, cur.Version, data, &cur.Vars); err != nil {
				return err
			}
		}
		for k, v := range set {
			cur.Vars[k] = v
		}
		for _, k := range unset {
			delete(cur.Vars, k)
		}
		cur.Version++
		enc, err := s.encodeVars(app, cur.Version, cur.Vars)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO config_vars (app, version, vars, created_at) VALUES (?, ?, ?, ?)`,
			app, cur.Version, string(enc), s.now()); err != nil {
			return err
		}
		out = cur
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("set config vars of %q: %w", app, err)
	}
	return out, nil
}
