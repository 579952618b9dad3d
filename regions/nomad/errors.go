package nomad

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// wrap names what failed and classifies a Nomad API error so callers can
// test it with errors.Is:
//
//   - a register that lost the EnforceIndex race, or a 409: pipelines.ErrConflict;
//   - a region Nomad does not know ("No path to region"), a 400 or 422, or
//     a job Nomad's validation rejected: pipelines.ErrInvalid
//     (Nomad answers server-side job validation errors with a 500 whose body
//     says "validation failed");
//   - a 404: pipelines.ErrNotFound;
//   - no answer (connection refused, reset, timeout) or another 5xx:
//     regions.ErrUnavailable, which callers retry.
//
// Other answers (401, 403) are returned as they are. The caller's own
// cancellation is never reported as unavailability.
func (r *Region) wrap(ctx context.Context, what string, err error) error {
	prefix := fmt.Sprintf("%s in region %s", what, r.spec.Name)
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) && ue.HasStatusCode() {
		code, body := ue.StatusCode(), ue.Body()
		var kind error
		switch {
		case strings.Contains(body, "No path to region"):
			// A wrong region name never fixes itself: say what to change.
			return fmt.Errorf("%s: Nomad at %s knows no region %q; set region: to Nomad's name for it in drover.yaml (nomad agent -dev calls its region global): %w",
				prefix, r.spec.Nomad.Address, r.region, pipelines.ErrInvalid)
		case strings.Contains(body, api.RegisterEnforceIndexErrPrefix), code == http.StatusConflict:
			kind = pipelines.ErrConflict
		case code == http.StatusBadRequest, code == http.StatusUnprocessableEntity,
			strings.Contains(strings.ToLower(body), "validation failed"):
			kind = pipelines.ErrInvalid
		case code == http.StatusNotFound:
			kind = pipelines.ErrNotFound
		case code >= 500:
			kind = regions.ErrUnavailable
		default:
			return fmt.Errorf("%s: %w", prefix, err)
		}
		return fmt.Errorf("%s: %w: %w", prefix, kind, err)
	}
	if unreachable(err) {
		return fmt.Errorf("%s: %w: %w", prefix, regions.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// unreachable reports whether err means Nomad did not answer.
func unreachable(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// isNotFound reports whether Nomad answered 404.
func isNotFound(err error) bool {
	var ue api.UnexpectedResponseError
	return errors.As(err, &ue) && ue.StatusCode() == http.StatusNotFound
}
