package storeapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStatusError(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		fallback codes.Code
		want     codes.Code
	}{
		{"plain error gets the fallback", errors.New("prometheus down"), codes.Unavailable, codes.Unavailable},
		{"local failure", errors.New("bad chunk"), codes.Internal, codes.Internal},
		{"deadline", fmt.Errorf("read: %w", context.DeadlineExceeded), codes.Unavailable, codes.DeadlineExceeded},
		{"cancellation", fmt.Errorf("read: %w", context.Canceled), codes.Unavailable, codes.Canceled},
		{"resort limit", fmt.Errorf("series: %w", ErrResortLimit{Limit: 3}), codes.Internal, codes.ResourceExhausted},
		{"wrapped status keeps its code", errors.Join(status.Error(codes.ResourceExhausted, "limit")), codes.Unknown, codes.ResourceExhausted},
		{"Unknown status gets the fallback", status.Error(codes.Unknown, "?"), codes.Internal, codes.Internal},
	} {
		got := StatusError(tc.err, tc.fallback)
		if status.Code(got) != tc.want {
			t.Errorf("%s: %v, want code %v", tc.name, got, tc.want)
		}
		if s, _ := status.FromError(got); s.Message() != tc.err.Error() {
			t.Errorf("%s: message %q, want %q", tc.name, s.Message(), tc.err.Error())
		}
	}
	if StatusError(nil, codes.Internal) != nil {
		t.Error("nil error must stay nil")
	}
}
