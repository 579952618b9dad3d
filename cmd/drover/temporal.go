package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"

	"github.com/drover/drover/pipelines"
)

// envLookup reads the environment through getenv for envconfig.
type envLookup func(string) string

func (e envLookup) Environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); e(k) != "" {
			out = append(out, k+"="+e(k))
		}
	}
	return out
}

func (e envLookup) LookupEnv(k string) (string, bool) {
	v := e(k)
	return v, v != ""
}

// temporalOptions are the client options for the team's Temporal:
// Temporal's own conventions (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
// TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE and its config
// file), then drover.yaml's temporal block on top.
func temporalOptions(cfg *pipelines.Config, getenv func(string) string) (client.Options, error) {
	prof, err := envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{EnvLookup: envLookup(getenv)})
	if err != nil {
		return client.Options{}, fmt.Errorf("temporal client config (TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE): %w", err)
	}
	t := cfg.Temporal
	if t.Address != "" {
		prof.Address = t.Address
	}
	if t.Namespace != "" {
		prof.Namespace = t.Namespace
	}
	if t.APIKeyEnv != "" {
		if prof.APIKey = getenv(t.APIKeyEnv); prof.APIKey == "" {
			return client.Options{}, fmt.Errorf("%s: temporal.api_key_env names %s, which is not set", cfg.File, t.APIKeyEnv)
		}
	}
	if t.TLS || t.CertFile != "" || t.CAFile != "" || t.ServerName != "" {
		if prof.TLS == nil {
			prof.TLS = &envconfig.ClientConfigTLS{}
		}
		prof.TLS.Disabled = false
		if t.CertFile != "" {
			prof.TLS.ClientCertPath, prof.TLS.ClientKeyPath = t.CertFile, t.KeyFile
		}
		if t.CAFile != "" {
			prof.TLS.ServerCACertPath = t.CAFile
		}
		if t.ServerName != "" {
			prof.TLS.ServerName = t.ServerName
		}
	}
	if prof.Address == "" {
		return client.Options{}, &hintError{err: errors.New("TEMPORAL_ADDRESS is not set: drover server and worker run on the team's Temporal, e.g. TEMPORAL_ADDRESS=temporal.internal:7233 TEMPORAL_NAMESPACE=drover"),
			hint: "set it (or temporal.address in drover.yaml), or use drover dev for an embedded stack"}
	}
	if prof.Namespace == "" {
		prof.Namespace = client.DefaultNamespace
	}
	opts, err := prof.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return client.Options{}, &hintError{err: fmt.Errorf("temporal TLS for %s: %w", prof.Address, err), hint: "check TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH and TEMPORAL_TLS_SERVER_CA_CERT_PATH (or temporal.cert_file, key_file and ca_file)"}
	}
	return opts, nil
}

// describeTemporal says how drover reaches Temporal, without the key.
func describeTemporal(opts client.Options) string {
	how := "plaintext"
	switch {
	case opts.Credentials != nil && opts.ConnectionOptions.TLS != nil:
		how = "TLS, API key"
	case opts.ConnectionOptions.TLS != nil && len(opts.ConnectionOptions.TLS.Certificates) > 0:
		how = "mTLS"
	case opts.ConnectionOptions.TLS != nil:
		how = "TLS"
	case opts.Credentials != nil:
		how = "API key"
	}
	return fmt.Sprintf("%s  (namespace %s, %s)", opts.HostPort, opts.Namespace, how)
}

// dialTemporal connects and, when checkNamespace, makes sure the namespace
// exists: drover never creates or changes one outside dev.
func dialTemporal(ctx context.Context, opts client.Options, checkNamespace bool) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := client.DialContext(dctx, opts)
	if err != nil {
		return nil, &hintError{err: fmt.Errorf("connect to Temporal at %s (namespace %s): %w", opts.HostPort, opts.Namespace, err),
			hint: "check TEMPORAL_ADDRESS, and TLS (TEMPORAL_TLS_*) or TEMPORAL_API_KEY if the server wants them"}
	}
	if !checkNamespace {
		return c, nil
	}
	_, err = c.WorkflowService().DescribeNamespace(dctx, &workflowservice.DescribeNamespaceRequest{Namespace: opts.Namespace})
	var nf *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &nf):
		c.Close()
		return nil, &hintError{err: fmt.Errorf("Temporal at %s has no namespace %q; drover does not create namespaces outside drover dev", opts.HostPort, opts.Namespace),
			hint: "create it (temporal operator namespace create --namespace " + opts.Namespace + ") or set TEMPORAL_NAMESPACE"}
	case err != nil:
		c.Close()
		return nil, &hintError{err: fmt.Errorf("describe namespace %q at %s: %w", opts.Namespace, opts.HostPort, err),
			hint: "check the namespace, and that the credentials may read it"}
	}
	return c, nil
}
