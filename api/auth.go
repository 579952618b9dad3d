package api

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// authenticator finds the token a request bears among the configured ones.
type authenticator struct {
	tokens []Token
}

func newAuthenticator(tokens []Token) *authenticator {
	return &authenticator{tokens: tokens}
}

// authenticate returns the token c bears, or answers 401 and returns
// false when it bears none or an unknown one.
func (a *authenticator) authenticate(c *gin.Context) (Token, bool) {
	presented, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || presented == "" {
		fail(c, http.StatusUnauthorized, "unauthorized", "missing bearer token; set DROVER_TOKEN")
		return Token{}, false
	}
	// Every token is compared, in constant time, so the answer's timing
	// says nothing about which one came close.
	var found *Token
	for i := range a.tokens {
		t := &a.tokens[i]
		if t.Value != "" && subtle.ConstantTimeCompare([]byte(t.Value), []byte(presented)) == 1 && found == nil {
			found = t
		}
	}
	if found == nil {
		fail(c, http.StatusUnauthorized, "unauthorized", "invalid bearer token")
		return Token{}, false
	}
	return *found, true
}
