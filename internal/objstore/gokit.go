package objstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/go-kit/log"
)

// NewGoKitLogger adapts logger to the go-kit log.Logger the objstore library logs with.
// The "level" key picks the slog level (info when absent) and "msg" the message; every
// other pair becomes an attribute.
func NewGoKitLogger(logger *slog.Logger) log.Logger {
	return gokitAdapter{logger: logger}
}

type gokitAdapter struct{ logger *slog.Logger }

// Log implements log.Logger.
func (a gokitAdapter) Log(keyvals ...any) error {
	lvl, msg := slog.LevelInfo, ""
	attrs := make([]any, 0, len(keyvals))
	for i := 0; i < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		var val any = "(MISSING)"
		if i+1 < len(keyvals) {
			val = keyvals[i+1]
		}
		switch key {
		case "level":
			lvl = parseLevel(fmt.Sprint(val))
		case "msg":
			msg = fmt.Sprint(val)
		default:
			attrs = append(attrs, key, val)
		}
	}
	a.logger.Log(context.Background(), lvl, msg, attrs...)
	return nil
}

func parseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
