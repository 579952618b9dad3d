package slugs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/deployments/slugs"
)

// testListAndDelete: a store lists what it holds, with when it was
// stored, and deletes a slug for good (twice is fine).
func testListAndDelete(t *testing.T, st slugs.Artifacts) {
	ctx := context.Background()
	before := time.Now().Add(-time.Minute)
	a, err := st.Put(ctx, strings.NewReader("slug a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Put(ctx, strings.NewReader("slug b"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range list {
		if s.Modified.Before(before) {
			t.Errorf("%s stored at %s, before the test began", s.Digest, s.Modified)
		}
		seen[s.Digest] = true
	}
	if len(list) != 2 || !seen[a] || !seen[b] {
		t.Fatalf("List = %+v; want %s and %s", list, a, b)
	}
	for range 2 {
		if err := st.Delete(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if st.Has(a) || !st.Has(b) {
		t.Fatalf("after deleting a: has a %v, has b %v", st.Has(a), st.Has(b))
	}
	if _, err := st.Path(a); err == nil {
		t.Fatal("a deleted slug still has a path")
	}
	if err := st.Delete(ctx, "../etc/passwd"); err == nil {
		t.Fatal("Delete took a digest that is a path")
	}
}

func TestStoreListAndDelete(t *testing.T) {
	st, _ := mustStore(t)
	testListAndDelete(t, st)
}

func TestS3ListAndDelete(t *testing.T) {
	s3 := mustS3(t)
	r := s3.mustReplica(t, s3.mustBucket(t), "slugs/")
	testListAndDelete(t, r.Artifacts)
}
