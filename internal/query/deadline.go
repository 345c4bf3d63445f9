package query

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// requestDone returns an error when the request itself is over: its deadline passed
// (the API's timeout parameter, --query.timeout or the engine's own timeout) or its
// caller went away. Partial response never covers that case: an answer missing the
// endpoints that had not finished would look complete to a dashboard or a rule, so the
// whole request fails instead. The error wraps ctx.Err() so that callers can tell a
// timeout (context.DeadlineExceeded) from a cancellation.
func requestDone(ctx context.Context, what string) error {
	err := ctx.Err()
	if dl, ok := ctx.Deadline(); err == nil && ok && !time.Now().Before(dl) {
		// The deadline has passed but the context's timer has not fired yet. An endpoint
		// can report the deadline first: its server's copy of it (from the grpc-timeout
		// header) fired, and it reset the stream.
		err = context.DeadlineExceeded
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("query timed out %s: %w", what, err)
	}
	return fmt.Errorf("query canceled %s: %w", what, err)
}
