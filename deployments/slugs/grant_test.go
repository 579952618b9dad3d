package slugs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/drover/drover/deployments/slugs"
)

func TestGrants(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	// The config key rotated from "old key": what it signed still passes.
	g := slugs.NewGrants([]byte("config key"), []byte("old key"))
	digest := "aa"
	good := g.Sign(slugs.GrantDownload, digest, now.Add(time.Hour))
	other := slugs.NewGrants([]byte("another key"))
	old := slugs.NewGrants([]byte("old key"))
	cases := []struct {
		name                   string
		action, subject, grant string
		at                     time.Time
		ok                     bool
	}{
		{"valid", slugs.GrantDownload, digest, good, now, true},
		{"other digest", slugs.GrantDownload, "bb", good, now, false},
		{"other action", slugs.GrantUpload, digest, good, now, false},
		{"expired", slugs.GrantDownload, digest, good, now.Add(time.Hour), false},
		{"empty", slugs.GrantDownload, digest, "", now, false},
		{"malformed", slugs.GrantDownload, digest, "nodot", now, false},
		{"bad base64", slugs.GrantDownload, digest, "1900000000.!!", now, false},
		{"later expiry, same MAC", slugs.GrantDownload, digest, "9999999999" + good[len("1800003600"):], now, false},
		{"signed with the previous key", slugs.GrantDownload, digest, old.Sign(slugs.GrantDownload, digest, now.Add(time.Hour)), now, true},
		{"signed with another key", slugs.GrantDownload, digest, other.Sign(slugs.GrantDownload, digest, now.Add(time.Hour)), now, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := g.Check(c.action, c.subject, c.grant, c.at)
			if c.ok && err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !c.ok && !errors.Is(err, slugs.ErrGrant) {
				t.Fatalf("Check = %v, want ErrGrant", err)
			}
		})
	}
}
