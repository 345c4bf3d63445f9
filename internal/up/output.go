package up

import (
	"bytes"
	"io"
	"sync"
)

// maxLine is the longest partial line a lineWriter holds; a longer one is written out
// as if it ended there.
const maxLine = 64 << 10

// syncWriter serialises writes to w, so that each Write lands whole.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Write writes p to the underlying writer in one call. Errors are dropped: a closed
// terminal must not stop the children.
func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.w.Write(p)
	return len(p), nil
}

// lineWriter splits what a child writes into lines and writes each, with prefix in
// front, to out in one Write.
type lineWriter struct {
	mu     sync.Mutex
	out    io.Writer
	prefix []byte
	buf    []byte // the unfinished last line
	line   []byte // scratch: prefix + line
}

func newLineWriter(out io.Writer, prefix string) *lineWriter {
	return &lineWriter{out: out, prefix: []byte(prefix)}
}

// Write implements io.Writer.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	rest := w.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		w.emit(rest[:i+1])
		rest = rest[i+1:]
	}
	for len(rest) > maxLine {
		w.emit(append(rest[:maxLine:maxLine], '\n'))
		rest = rest[maxLine:]
	}
	w.buf = append(w.buf[:0], rest...)
	return len(p), nil
}

// Flush writes out an unfinished last line, with a newline added.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(append(w.buf, '\n'))
		w.buf = w.buf[:0]
	}
}

// emit writes prefix+line (line ends in '\n').
func (w *lineWriter) emit(line []byte) {
	w.line = append(append(w.line[:0], w.prefix...), line...)
	_, _ = w.out.Write(w.line)
}
