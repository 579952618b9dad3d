package pipelines_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/drover/drover/pipelines"
)

// herokuExample is the app.json of Heroku's schema documentation, with a
// review environment.
const herokuExample = `{
  "name": "Small Sharp Tool",
  "description": "This app does one little thing, and does it well.",
  "keywords": ["productivity", "HTML5", "scalpel"],
  "website": "https://small-sharp-tool.com/",
  "repository": "https://github.com/jane-doe/small-sharp-tool",
  "logo": "https://small-sharp-tool.com/logo.svg",
  "success_url": "/welcome",
  "scripts": { "postdeploy": "bundle exec rake bootstrap", "pr-predestroy": "bin/cleanup" },
  "env": {
    "SECRET_TOKEN": { "description": "A secret key for verifying the integrity of signed cookies.", "generator": "secret" },
    "WEB_CONCURRENCY": { "description": "The number of processes to run.", "value": "5" },
    "DATABASE_URL": { "description": "Where the data lives." },
    "LANG": "en_US.UTF-8",
    "OPTIONAL": { "description": "maybe", "required": false }
  },
  "formation": { "web": { "quantity": 1, "size": "standard-1x" } },
  "image": "heroku/ruby",
  "addons": ["openredis", { "plan": "mongolab:shared-single-small", "as": "MONGO" }],
  "buildpacks": [{ "url": "https://github.com/stomita/heroku-buildpack-phantomjs" }],
  "environments": {
    "review": {
      "scripts": { "postdeploy": { "command": "bin/seed", "size": "standard-2x" } },
      "env": { "WEB_CONCURRENCY": "1" },
      "formation": { "worker": { "quantity": 0 } }
    }
  }
}`

func TestAppJSON(t *testing.T) {
	a, err := pipelines.ParseAppJSON([]byte(herokuExample))
	if err != nil {
		t.Fatal(err)
	}
	if a.Scripts.Postdeploy != "bundle exec rake bootstrap" || a.Scripts.PrPredestroy != "bin/cleanup" || a.Formation["web"].Size != "standard-1x" {
		t.Fatalf("parsed %+v", a)
	}
	if e := a.Env["DATABASE_URL"]; !e.Required {
		t.Fatal("an env object is required unless it says otherwise, as Heroku's schema says")
	}
	if a.Env["LANG"].Required || a.Env["LANG"].Value != "en_US.UTF-8" || a.Env["OPTIONAL"].Required {
		t.Fatalf("env = %+v", a.Env)
	}
	r := a.ForReview()
	if r.Scripts.Postdeploy != "bin/seed" || r.Scripts.PrPredestroy != "bin/cleanup" || r.Env["WEB_CONCURRENCY"].Value != "1" ||
		r.Formation["worker"].Quantity != 0 || r.Formation["web"].Quantity != 1 {
		t.Fatalf("for review = %+v", r)
	}

	rand := bytes.NewReader(bytes.Repeat([]byte{0xab}, 64))
	base := map[string]string{"DATABASE_URL": "postgres://staging", "LANG": "C.UTF-8", "FROM_STAGING": "yes"}
	env, gen, err := r.ReviewEnv(base, nil, rand)
	if err != nil {
		t.Fatal(err)
	}
	if env["SECRET_TOKEN"] != strings.Repeat("ab", 32) || gen["SECRET_TOKEN"] != env["SECRET_TOKEN"] || len(gen) != 1 {
		t.Fatalf("secret = %q, generated %v", env["SECRET_TOKEN"], gen)
	}
	// The config_from stage's vars win over app.json's values and come along.
	if env["LANG"] != "C.UTF-8" || env["DATABASE_URL"] != "postgres://staging" || env["FROM_STAGING"] != "yes" || env["WEB_CONCURRENCY"] != "1" {
		t.Fatalf("env = %v", env)
	}
	if _, ok := env["OPTIONAL"]; ok {
		t.Fatal("an optional var with no value is left unset")
	}
	// On the next deploy the app's vars are kept: no second secret.
	env2, gen2, err := r.ReviewEnv(base, env, bytes.NewReader(bytes.Repeat([]byte{0xcd}, 64)))
	if err != nil || env2["SECRET_TOKEN"] != env["SECRET_TOKEN"] || len(gen2) != 0 {
		t.Fatalf("second deploy: secret %q, generated %v, %v", env2["SECRET_TOKEN"], gen2, err)
	}
	// A required var with no value anywhere is named.
	if _, _, err := r.ReviewEnv(nil, nil, rand); err == nil || !strings.Contains(err.Error(), "env DATABASE_URL required and has no value") {
		t.Fatalf("missing required: %v", err)
	}
}

func TestAppJSONErrors(t *testing.T) {
	tests := []struct{ json, want string }{
		{`{`, "app.json: unexpected end of JSON input"},
		{`{"env": {"FOO": 3}}`, "app.json: env.FOO: want a string or an object"},
		{`{"env": {"BAD-NAME": "x"}}`, "app.json: env.BAD-NAME: not a config var name"},
		{`{"env": {"K": {"generator": "uuid"}}}`, `app.json: env.K.generator: unknown generator "uuid"`},
		{`{"formation": {"web": {"quantity": -1}}}`, "app.json: formation.web.quantity: must be 0 to 10"},
		{`{"formation": {"worker": {"quantity": 5000}}}`, "app.json: formation.worker.quantity: must be 0 to 10; an operator can scale beyond that with drover ps:scale"},
		{`{"formation": {"web": 2}}`, "app.json: formation.web: want an object"},
		{`{"scripts": {"postdeploy": 5}}`, "app.json: scripts.postdeploy: want a command"},
		{`{"environments": {"review": {"env": {"X": []}}}}`, "app.json: environments.review.env.X: want a string or an object"},
	}
	for _, tt := range tests {
		_, err := pipelines.ParseAppJSON([]byte(tt.json))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseAppJSON(%s) = %v, want %q", tt.json, err, tt.want)
		}
	}
}

func FuzzParseAppJSON(f *testing.F) {
	f.Add([]byte(herokuExample))
	f.Add([]byte(`{"env":{"A":{"required":false}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := pipelines.ParseAppJSON(data)
		if err == nil {
			a.ForReview().ReviewEnv(map[string]string{"A": "b"}, nil, bytes.NewReader(make([]byte, 1024)))
		}
	})
}
