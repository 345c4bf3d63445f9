package storeapi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// StatusError is the gRPC status a StoreAPI server (or one of the APIs beside it)
// answers err with, its message kept whole:
//   - the request's own deadline and cancellation keep their codes, so that a querier
//     above sees a timeout, not an endpoint that is down;
//   - an exceeded resort limit is ResourceExhausted, like every other limit;
//   - an error carrying a status (wrapped or not) keeps its code;
//   - anything else gets fallback: Unavailable where the data lives elsewhere (a sidecar's
//     Prometheus, the stores behind a querier), Internal for a local read that failed.
func StatusError(err error, fallback codes.Code) error {
	var rl ErrResortLimit
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.As(err, &rl):
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return status.Error(s.Code(), err.Error())
	}
	return status.Error(fallback, err.Error())
}
