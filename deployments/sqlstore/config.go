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

// SetSealer makes the store keep config vars encrypted with sealer, and
// open rows sealed under the previous keys of a deployments.KeyRing. From
// then on a row kept in clear is refused (deployments.ErrPlaintext) until
// ResealConfigVars seals it.
func (s *Store) SetSealer(sealer deployments.Sealer) {
	if sealer == nil {
		s.sealer = nil
		return
	}
	s.sealer = deployments.NewKeyRing(sealer)
}

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
	return s.decodeVarsFrom(app, version, data, into, false)
}

// decodeVarsFrom opens one config vars column. A row in clear is refused
// once the store seals, unless clearOK (re-sealing it).
func (s *Store) decodeVarsFrom(app string, version int, data string, into *map[string]string, clearOK bool) error {
	plain := []byte(data)
	v2, isV2 := strings.CutPrefix(data, sealedV2)
	v1, isV1 := strings.CutPrefix(data, sealedV1)
	switch {
	case (isV1 || isV2) && s.sealer == nil:
		return fmt.Errorf("config v%d of %q is encrypted and this store has no key: %w", version, app, deployments.ErrUnseal)
	case isV2:
		id, body, _ := strings.Cut(v2, ":")
		key, ok := s.sealer.Key(id)
		if !ok {
			return fmt.Errorf("config v%d of %q was sealed with key %s, which is neither the current config key (%s) nor a previous one; give drover that key as a previous one: %w",
				version, app, id, s.sealer.KeyID(), deployments.ErrUnseal)
		}
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return fmt.Errorf("config v%d of %q: %w", version, app, deployments.ErrUnseal)
		}
		if plain, err = key.Open(raw, configAAD(app, version)); err != nil {
			return fmt.Errorf("config v%d of %q under key %s: %w", version, app, id, err)
		}
	case isV1:
		// Sealed before key IDs and associated data: any key may have.
		raw, err := base64.StdEncoding.DecodeString(v1)
		if err != nil {
			return fmt.Errorf("config v%d of %q: %w", version, app, deployments.ErrUnseal)
		}
		if plain, err = s.sealer.OpenAny(raw, nil); err != nil {
			return fmt.Errorf("config v%d of %q (sealed before key IDs) opens with none of keys %s: %w", version, app, strings.Join(s.sealer.KeyIDs(), ", "), err)
		}
	case s.sealer != nil && !clearOK:
		return fmt.Errorf("config v%d of %q is stored in clear and this store seals config vars; run `drover keys rotate` to seal it: %w", version, app, deployments.ErrPlaintext)
	}
	return json.Unmarshal(plain, into)
}

// ResealProgress is told about each app ResealConfigVars finished: how
// many of its config rows it re-sealed and how many it had.
type ResealProgress func(app string, resealed, rows int)

// ResealResult counts what ResealConfigVars did.
type ResealResult struct {
	Apps, Rows, Resealed int
}

// ResealConfigVars seals every config vars row under the store's current
// key: rows sealed under a previous key, rows sealed before key IDs, and
// rows kept in clear. Rows already under the current key are left alone,
// so running it again re-seals nothing. Each app's rows change in one
// transaction under the app's lock, so a failure leaves every app either
// done or untouched; the error names the app, version and key.
func (s *Store) ResealConfigVars(ctx context.Context, progress ResealProgress) (ResealResult, error) {
	var res ResealResult
	if s.sealer == nil {
		return res, errors.New("reseal config vars: the store has no config key")
	}
	current := sealedV2 + s.sealer.KeyID() + ":"
	var apps []string
	rows, err := s.conn().query(ctx, `SELECT DISTINCT app FROM config_vars ORDER BY app`)
	if err != nil {
		return res, fmt.Errorf("reseal config vars: list apps: %w", err)
	}
	for rows.Next() {
		var app string
		if err := rows.Scan(&app); err != nil {
			rows.Close()
			return res, fmt.Errorf("reseal config vars: list apps: %w", err)
		}
		apps = append(apps, app)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("reseal config vars: list apps: %w", err)
	}
	for _, app := range apps {
		var n, resealed int
		err := s.tx(ctx, func(tx conn) error {
			if err := tx.lockApp(ctx, app); err != nil {
				return err
			}
			type row struct {
				version int
				data    string
			}
			var all []row
			rs, err := tx.query(ctx, `SELECT version, vars FROM config_vars WHERE app = ? ORDER BY version`, app)
			if err != nil {
				return err
			}
			for rs.Next() {
				var r row
				if err := rs.Scan(&r.version, &r.data); err != nil {
					rs.Close()
					return err
				}
				all = append(all, r)
			}
			rs.Close()
			if err := rs.Err(); err != nil {
				return err
			}
			n = len(all)
			for _, r := range all {
				if strings.HasPrefix(r.data, current) {
					continue
				}
				vars := map[string]string{}
				if err := s.decodeVarsFrom(app, r.version, r.data, &vars, true); err != nil {
					return err
				}
				enc, err := s.encodeVars(app, r.version, vars)
				if err != nil {
					return err
				}
				if _, err := tx.exec(ctx, `UPDATE config_vars SET vars = ? WHERE app = ? AND version = ?`, enc, app, r.version); err != nil {
					return err
				}
				resealed++
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("reseal config vars of %q: %w", app, err)
		}
		res.Apps++
		res.Rows += n
		res.Resealed += resealed
		if progress != nil {
			progress(app, resealed, n)
		}
	}
	return res, nil
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
