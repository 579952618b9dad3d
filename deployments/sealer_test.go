package deployments_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/deployments"
)

func TestAESGCM(t *testing.T) {
	s, err := deployments.NewAESGCM(bytes.Repeat([]byte{1}, deployments.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("app a v1")
	a, _ := s.Seal([]byte("secret"), aad)
	b, _ := s.Seal([]byte("secret"), aad)
	if bytes.Equal(a, b) || bytes.Contains(a, []byte("secret")) {
		t.Fatal("sealing must use a fresh nonce and hide the plaintext")
	}
	if got, err := s.Open(a, aad); err != nil || string(got) != "secret" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(a, []byte("app b v1")); !errors.Is(err, deployments.ErrUnseal) {
		t.Fatalf("opened with another aad: %v, want ErrUnseal", err)
	}
	if len(s.KeyID()) != 8 || strings.Contains(string(bytes.Repeat([]byte{1}, deployments.KeySize)), s.KeyID()) {
		t.Fatalf("key id %q", s.KeyID())
	}
	a[len(a)-1] ^= 1
	if _, err := s.Open(a, aad); !errors.Is(err, deployments.ErrUnseal) {
		t.Fatalf("altered data: %v, want ErrUnseal", err)
	}
	if _, err := deployments.NewAESGCM([]byte("short")); err == nil {
		t.Fatal("a short key must be refused")
	}
}

func TestLoadKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config-key")
	none := func(string) string { return "" }
	k1, err := deployments.LoadKey("DROVER_CONFIG_KEY", file, none)
	if err != nil || len(k1) != deployments.KeySize {
		t.Fatalf("new key = %d bytes, %v", len(k1), err)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	k2, err := deployments.LoadKey("DROVER_CONFIG_KEY", file, none)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatal("the key file must be reused")
	}
	fromEnv := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, deployments.KeySize))
	k3, err := deployments.LoadKey("DROVER_CONFIG_KEY", file, func(string) string { return fromEnv })
	if err != nil || k3[0] != 9 {
		t.Fatalf("env key = %v, %v", k3, err)
	}
	if _, err := deployments.LoadKey("DROVER_CONFIG_KEY", file, func(string) string { return "not-base64!" }); err == nil || !strings.Contains(err.Error(), "$DROVER_CONFIG_KEY") {
		t.Fatalf("bad env key: %v", err)
	}
}

func TestKeyRing(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, deployments.KeySize), bytes.Repeat([]byte{2}, deployments.KeySize)
	b64 := base64.StdEncoding.EncodeToString
	prev, err := deployments.LoadPreviousKeys("PREV", func(string) string { return b64(oldKey) + ", " + b64(newKey) })
	if err != nil || len(prev) != 2 {
		t.Fatalf("previous keys = %d, %v", len(prev), err)
	}
	ring, err := deployments.OpenKeyRing(newKey, prev...)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := deployments.NewAESGCM(oldKey)
	cur, _ := deployments.NewAESGCM(newKey)
	// The current key seals; a previous key equal to it is kept once.
	if ring.KeyID() != cur.KeyID() || strings.Join(ring.KeyIDs(), ",") != cur.KeyID()+","+old.KeyID() {
		t.Fatalf("ring ids = %s (current %s), want %s then %s", ring.KeyIDs(), ring.KeyID(), cur.KeyID(), old.KeyID())
	}
	sealed, _ := ring.Seal([]byte("x"), nil)
	if _, err := cur.Open(sealed, nil); err != nil {
		t.Fatalf("the ring sealed with another key than its current one: %v", err)
	}
	byOld, _ := old.Seal([]byte("y"), nil)
	if k, ok := ring.Key(old.KeyID()); !ok || k.KeyID() != old.KeyID() {
		t.Fatalf("Key(%s) = %v, %v", old.KeyID(), k, ok)
	}
	if got, err := ring.OpenAny(byOld, nil); err != nil || string(got) != "y" {
		t.Fatalf("OpenAny of the old key's data = %q, %v", got, err)
	}
	if _, ok := ring.Key("00000000"); ok {
		t.Fatal("the ring has a key it was not given")
	}
	for _, bad := range []string{"nope", b64(oldKey) + ",short"} {
		if _, err := deployments.LoadPreviousKeys("PREV", func(string) string { return bad }); err == nil || !strings.Contains(err.Error(), "$PREV entry") {
			t.Errorf("previous keys %q: %v, want an error naming the entry", bad, err)
		}
	}
}
