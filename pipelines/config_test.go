package pipelines_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/pipelines"
)

// issueConfig is the drover.yaml users' scripts rely on, byte for byte.
const issueConfig = `github:
  webhook_secret_env: DROVER_WEBHOOK_SECRET
regions:
  local-a: { driver: local }
  local-b: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    stages:
      staging:    { app: hello-staging, branch: main, regions: [local-a] }
      production: { app: hello, regions: [local-a, local-b] }
`

func TestParseConfigIssueExample(t *testing.T) {
	c, err := pipelines.ParseConfig("drover.yaml", []byte(issueConfig))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p, s, ok := c.StageForPush("octo-org/hello", "main")
	if !ok || p.Name != "hello" || s.App != "hello-staging" || s.Name != pipelines.StageStaging {
		t.Fatalf("StageForPush(main) = %+v %+v %v", p, s, ok)
	}
	if _, _, ok := c.StageForPush("Octo-Org/Hello", "main"); !ok {
		t.Error("repository names must match case-insensitively, as GitHub's do")
	}
	if _, _, ok := c.StageForPush("octo-org/hello", "dev"); ok {
		t.Error("branch dev must not deploy anywhere")
	}
	app, err := c.App("hello")
	if err != nil || strings.Join(app.Regions, ",") != "local-a,local-b" || app.Stage != "production" {
		t.Fatalf("App(hello) = %+v, %v", app, err)
	}
	if _, err := c.App("nope"); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("App(nope) err = %v, want ErrNotFound", err)
	}
	if got := len(c.Apps()); got != 2 {
		t.Fatalf("Apps() = %d apps, want 2", got)
	}
}

func TestNomadRegionConfig(t *testing.T) {
	c, err := pipelines.ParseConfig("drover.yaml", []byte(`regions:
  us-east:
    driver: nomad
    address: https://nomad.us-east.example.com:4646
    region: use1
    namespace: apps
    datacenters: [dc1, dc2]
    node_pool: web
    token_env: NOMAD_TOKEN_US_EAST
    ca_file: /etc/nomad/ca.pem
    task_driver: raw_exec
    slug_url_ttl: 2160h
  dev: { driver: nomad, address: "http://127.0.0.1:4646" }
`))
	if err != nil {
		t.Fatal(err)
	}
	us := c.Regions["us-east"]
	if us.NomadRegion() != "use1" || us.Nomad.Namespace != "apps" || len(us.Nomad.Datacenters) != 2 || us.Nomad.Driver() != "raw_exec" || us.Nomad.TokenEnv != "NOMAD_TOKEN_US_EAST" {
		t.Fatalf("us-east = %+v", us)
	}
	dev := c.Regions["dev"]
	if got := us.Nomad.SlugGrantTTL(); got != 90*24*time.Hour {
		t.Errorf("us-east slug URL TTL = %s, want slug_url_ttl's 2160h", got)
	}
	if got := dev.Nomad.SlugGrantTTL(); got != 30*24*time.Hour {
		t.Errorf("dev slug URL TTL = %s, want the 30-day default", got)
	}
	if dev.NomadRegion() != "dev" || dev.Nomad.Driver() != "exec" {
		t.Fatalf("dev defaults = %+v (region %q, driver %q)", dev, dev.NomadRegion(), dev.Nomad.Driver())
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	if _, err := pipelines.LoadConfig(filepath.Join("..", "examples", "drover.yaml")); err != nil {
		t.Fatal(err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := "regions:\n  a: { driver: local }\npipelines:\n  p:\n    repo: o/r\n    stages:\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "regoins: {}\n", "drover.yaml: line 1: unknown key regoins"},
		{"bad yaml", "regions: [\n", "drover.yaml: "},
		{"missing driver", "regions:\n  a: {}\n", "drover.yaml: regions.a.driver: missing"},
		{"unknown driver", "regions:\n  a: { driver: docker }\n", `regions.a.driver: unknown driver "docker"`},
		{"nomad without address", "regions:\n  a: { driver: nomad }\n", "regions.a.address: missing"},
		{"nomad bad address", "regions:\n  a: { driver: nomad, address: 127.0.0.1:4646 }\n", `regions.a.address: "127.0.0.1:4646" is not an http(s) URL`},
		{"nomad token in file", "regions:\n  a: { driver: nomad, address: 'http://n:4646', token_env: 'abc-def-123' }\n", "regions.a.token_env: \"abc-def-123\" is not an environment variable name"},
		{"nomad slug URL TTL", "regions:\n  a: { driver: nomad, address: 'http://n:4646', slug_url_ttl: 30d }\n", `regions.a.slug_url_ttl: "30d" is not a duration of an hour or more`},
		{"nomad slug URL TTL too short", "regions:\n  a: { driver: nomad, address: 'http://n:4646', slug_url_ttl: 5m }\n", `regions.a.slug_url_ttl: "5m" is not a duration`},
		{"nomad task driver", "regions:\n  a: { driver: nomad, address: 'http://n:4646', task_driver: docker }\n", `regions.a.task_driver: unknown task driver "docker"`},
		{"nomad cert without key", "regions:\n  a: { driver: nomad, address: 'http://n:4646', cert_file: c.pem }\n", "regions.a: set cert_file and key_file together"},
		{"temporal address without port", "temporal: { address: temporal.internal }\n", `temporal.address: "temporal.internal" is not host:port`},
		{"temporal key pasted", "temporal: { address: 't:7233', api_key_env: 'eyJ.abc-def' }\n", `temporal.api_key_env: "eyJ.abc-def" is not an environment variable name`},
		{"temporal cert without key", "temporal: { cert_file: c.pem }\n", "temporal: set cert_file and key_file together"},
		{"temporal unknown key", "temporal: { host: t }\n", "unknown key host"},
		{"local with address", "regions:\n  a: { driver: local, address: 'http://n:4646' }\n", "regions.a.address: only nomad regions"},
		{"bad region name", "regions:\n  A_B: { driver: local }\n", "regions.A_B: region name"},
		{"missing repo", "pipelines:\n  p:\n    stages: {}\n", "pipelines.p.repo: missing"},
		{"bad repo", "pipelines:\n  p:\n    repo: nope\n", `pipelines.p.repo: "nope" is not owner/name`},
		{"no stages", "pipelines:\n  p:\n    repo: o/r\n", "pipelines.p.stages: missing"},
		{"unknown stage", base + "      qa: { app: x, regions: [a] }\n", "pipelines.p.stages.qa: unknown stage"},
		{"missing app", base + "      staging: { regions: [a] }\n", "pipelines.p.stages.staging.app: missing"},
		{"bad app name", base + "      staging: { app: Hello_World, regions: [a] }\n", "pipelines.p.stages.staging.app: \"Hello_World\""},
		{"no regions", base + "      staging: { app: x }\n", "pipelines.p.stages.staging.regions: missing"},
		{"unknown region", base + "      staging: { app: x, regions: [a, eu] }\n", `pipelines.p.stages.staging.regions[1]: unknown region "eu"`},
		{"region twice", base + "      staging: { app: x, regions: [a, a] }\n", `regions[1]: region "a" listed twice`},
		{"app twice", base + "      staging: { app: x, regions: [a] }\n      production: { app: x, regions: [a] }\n", `app "x" is already used`},
		{"branch twice", base + "      staging: { app: x, branch: main, regions: [a] }\n      production: { app: y, branch: main, regions: [a] }\n", `branch "main" already auto-deploys to pipelines.p.stages.production`},
		{"branch twice across pipelines", base + "      staging: { app: x, branch: main, regions: [a] }\n  q:\n    repo: O/R\n    stages:\n      staging: { app: y, branch: main, regions: [a] }\n",
			`pipelines.q.stages.staging.branch: O/R's branch "main" already auto-deploys to pipelines.p.stages.staging; a push deploys to one stage`},
		{"token instead of its name", "github: { token_env: ghp_abc-123 }\n", `github.token_env: "ghp_abc-123" is not an environment variable name`},
		{"bad max_parallel", base + "      staging: { app: x, regions: [a], rollout: { max_parallel: -1 } }\n", "pipelines.p.stages.staging.rollout.max_parallel: must be 1 or more"},
		{"bad on_failure", base + "      staging: { app: x, regions: [a], rollout: { on_failure: fail_some } }\n", `pipelines.p.stages.staging.rollout.on_failure: unknown value "fail_some"`},
		{"token without env", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci }] }\n", "api.tokens[0].token_env: missing"},
		{"token for unknown pipeline", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_env: CI, pipelines: [nope] }] }\n", `api.tokens[0].pipelines[0]: unknown pipeline "nope"`},
		{"unknown repo job field", base + "      staging: { app: x, regions: [a], repo_job_fields: [resources, network_mode] }\n", `pipelines.p.stages.staging.repo_job_fields[1]: unknown field "network_mode"`},
		{"unknown token scope", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_env: CI, scopes: [read, root] }] }\n", `api.tokens[0].scopes[1]: unknown scope "root"; want read, deploy, config, approve, admin`},
		{"ssh source", "regions:\n  a: { driver: local }\npipelines:\n  p:\n    repo: o/r\n    source: 'ssh://git@evil.example.com/o/r'\n    stages:\n      staging: { app: x, regions: [a] }\n", "pipelines.p.source: want file:///path/to/repo or an https:// URL"},
		{"relative file source", "regions:\n  a: { driver: local }\npipelines:\n  p:\n    repo: o/r\n    source: 'file://repo'\n    stages:\n      staging: { app: x, regions: [a] }\n", `pipelines.p.source: "file://repo": want an absolute path`},
		{"source with credentials", "regions:\n  a: { driver: local }\npipelines:\n  p:\n    repo: o/r\n    source: 'https://me:pw@git.example.com/o/r.git'\n    stages:\n      staging: { app: x, regions: [a] }\n", "with no credentials in it"},
		{"ext source", "regions:\n  a: { driver: local }\npipelines:\n  p:\n    repo: o/r\n    source: 'ext::sh -c touch% /tmp/pwned'\n    stages:\n      staging: { app: x, regions: [a] }\n", "pipelines.p.source: "},
		{"review region twice", base + "      review: { regions: [a, a] }\n", `pipelines.p.stages.review.regions[1]: region "a" listed twice`},
		{"stage app named like a review app", base + "      staging: { app: hello-pr-1, regions: [a] }\n", `pipelines.p.stages.staging.app: "hello-pr-1" is named like a review app`},
		{"review app names cut to the same", "regions:\n  a: { driver: local }\npipelines:\n  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-one:\n    repo: o/one\n    stages:\n      review: { regions: [a] }\n  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-two:\n    repo: o/two\n    stages:\n      review: { regions: [a] }\n", "pipelines.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-two: its review apps would have the same names as pipelines.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-one's"},
		{"token hash not PHC", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_hash: 'abc' }] }\n", `api.tokens[0].token_hash: want $argon2id$v=19$m=...,t=...,p=...$salt$hash`},
		{"token hash bcrypt", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_hash: '$2a$10$abcdefghijklmnopqrstuv' }] }\n", `api.tokens[0].token_hash: want $argon2id$`},
		{"token hash argon2i", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_hash: '$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5' }] }\n", `api.tokens[0].token_hash: algorithm "argon2i": only argon2id is supported`},
		{"token hash version", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_hash: '$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5' }] }\n", `api.tokens[0].token_hash: version "v=16": want v=19`},
		{"token hash missing p", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_hash: '$argon2id$v=19$m=19456,t=2$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5' }] }\n", `api.tokens[0].token_hash: parameters "m=19456,t=2": want m, t and p`},
		{"token hash huge memory", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_hash: '$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5' }] }\n", `api.tokens[0].token_hash: m=4194304: want 8 to 262144 KiB`},
		{"token hash zero passes", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_hash: '$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5' }] }\n", `api.tokens[0].token_hash: t=0: want 1 to 16 passes`},
		{"token hash short salt", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_hash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5' }] }\n", `api.tokens[0].token_hash: salt: want unpadded base64 of at least 8 bytes`},
		{"token hash padded hash", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_hash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5==' }] }\n", `api.tokens[0].token_hash: hash: want unpadded base64`},
		{"token hash and env", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_hash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5', token_env: 'CI' }] }\n", `api.tokens[0]: set token_env or token_hash, not both`},
		{"negative retention", "retention: { releases: -1 }\n", "retention.releases: -1: want 1 or more (0 or unset: 10)"},
		{"retention too often", "retention: { every: 1s }\n", `retention.every: "1s" is not a duration of a minute or more, like 1h`},
		{"token named twice", base + "      staging: { app: x, regions: [a] }\napi: { tokens: [{ name: ci, token_env: A }, { name: ci, token_env: B }] }\n", `api.tokens[1].name: token "ci" is named twice`},
		{"bad approval timeout", base + "      staging: { app: x, regions: [a], require_approval: true, approval_timeout: soon }\n", `pipelines.p.stages.staging.approval_timeout: "soon" is not a positive duration`},
		{"required check is drover's own status", base + "      staging: { app: x, regions: [a], wait_for_ci: true, required_checks: [test, drover/staging] }\n", `pipelines.p.stages.staging.required_checks[1]: "drover/staging" is a commit status drover itself posts`},
		{"review required check is drover's own status", base + "      review: { regions: [a], wait_for_ci: true, required_checks: [drover/anything] }\n", `pipelines.p.stages.review.required_checks[0]: "drover/anything" is a commit status drover itself posts`},
		{"ingress without url", base + "      staging: { app: x, regions: [a], ingress: traefik }\n", `pipelines.p.stages.staging.ingress: traefik routes by host: set url too, e.g. https://x.example.com`},
		{"unknown ingress", base + "      staging: { app: x, regions: [a], url: 'https://x.example.com', ingress: nginx }\n", `pipelines.p.stages.staging.ingress: unknown ingress "nginx"`},
		{"bad url", base + "      staging: { app: x, regions: [a], url: 'staging.example.com' }\n", `pipelines.p.stages.staging.url: "staging.example.com" is not an http(s) URL`},
		{"bad ci timeout", base + "      staging: { app: x, regions: [a], wait_for_ci: true, ci_timeout: forever }\n", `pipelines.p.stages.staging.ci_timeout: "forever" is not a positive duration`},
		{"app without key", "github: { app_id: 42 }\n", "github.private_key_file: a GitHub App (app_id) needs the path of its private key"},
		{"key without app", "github: { private_key_file: app.pem }\n", "github.app_id: private_key_file is set but app_id is not"},
		{"app and token", "github: { app_id: 42, private_key_file: app.pem, token_env: GH }\n", "github: set token_env or app_id with private_key_file, not both"},
		{"bad app id", "github: { app_id: -3, private_key_file: app.pem }\n", "github.app_id: -3 is not a GitHub App ID"},
		{"bad api url", "github: { api_url: github.example.com }\n", `github.api_url: "github.example.com" is not an http(s) URL`},
		{"bad reconcile interval", base + "      staging: { app: x, branch: main, regions: [a], reconcile_interval: often }\n", `pipelines.p.stages.staging.reconcile_interval: "often" is not a positive duration like 2m`},
		{"reconcile without branch", base + "      production: { app: x, regions: [a], reconcile_interval: 1m }\n", "pipelines.p.stages.production.reconcile_interval: only a stage with a branch"},
		{"review with app", base + "      review: { app: x, regions: [a] }\n", "pipelines.p.stages.review.app: the review stage makes one app per pull request (p-pr-42)"},
		{"review with branch", base + "      review: { branch: dev, regions: [a] }\n", "pipelines.p.stages.review.branch: review apps deploy pull requests"},
		{"review without regions", base + "      review: { ttl: 1h }\n", "pipelines.p.stages.review.regions: missing"},
		{"review unknown region", base + "      review: { regions: [eu] }\n", `pipelines.p.stages.review.regions[0]: unknown region "eu"`},
		{"review bad ttl", base + "      review: { regions: [a], ttl: 3d }\n", `pipelines.p.stages.review.ttl: "3d" is not a positive duration like 72h`},
		{"review config_from unknown", base + "      review: { regions: [a], config_from: staging }\n", `pipelines.p.stages.review.config_from: unknown stage "staging"`},
		{"review url without app", base + "      review: { regions: [a], url: 'https://review.example.com' }\n", `pipelines.p.stages.review.url: "https://review.example.com" has no {app}`},
		{"review negative max_apps", base + "      review: { regions: [a], max_apps: -1 }\n", "pipelines.p.stages.review.max_apps: must be 0"},
		{"review bad ci timeout", base + "      review: { regions: [a], wait_for_ci: true, ci_timeout: soon }\n", `pipelines.p.stages.review.ci_timeout: "soon" is not a positive duration`},
		{"review bad reconcile interval", base + "      review: { regions: [a], reconcile_interval: x }\n", `pipelines.p.stages.review.reconcile_interval: "x" is not a positive duration`},
		{"ttl on staging", base + "      staging: { app: x, regions: [a], ttl: 1h }\n", "pipelines.p.stages.staging.ttl: only the review stage has ttl"},
		{"two secrets", "github: { webhook_secret: a, webhook_secret_env: B }\n", "github: set webhook_secret or webhook_secret_env, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pipelines.ParseConfig("drover.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if !errors.Is(err, pipelines.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
		})
	}
}

func TestRolloutPolicy(t *testing.T) {
	base := "regions:\n  a: { driver: local }\npipelines:\n  p:\n    repo: o/r\n    stages:\n      staging: { app: x, regions: [a]%s }\n"
	tests := []struct {
		rollout   string
		parallel  int
		onFailure string
	}{
		{"", 1, pipelines.FailAll},
		{", rollout: { max_parallel: 3 }", 3, pipelines.FailAll},
		{", rollout: { on_failure: fail_local }", 1, pipelines.FailLocal},
		{`, rollout: { on_failure: "" }`, 1, pipelines.FailStop},
	}
	for _, tt := range tests {
		c, err := pipelines.ParseConfig("drover.yaml", []byte(fmt.Sprintf(base, tt.rollout)))
		if err != nil {
			t.Fatalf("%q: %v", tt.rollout, err)
		}
		n, f := c.Pipelines["p"].Stages["staging"].Rollout.Policy()
		if n != tt.parallel || f != tt.onFailure {
			t.Errorf("%q: Policy() = %d, %q; want %d, %q", tt.rollout, n, f, tt.parallel, tt.onFailure)
		}
	}
}

func TestWebhookSecret(t *testing.T) {
	env := map[string]string{"SET": "s3cret"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name, yaml, want, wantErr string
	}{
		{"inline", "github: { webhook_secret: inline }\n", "inline", ""},
		{"from env", "github: { webhook_secret_env: SET }\n", "s3cret", ""},
		{"env empty", "github: { webhook_secret_env: UNSET }\n", "", "environment variable UNSET is empty"},
		{"none", "{}\n", "", "no webhook secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pipelines.ParseConfig("drover.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.WebhookSecret(getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestLoadConfigJobTemplate(t *testing.T) {
	dir := t.TempDir()
	cfg := "regions:\n  a: { driver: local }\npipelines:\n  p:\n    repo: o/r\n    stages:\n      staging: { app: x, regions: [a], job_template: %s }\n"
	os.WriteFile(filepath.Join(dir, "job.nomad.hcl"), []byte(`job "x" { priority = 70 }`), 0o644)
	path := filepath.Join(dir, "drover.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(cfg, "job.nomad.hcl")), 0o644)
	c, err := pipelines.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(c.JobTemplate("x")); got != `job "x" { priority = 70 }` {
		t.Fatalf("JobTemplate(x) = %q", got)
	}
	if c.JobTemplate("y") != nil {
		t.Fatal("an app without a template has one")
	}
	os.WriteFile(path, []byte(fmt.Sprintf(cfg, "missing.hcl")), 0o644)
	if _, err := pipelines.LoadConfig(path); err == nil || !strings.Contains(err.Error(), "pipelines.p.stages.staging.job_template") {
		t.Fatalf("missing template: %v, want the key named", err)
	}
}

func TestReviewStageConfig(t *testing.T) {
	yaml := `regions:
  local-a: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    stages: { review: { regions: [local-a], ttl: 72h, config_from: staging, wait_for_ci: false, max_apps: 3, url: 'https://{app}.review.example.com', reconcile_interval: 5m }, staging: { app: hello-staging, branch: main, regions: [local-a] }, production: { app: hello, regions: [local-a] } }
`
	c, err := pipelines.ParseConfig("drover.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, st, ok := c.ReviewStage("Octo-Org/Hello")
	if !ok || p.Name != "hello" || st.ReviewTTL() != 72*time.Hour || st.ConfigFrom != "staging" || st.MaxApps != 3 {
		t.Fatalf("review stage = %+v %v", st, ok)
	}
	if got := st.ReviewURL("hello-pr-42"); got != "https://hello-pr-42.review.example.com" {
		t.Fatalf("url = %s", got)
	}
	app, err := c.App("hello-pr-42")
	if err != nil || app.Pipeline != "hello" || app.Stage != pipelines.StageReview || app.Regions[0] != "local-a" {
		t.Fatalf("App(hello-pr-42) = %+v, %v", app, err)
	}
	for _, name := range []string{"hello-pr-0", "hello-pr-x", "other-pr-1", "hello-pr-"} {
		if _, err := c.App(name); err == nil {
			t.Errorf("App(%q) found an app", name)
		}
	}
	for _, a := range c.Apps() {
		if a.Name == "" {
			t.Fatal("the review stage has no app of its own")
		}
	}
}

func TestReviewAppName(t *testing.T) {
	tests := []struct {
		pipeline string
		number   int
		want     string
	}{
		{"hello", 42, "hello-pr-42"},
		{strings.Repeat("a", 60), 12345, strings.Repeat("a", 54) + "-pr-12345"},
		{strings.Repeat("ab-", 20), 7, strings.TrimRight(strings.Repeat("ab-", 20)[:58], "-") + "-pr-7"},
	}
	for _, tt := range tests {
		got := pipelines.ReviewAppName(tt.pipeline, tt.number)
		if got != tt.want || !pipelines.ValidName(got) {
			t.Errorf("ReviewAppName(%q, %d) = %q (valid %v), want %q", tt.pipeline, tt.number, got, pipelines.ValidName(got), tt.want)
		}
	}
}

func TestGitHubAppConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drover.yaml")
	yaml := "github: { api_url: 'https://github.example.com/api/v3/', app_id: 42, private_key_file: keys/app.pem }\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := pipelines.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	// The key's path is relative to drover.yaml, like job templates.
	if c.GitHub.AppID != 42 || c.GitHub.PrivateKeyFile != filepath.Join(dir, "keys", "app.pem") || c.GitHub.APIURL != "https://github.example.com/api/v3/" {
		t.Fatalf("github = %+v", c.GitHub)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := pipelines.LoadConfig(filepath.Join(t.TempDir(), "drover.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not exist", err)
	}
}

func TestStageExposure(t *testing.T) {
	tests := []struct {
		name  string
		stage pipelines.Stage
		app   string
		url   string
		tags  []string
	}{
		{"nothing", pipelines.Stage{}, "hello", "", nil},
		{"traefik", pipelines.Stage{URL: "https://staging.example.com", Ingress: "traefik"}, "hello-staging", "https://staging.example.com",
			[]string{"traefik.enable=true", "traefik.http.routers.hello-staging.rule=Host(`staging.example.com`)"}},
		{"traefik with a path and a pattern", pipelines.Stage{URL: "https://{app}.example.com/api", Ingress: "traefik"}, "hello", "https://hello.example.com/api",
			[]string{"traefik.enable=true", "traefik.http.routers.hello.rule=Host(`hello.example.com`) && PathPrefix(`/api`)"}},
		{"fabio", pipelines.Stage{URL: "https://{app}.review.example.com", Ingress: "fabio"}, "hello-pr-7", "https://hello-pr-7.review.example.com",
			[]string{"urlprefix-hello-pr-7.review.example.com/"}},
		{"own tags", pipelines.Stage{URL: "https://x.example.com", ServiceTags: []string{"internal-router"}}, "x", "https://x.example.com", []string{"internal-router"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.stage.Expose(tt.app)
			if e.URL != tt.url || fmt.Sprint(e.Tags) != fmt.Sprint(tt.tags) {
				t.Fatalf("= %q %q; want %q %q", e.URL, e.Tags, tt.url, tt.tags)
			}
		})
	}
}

func TestCheckDeploy(t *testing.T) {
	c, err := pipelines.ParseConfig("drover.yaml", []byte(`regions: { a: { driver: local }, b: { driver: local } }
pipelines:
  hello:
    repo: octo-org/hello
    stages:
      staging: { app: hello-staging, branch: main, regions: [a] }
      review: { regions: [b] }
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		app, repo string
		regions   []string
		err       string
	}{
		{"hello-staging", "octo-org/hello", []string{"a"}, ""},
		{"hello-staging", "Octo-Org/Hello", nil, ""},
		{"hello-pr-7", "octo-org/hello", []string{"b"}, ""},
		{"hello-staging", "mallory/evil", nil, `app "hello-staging" deploys pipelines.hello.repo (octo-org/hello), not mallory/evil`},
		{"hello-staging", "", []string{"a", "b"}, `region "b" is not one of pipelines.hello.stages.staging.regions [a]`},
		{"payments", "", nil, `no stage of drover.yaml deploys app "payments"`},
	}
	for _, tt := range tests {
		err := c.CheckDeploy(tt.app, tt.repo, tt.regions)
		if (tt.err == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), tt.err) || !errors.Is(err, pipelines.ErrInvalid))) {
			t.Errorf("CheckDeploy(%s, %s, %v) = %v; want %q", tt.app, tt.repo, tt.regions, err, tt.err)
		}
	}
}

func TestSourceOf(t *testing.T) {
	const regions = "regions: { a: { driver: local } }\n"
	tests := []struct {
		name, yaml, repo string
		want             pipelines.GitSource
		err              string
	}{
		{"github.com", regions + "pipelines: { hello: { repo: octo-org/hello, stages: { staging: { app: s, regions: [a] } } } }\n", "Octo-Org/Hello",
			pipelines.GitSource{URL: "https://github.com/octo-org/hello.git", GitHub: true}, ""},
		{"api.github.com", regions + "github: { api_url: 'https://api.github.com/' }\npipelines: { hello: { repo: octo-org/hello, stages: { staging: { app: s, regions: [a] } } } }\n", "octo-org/hello",
			pipelines.GitSource{URL: "https://github.com/octo-org/hello.git", GitHub: true}, ""},
		{"enterprise", regions + "github: { api_url: 'https://ghe.example.com/api/v3/' }\npipelines: { hello: { repo: octo-org/hello, stages: { staging: { app: s, regions: [a] } } } }\n", "octo-org/hello",
			pipelines.GitSource{URL: "https://ghe.example.com/octo-org/hello.git", GitHub: true}, ""},
		{"configured file source", regions + "pipelines: { hello: { repo: octo-org/hello, source: 'file:///srv/hello', stages: { staging: { app: s, regions: [a] } } } }\n", "octo-org/hello",
			pipelines.GitSource{URL: "file:///srv/hello"}, ""},
		{"configured mirror gets no GitHub token", regions + "pipelines: { hello: { repo: octo-org/hello, source: 'https://git.example.com/hello.git', stages: { staging: { app: s, regions: [a] } } } }\n", "octo-org/hello",
			pipelines.GitSource{URL: "https://git.example.com/hello.git"}, ""},
		{"unknown repository", regions + "pipelines: { hello: { repo: octo-org/hello, stages: { staging: { app: s, regions: [a] } } } }\n", "mallory/evil",
			pipelines.GitSource{}, "no pipeline in drover.yaml deploys mallory/evil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pipelines.ParseConfig("drover.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.SourceOf(tt.repo)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, pipelines.ErrNotFound) {
					t.Fatalf("SourceOf(%s) = %v, %v; want error %q", tt.repo, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SourceOf(%s) = %+v, %v; want %+v", tt.repo, got, err, tt.want)
			}
		})
	}
}

func TestAPITokenHash(t *testing.T) {
	const h = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"
	c, err := pipelines.ParseConfig("drover.yaml", []byte("api: { tokens: [{ name: ci, token_hash: '"+h+"', scopes: [read] }] }\n"))
	if err != nil {
		t.Fatal(err)
	}
	tok := c.API.Tokens[0]
	parsed, err := pipelines.ParseTokenHash(tok.TokenHash)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Memory != 19456 || parsed.Time != 2 || parsed.Threads != 1 || string(parsed.Salt) != "saltsaltsalt" || len(parsed.Key) != 24 {
		t.Fatalf("parsed %s = %+v", h, parsed)
	}
	if parsed.String() != h {
		t.Fatalf("%+v prints as %s, want %s", parsed, parsed, h)
	}
}

func TestRegionRelease(t *testing.T) {
	st := func(region string, s pipelines.RegionStatus) pipelines.RegionState {
		return pipelines.RegionState{Region: region, Status: s}
	}
	// Newest first: v4 is mid-rollout (a done, b running), v3 failed and
	// was reverted in a, v2 succeeded everywhere.
	rels := []pipelines.Release{
		{Version: 4, Status: pipelines.ReleasePending, Regions: []pipelines.RegionState{st("a", pipelines.RegionSuccessful), st("b", pipelines.RegionRunning)}},
		{Version: 3, Status: pipelines.ReleaseFailed, Regions: []pipelines.RegionState{st("a", pipelines.RegionReverted), st("b", pipelines.RegionFailed)}},
		{Version: 2, Status: pipelines.ReleaseSucceeded, Regions: []pipelines.RegionState{st("a", pipelines.RegionSuccessful), st("b", pipelines.RegionSuccessful)}},
	}
	for region, want := range map[string]int{"a": 4, "b": 2} {
		if r, ok := pipelines.RegionRelease(rels, region); !ok || r.Version != want {
			t.Errorf("RegionRelease(%s) = v%d, %v; want v%d", region, r.Version, ok, want)
		}
	}
	if _, ok := pipelines.RegionRelease(rels, "c"); ok {
		t.Error("a region nothing reached has a release")
	}
}
