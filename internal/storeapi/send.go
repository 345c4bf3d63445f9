package storeapi

import (
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// SeriesSender frames series onto a Series stream: one series per frame, or SeriesBatch
// frames when the client asked for response_batch_size > 1 (Thanos v0.41+).
type SeriesSender struct {
	srv       storepb.Store_SeriesServer
	batchSize int
	batch     []*storepb.Series
	// Reused frame wrappers: Send marshals synchronously, so they can be refilled.
	resp   storepb.SeriesResponse
	single storepb.SeriesResponse_Series
	multi  storepb.SeriesResponse_Batch
	bat    storepb.SeriesBatch
	sent   int
}

// NewSeriesSender returns a sender for srv honouring the request's batch size.
func NewSeriesSender(srv storepb.Store_SeriesServer, batchSize int64) *SeriesSender {
	s := &SeriesSender{srv: srv}
	if batchSize > 1 {
		s.batchSize = int(min(batchSize, 1<<16))
		s.batch = make([]*storepb.Series, 0, s.batchSize)
	}
	return s
}

// Send queues or sends one series.
func (s *SeriesSender) Send(series *storepb.Series) error {
	s.sent++
	if s.batchSize == 0 {
		s.single.Series = series
		s.resp.Result = &s.single
		return s.srv.Send(&s.resp)
	}
	s.batch = append(s.batch, series)
	if len(s.batch) >= s.batchSize {
		return s.Flush()
	}
	return nil
}

// Sent is the number of series sent or queued so far.
func (s *SeriesSender) Sent() int { return s.sent }

// Warning sends a warning frame.
func (s *SeriesSender) Warning(msg string) error {
	return s.srv.Send(&storepb.SeriesResponse{Result: &storepb.SeriesResponse_Warning{Warning: msg}})
}

// Flush sends a pending batch.
func (s *SeriesSender) Flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	s.bat.Series = s.batch
	s.multi.Batch = &s.bat
	s.resp.Result = &s.multi
	err := s.srv.Send(&s.resp)
	clear(s.batch)
	s.batch = s.batch[:0]
	return err
}
