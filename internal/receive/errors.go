package receive

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Cause classifies why a write failed. It decides the HTTP status the client gets, and
// with it whether Prometheus retries: it retries 5xx and 429 and drops a batch on any
// other 4xx, so a sample that can never be stored must not get a 5xx, and a receiver
// that is merely unavailable must not get a 4xx.
type Cause int

// Causes, from the most to the least specific.
const (
	CauseInternal    Cause = iota // 500: retried
	CauseBadRequest               // 400: malformed input, never retried
	CauseConflict                 // 409: out-of-order, duplicate or too-old samples
	CauseTooLarge                 // 413: over a request limit
	CauseTooMany                  // 429: over the tenant's head-series limit, retried later
	CauseUnavailable              // 503: not ready, or too few replicas answered
)

// HTTPStatus is the status code a cause is answered with.
func (c Cause) HTTPStatus() int {
	switch c {
	case CauseBadRequest:
		return http.StatusBadRequest
	case CauseConflict:
		return http.StatusConflict
	case CauseTooLarge:
		return http.StatusRequestEntityTooLarge
	case CauseTooMany:
		return http.StatusTooManyRequests
	case CauseUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// grpcCode is the gRPC code a cause travels as between receivers.
func (c Cause) grpcCode() codes.Code {
	switch c {
	case CauseBadRequest:
		return codes.InvalidArgument
	case CauseConflict:
		return codes.AlreadyExists
	case CauseTooLarge:
		return codes.OutOfRange
	case CauseTooMany:
		return codes.ResourceExhausted
	case CauseUnavailable:
		return codes.Unavailable
	}
	return codes.Internal
}

// WriteError is a failed write with its cause.
type WriteError struct {
	Cause Cause
	Err   error
}

func (e *WriteError) Error() string { return e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// GRPCStatus lets a WriteError returned by the RemoteWrite handler travel with its cause.
func (e *WriteError) GRPCStatus() *status.Status {
	return status.New(e.Cause.grpcCode(), e.Err.Error())
}

func writeErr(c Cause, format string, args ...any) *WriteError {
	return &WriteError{Cause: c, Err: fmt.Errorf(format, args...)}
}

// CauseOf classifies any error from the write path: a WriteError keeps its cause, TSDB
// append errors and gRPC statuses from peers are mapped, anything else is internal.
func CauseOf(err error) Cause {
	var we *WriteError
	switch {
	case err == nil:
		return CauseInternal
	case errors.As(err, &we):
		return we.Cause
	case isConflict(err):
		return CauseConflict
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return CauseUnavailable
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.InvalidArgument:
			return CauseBadRequest
		case codes.AlreadyExists:
			return CauseConflict
		case codes.OutOfRange:
			return CauseTooLarge
		case codes.ResourceExhausted:
			return CauseTooMany
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unimplemented:
			return CauseUnavailable
		}
	}
	return CauseInternal
}

// isConflict tells the TSDB's rejections of a sample that can never be stored.
func isConflict(err error) bool {
	return errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrOutOfBounds) ||
		errors.Is(err, storage.ErrTooOldSample) || errors.Is(err, storage.ErrDuplicateSampleForTimestamp)
}
