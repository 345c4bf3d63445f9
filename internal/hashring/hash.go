package hashring

import (
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/prompb"
)

// sep separates the tenant, label names and label values in the hash input.
// 0xFF cannot occur in valid UTF-8, so distinct series cannot produce the same input.
const sep = '\xff'

// hashBufSize is how much hash input is assembled on the stack before falling
// back to streaming; almost every series fits.
const hashBufSize = 512

// HashSeries is Thanos's series hash (labelpb.HashWithPrefix): xxhash64 over
//
//	tenant 0xFF name1 0xFF value1 0xFF name2 0xFF value2 0xFF ...
//
// i.e. the tenant and a separator, then each label's name and value, each
// followed by a separator, in the order given (Thanos does not sort; remote
// write requires sorted labels anyway). It does not allocate.
func HashSeries(tenant string, ls []prompb.Label) uint64 {
	var buf [hashBufSize]byte
	b := append(buf[:0], tenant...)
	b = append(b, sep)
	for i, l := range ls {
		if len(b)+len(l.Name)+len(l.Value)+2 > hashBufSize {
			// The streaming digest yields the same value as Sum64 over the
			// whole input, so long series only cost speed, never placement.
			return hashStreaming(b, ls[i:])
		}
		b = append(b, l.Name...)
		b = append(b, sep)
		b = append(b, l.Value...)
		b = append(b, sep)
	}
	return xxhash.Sum64(b)
}

// hashStreaming continues the hash input prefix with the labels ls.
func hashStreaming(prefix []byte, ls []prompb.Label) uint64 {
	sepBytes := [1]byte{sep}
	var d xxhash.Digest
	d.Reset()
	_, _ = d.Write(prefix)
	for _, l := range ls {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sepBytes[:])
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sepBytes[:])
	}
	return d.Sum64()
}
