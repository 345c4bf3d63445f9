// Package xorchunk decodes Prometheus XOR float chunks (chunkenc.EncXOR) in bulk.
//
// chunkenc's iterator decodes one sample per call through an interface, saving its bit
// reader's state in memory between calls. Code that needs every sample of a chunk (the
// downsampler, the querier's chunk iterator) decodes faster in one loop that keeps the
// bit reader in registers and appends to plain slices. The format is described in
// docs/bucket.md ("XOR chunks"); the result is the same as chunkenc's iterator, which
// the tests check on random and fuzzed chunks.
package xorchunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Errors of Append.
var (
	// ErrTruncated is returned for a chunk whose bits end before its sample count says.
	ErrTruncated = errors.New("xor chunk: truncated")
	// ErrCorrupt is returned for bits no encoder writes.
	ErrCorrupt = errors.New("xor chunk: corrupt")
)

// refill loads whole bytes of b below the n valid bits at the top of buf until it holds
// at least 56 bits or b is empty, and returns the new buf, n and b.
//
// It ORs the next eight bytes in below the valid bits but only counts the whole bytes
// that fit; the bits of the partly loaded byte are ORed again, in the same position, by
// the next refill, which leaves them unchanged. Consuming bits shifts both alike.
func refill(buf uint64, n uint, b []byte) (uint64, uint, []byte) {
	if len(b) >= 8 {
		k := (64 - n) >> 3 // whole bytes that fit
		return buf | binary.BigEndian.Uint64(b)>>n, n + k<<3, b[k:]
	}
	return refillTail(buf, n, b)
}

//go:noinline
func refillTail(buf uint64, n uint, b []byte) (uint64, uint, []byte) {
	var tmp [8]byte
	copy(tmp[:], b)
	k := min((64-n)>>3, uint(len(b)))
	return buf | binary.BigEndian.Uint64(tmp[:])>>n, n + k<<3, b[k:]
}

// Append decodes the XOR chunk b (its bytes as stored: a 2-byte big-endian sample count
// and the bit stream) and appends its timestamps to ts and its values to vs.
//
// The bit reader lives in the locals buf (the next n bits at its top) and rest, and the
// loop is one function, so that they stay in registers.
func Append(ts []int64, vs []float64, b []byte) ([]int64, []float64, error) {
	if len(b) < 2 {
		return ts, vs, ErrTruncated
	}
	num := int(binary.BigEndian.Uint16(b))
	if num == 0 {
		return ts, vs, nil
	}
	ts, vs = slices.Grow(ts, num), slices.Grow(vs, num)
	b = b[2:]
	t, k := binary.Varint(b)
	if k <= 0 || len(b) < k+8 {
		return ts, vs, ErrTruncated
	}
	vbits := binary.BigEndian.Uint64(b[k:])
	ts, vs = append(ts, t), append(vs, math.Float64frombits(vbits))
	if num == 1 {
		return ts, vs, nil
	}
	b = b[k+8:]
	udelta, k := binary.Uvarint(b)
	if k <= 0 {
		return ts, vs, ErrTruncated
	}
	delta := int64(udelta)
	var (
		rest              = b[k:]
		buf               uint64
		n                 uint
		leading, trailing uint
	)
	for i := 1; i < num; i++ {
		if n < 56 { // refill, by hand: the function is over the inlining budget
			if len(rest) >= 8 {
				k := (64 - n) >> 3
				buf |= binary.BigEndian.Uint64(rest) >> n
				rest, n = rest[k:], n+k<<3
			} else {
				buf, n, rest = refillTail(buf, n, rest)
			}
		}
		if i > 1 {
			// Delta of delta: '0', or '10', '110', '1110' and a 14, 17 or 20 bit two's
			// complement number, or '1111' and 64 bits.
			if buf>>63 == 0 {
				if n < 1 {
					return ts, vs, truncated(i, num)
				}
				buf, n = buf<<1, n-1
			} else {
				prefix, sz := dodPrefix(buf)
				if sz == 64 || n < prefix+sz {
					var dod int64
					var ok bool
					if dod, buf, n, rest, ok = readDod(buf, n, rest, prefix, sz); !ok {
						return ts, vs, truncated(i, num)
					}
					delta += dod
				} else {
					bits := buf << prefix >> (64 - sz)
					buf, n = buf<<(prefix+sz), n-prefix-sz
					// Negative numbers come back as large unsigned ones: the encoder's
					// range for sz bits is [-(2^(sz-1)-1), 2^(sz-1)].
					if bits > 1<<(sz-1) {
						bits -= 1 << sz
					}
					delta += int64(bits)
				}
			}
		}
		t += delta
		// Value: '0' (unchanged), '10' and the meaningful bits within the previous
		// leading and trailing zeros, or '11', 5 bits of leading zeros, 6 bits of
		// meaningful bit count (0 meaning 64) and those bits.
		if n < 13 {
			buf, n, rest = refill(buf, n, rest)
		}
		if buf>>63 == 0 {
			if n < 1 {
				return ts, vs, truncated(i, num)
			}
			buf, n = buf<<1, n-1
		} else {
			if n < 2 {
				return ts, vs, truncated(i, num)
			}
			if buf>>62 == 0b11 {
				if n < 13 {
					return ts, vs, truncated(i, num)
				}
				leading = uint(buf >> 57 & 0x1f) // after the two control bits
				mbits := uint(buf >> 51 & 0x3f)
				if mbits == 0 {
					mbits = 64
				}
				// A corrupt header can make this negative: wrap as chunkenc's uint8 does
				// (a shift by 64 or more gives 0).
				trailing = (64 - leading - mbits) & 0xff
				buf, n = buf<<13, n-13
			} else {
				buf, n = buf<<2, n-2
			}
			mbits := (64 - leading - trailing) & 0xff
			if mbits > 64 {
				return ts, vs, fmt.Errorf("sample %d of %d: %w: %d meaningful bits", i+1, num, ErrCorrupt, mbits)
			}
			if n < mbits {
				if len(rest) >= 8 {
					k := (64 - n) >> 3
					buf |= binary.BigEndian.Uint64(rest) >> n
					rest, n = rest[k:], n+k<<3
				} else {
					buf, n, rest = refillTail(buf, n, rest)
				}
			}
			var bits uint64
			if n >= mbits { // shifts by 64 give 0 in Go, so mbits may be 64
				bits, buf, n = buf>>(64-mbits), buf<<mbits, n-mbits
			} else {
				var ok bool
				if bits, buf, n, rest, ok = readBits(buf, n, rest, mbits); !ok {
					return ts, vs, truncated(i, num)
				}
			}
			vbits ^= bits << trailing
		}
		ts, vs = append(ts, t), append(vs, math.Float64frombits(vbits))
	}
	return ts, vs, nil
}

func truncated(i, num int) error {
	return fmt.Errorf("sample %d of %d: %w", i+1, num, ErrTruncated)
}

// dodPrefix decodes the prefix of a delta of delta that is not 0 at the top of buf: its
// length and the size of the number that follows.
func dodPrefix(buf uint64) (prefix, sz uint) {
	switch {
	case buf>>62 == 0b10:
		return 2, 14
	case buf>>61 == 0b110:
		return 3, 17
	case buf>>60 == 0b1110:
		return 4, 20
	}
	return 4, 64
}

// readDod reads a delta of delta that is not 0, given its prefix (dodPrefix): the rare
// cases Append does not decode inline, 64-bit ones and those at the end of a stream.
func readDod(buf uint64, n uint, rest []byte, prefix, sz uint) (int64, uint64, uint, []byte, bool) {
	if n < prefix {
		return 0, buf, n, rest, false
	}
	bits, buf, n, rest, ok := readBits(buf<<prefix, n-prefix, rest, sz)
	if !ok || sz == 64 {
		return int64(bits), buf, n, rest, ok
	}
	// Negative numbers come back as large unsigned ones: the encoder's range for sz bits
	// is [-(2^(sz-1)-1), 2^(sz-1)].
	if bits > 1<<(sz-1) {
		bits -= 1 << sz
	}
	return int64(bits), buf, n, rest, true
}

// readBits reads the next m (1..64) bits.
func readBits(buf uint64, n uint, rest []byte, m uint) (uint64, uint64, uint, []byte, bool) {
	if m > 56 {
		hi, buf, n, rest, ok := readBits(buf, n, rest, m-32)
		if !ok {
			return 0, buf, n, rest, false
		}
		lo, buf, n, rest, ok := readBits(buf, n, rest, 32)
		return hi<<32 | lo, buf, n, rest, ok
	}
	if n < m {
		if buf, n, rest = refill(buf, n, rest); n < m {
			return 0, buf, n, rest, false
		}
	}
	return buf >> (64 - m), buf << m, n - m, rest, true
}
