package webhooks

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-github/v60/github"
)

// BenchmarkParse compares go-github's decode of a whole event with
// drover's own payload types, on GitHub's example payloads: what one
// delivery of a storm costs to parse, and the garbage it leaves.
func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct{ event, file string }{
		{"push", "push.payload.json"},
		{"check_suite", "check_suite.completed.payload.json"},
	} {
		payload, err := os.ReadFile(filepath.Join("..", "..", "shared", "fixtures", "github", tc.file))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.event+"/go-github", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := github.ParseWebHook(tc.event, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.event+"/drover", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if tc.event == "push" {
					_, err = parsePush(payload)
				} else {
					_, _, err = parseCI(tc.event, payload)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
