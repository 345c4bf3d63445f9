package up

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// readyTimeout is how long announce waits for every part before it prints the table
// anyway, naming the parts that are not ready.
const readyTimeout = 2 * time.Minute

// announce waits until every part answers on its ready path, then writes the table of
// addresses to out and logs how long the start took.
func announce(ctx context.Context, logger *slog.Logger, out io.Writer, parts []Part, dataDir string, start time.Time) {
	wctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	pending := waitReady(wctx, parts)
	if ctx.Err() != nil {
		return
	}
	took := time.Since(start).Round(100 * time.Millisecond)
	if len(pending) > 0 {
		logger.Warn("parts not ready", "parts", strings.Join(pending, ","), "waited", took)
	} else {
		logger.Info("every part is ready", "took", took, "query", parts[0].URL())
	}
	_, _ = out.Write(table(parts, dataDir, pending))
}

// waitReady polls the parts' ready paths until all answer 200 or ctx is done, and
// returns the names of those that never did.
func waitReady(ctx context.Context, parts []Part) []string {
	client := &http.Client{Timeout: 2 * time.Second}
	ready := make([]bool, len(parts))
	for {
		var pending []string
		for i, p := range parts {
			if !ready[i] {
				ready[i] = isReady(ctx, client, p.URL()+p.ReadyPath)
			}
			if !ready[i] {
				pending = append(pending, p.Name)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return pending
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func isReady(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// table renders where each part listens.
func table(parts []Part, dataDir string, pending []string) []byte {
	var b bytes.Buffer
	b.WriteString("\nVigil is up.\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tURL\tGRPC\tWHAT")
	for _, p := range parts {
		grpc := p.GRPCAddr
		if grpc == "" {
			grpc = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, p.URL(), grpc, p.About)
	}
	_ = tw.Flush()
	if len(pending) > 0 {
		fmt.Fprintf(&b, "\nNot ready after %s (see their log lines): %s\n", readyTimeout, strings.Join(pending, ", "))
	}
	q := parts[0].URL()
	fmt.Fprintf(&b, "\nData and configuration: %s\n", dataDir)
	fmt.Fprintf(&b, "Query it:  curl -s '%s/api/v1/query?query=up'   (UI: %s/)\n", q, q)
	b.WriteString("Press Ctrl-C to stop everything.\n\n")
	return b.Bytes()
}
