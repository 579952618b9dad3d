package api

import (
	"time"

	"github.com/gin-gonic/gin"
)

// AuthProbe looks inside the bearer-token check BearerAuth makes.
type AuthProbe struct{ a *authenticator }

// NewAuthProbe is BearerAuth(tokens) that gives up waiting for a hash
// check slot after wait, with a probe into it.
func NewAuthProbe(tokens []Token, wait time.Duration) (gin.HandlerFunc, *AuthProbe) {
	a := newAuthenticator(tokens)
	a.wait = wait
	return func(c *gin.Context) {
		if t, ok := a.authenticate(c); ok {
			c.Set(callerKey, t)
			c.Next()
		}
	}, &AuthProbe{a}
}

// Hashes is how many argon2id checks ran.
func (p *AuthProbe) Hashes() int64 { return p.a.hashes.Load() }

// HoldChecks takes every hash check slot until release is called.
func (p *AuthProbe) HoldChecks() (release func()) {
	for range cap(p.a.checks) {
		p.a.checks <- struct{}{}
	}
	return func() {
		for range cap(p.a.checks) {
			<-p.a.checks
		}
	}
}
