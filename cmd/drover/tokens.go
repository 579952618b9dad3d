package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover/drover/api"
)

// TokensHashOptions are drover tokens hash's flags.
type TokensHashOptions struct {
	// Generate makes a new random token instead of reading one.
	Generate bool
}

func newTokensCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Make API tokens for drover.yaml"}
	cmd.AddCommand(newTokensHashCmd(s, runTokensHash))
	return cmd
}

func newTokensHashCmd(s Streams, runF func(Streams, TokensHashOptions) error) *cobra.Command {
	opts := TokensHashOptions{}
	cmd := &cobra.Command{
		Use:   "hash",
		Short: "Print the token_hash line for an API token read from stdin (or --generate one)",
		Long: `Read an API token from stdin (its first line) and print its argon2id hash
as a token_hash line for api.tokens in drover.yaml, so neither the file nor
drover's environment holds the token. With --generate, make a new random
token and print it too; keep it, it is not shown again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runF(s, opts) },
	}
	cmd.Flags().BoolVar(&opts.Generate, "generate", false, "make a new random token and print it with its hash")
	return cmd
}

func runTokensHash(s Streams, opts TokensHashOptions) error {
	var token string
	if opts.Generate {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("generate token: %w", err)
		}
		token = base64.RawURLEncoding.EncodeToString(b)
	} else {
		if s.In == nil {
			return &usageError{errors.New("no token on stdin; pipe one in or pass --generate")}
		}
		line, err := bufio.NewReader(s.In).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read token from stdin: %w", err)
		}
		token = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(token) == "" {
			return &usageError{errors.New("no token on stdin; pipe one in (e.g. printf %s \"$TOKEN\" | drover tokens hash) or pass --generate")}
		}
	}
	h, err := api.HashToken(token)
	if err != nil {
		return err
	}
	if opts.Generate {
		fmt.Fprintf(s.Out, "token: %s\n", token)
	}
	// Quoted: the hash holds commas, which end a plain value in a YAML
	// flow mapping ({ name: ci, token_hash: ... }).
	fmt.Fprintf(s.Out, "token_hash: '%s'\n", h)
	return nil
}
