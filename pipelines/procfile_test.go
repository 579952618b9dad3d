package pipelines_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/drover/drover/pipelines"
)

func TestParseProcfile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    pipelines.Procfile
		wantErr string
	}{
		{"web only", "web: bin/server\n", pipelines.Procfile{{"web", "bin/server"}}, ""},
		{"all kinds", "# processes\nweb: bin/web -p $PORT\n\nworker: bin/worker --queue=a:b\nrelease: bin/migrate\n",
			pipelines.Procfile{{"web", "bin/web -p $PORT"}, {"worker", "bin/worker --queue=a:b"}, {"release", "bin/migrate"}}, ""},
		{"crlf and spaces", "web:   npm start  \r\n", pipelines.Procfile{{"web", "npm start"}}, ""},
		{"no colon", "web npm start\n", nil, "Procfile line 1: expected"},
		{"bad type", "web: a\nmy worker: b\n", nil, "Procfile line 2: process type must be"},
		{"empty command", "web:\n", nil, `Procfile line 1: process type "web" has no command`},
		{"duplicate", "web: a\n\nweb: b\n", nil, `Procfile line 3: process type "web" already defined on line 1`},
		{"empty", "# nothing\n\n", nil, "Procfile: no process types defined"},
		{"too large", strings.Repeat("#", 70<<10), nil, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pipelines.ParseProcfile(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if !errors.Is(err, pipelines.ErrInvalid) {
					t.Fatalf("err %v is not ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("= %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestProcfileServicesAndFormation(t *testing.T) {
	p := pipelines.Procfile{{"worker", "w"}, {"release", "r"}, {"web", "s"}}
	var types []string
	for _, s := range p.Services() {
		types = append(types, s.Type)
	}
	if strings.Join(types, ",") != "web,worker" {
		t.Fatalf("Services() = %v, want web,worker (sorted, no release)", types)
	}
	f := pipelines.DefaultFormation(p)
	if !reflect.DeepEqual(f, pipelines.Formation{"web": 1, "worker": 0}) {
		t.Fatalf("DefaultFormation = %v", f)
	}
	if cmd, ok := p.Command("release"); !ok || cmd != "r" {
		t.Fatalf("Command(release) = %q %v", cmd, ok)
	}
	back, err := pipelines.ParseProcfile(strings.NewReader(p.String()))
	if err != nil || !reflect.DeepEqual(back, p) {
		t.Fatalf("String() does not round-trip: %v %v", back, err)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]int{"v7": 7, "7": 7, "V12": 12} {
		if got, err := pipelines.ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "v0", "x", "-1"} {
		if _, err := pipelines.ParseVersion(in); !errors.Is(err, pipelines.ErrInvalid) {
			t.Errorf("ParseVersion(%q) err = %v, want ErrInvalid", in, err)
		}
	}
}

func FuzzParseProcfile(f *testing.F) {
	for _, s := range []string{"web: a\n", "web npm\n", "a: b\nb: c\nrelease: d\n", "\x00:\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := pipelines.ParseProcfile(strings.NewReader(in))
		if err != nil {
			return
		}
		// What parses must survive its own rendering unchanged.
		back, err := pipelines.ParseProcfile(strings.NewReader(p.String()))
		if err != nil || !reflect.DeepEqual(back, p) {
			t.Fatalf("round trip of %q: %v %v", in, back, err)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(issueConfig))
	f.Add([]byte("regions: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := pipelines.ParseConfig("fuzz.yaml", data)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
	})
}
