package storepb

// Hand-written wire code for SeriesResponse, the one message that carries bulk data.
//
// protobuf-go marshals through reflection-driven tables and copies every bytes field on
// unmarshal: in a store gateway that was about a sixth of the CPU of a large Series
// call, and in the querier every chunk became two small allocations plus a copy of its
// data. This file writes exactly the bytes proto.Marshal writes, and reads a frame with
// one allocation per message kind per series, its label strings and chunk data aliasing
// the frame (which the caller must own and never modify).
//
// Both directions only handle what this package generates and Vigil sends: a message
// with unknown fields, a hints Any, a repeated non-repeated field (which protobuf merges),
// invalid UTF-8 or an unexpected wire type makes them report false, and the caller falls
// back to protobuf-go, so every answer is protobuf-go's answer. The tests hold the
// encoder to proto.Marshal's bytes and the decoder to proto.Unmarshal's messages.
//
// Not generated: `make proto` leaves this file alone.

import (
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field tags (field number << 3 | wire type) of the messages handled here.
const (
	tagLen1, tagLen2, tagLen3, tagLen4 = 1<<3 | 2, 2<<3 | 2, 3<<3 | 2, 4<<3 | 2
	tagVarint1, tagVarint2, tagVarint3 = 1<<3 | 0, 2<<3 | 0, 3<<3 | 0
)

func sizeVarint(v uint64) int { return protowire.SizeVarint(v) }

// sizeLen is the size of a length-delimited field with a one-byte tag.
func sizeLen(n int) int { return 1 + sizeVarint(uint64(n)) + n }

// FastSize returns the encoded size of m and true, or false when AppendFast cannot
// encode it (then use proto.Marshal).
func (m *SeriesResponse) FastSize() (int, bool) {
	if len(m.unknownFields) > 0 {
		return 0, false
	}
	switch r := m.Result.(type) {
	case *SeriesResponse_Series:
		n, ok := r.Series.fastSize()
		return sizeLen(n), ok && r.Series != nil
	case *SeriesResponse_Warning:
		return sizeLen(len(r.Warning)), utf8.ValidString(r.Warning)
	case *SeriesResponse_Batch:
		n, ok := r.Batch.fastSize()
		return sizeLen(n), ok && r.Batch != nil
	case nil:
		return 0, true
	}
	return 0, false // hints
}

// AppendFast appends the encoding of m, which FastSize must have accepted just before:
// it reuses the sizes FastSize left in the messages' size caches, as protobuf-go's
// UseCachedSize does, so m must not change in between.
func (m *SeriesResponse) AppendFast(b []byte) []byte {
	switch r := m.Result.(type) {
	case *SeriesResponse_Series:
		b = protowire.AppendVarint(append(b, tagLen1), uint64(r.Series.sizeCache))
		return r.Series.appendFast(b)
	case *SeriesResponse_Warning:
		b = protowire.AppendVarint(append(b, tagLen2), uint64(len(r.Warning)))
		return append(b, r.Warning...)
	case *SeriesResponse_Batch:
		b = protowire.AppendVarint(append(b, tagLen4), uint64(r.Batch.sizeCache))
		for _, s := range r.Batch.Series {
			b = protowire.AppendVarint(append(b, tagLen1), uint64(s.sizeCache))
			b = s.appendFast(b)
		}
	}
	return b
}

func (x *SeriesBatch) fastSize() (int, bool) {
	if x == nil {
		return 0, true
	}
	if len(x.unknownFields) > 0 {
		return 0, false
	}
	n := 0
	for _, s := range x.Series {
		sn, ok := s.fastSize()
		if !ok || s == nil {
			return 0, false
		}
		n += sizeLen(sn)
	}
	x.sizeCache = int32(n)
	return n, true
}

func (x *Series) fastSize() (int, bool) {
	if x == nil {
		return 0, true
	}
	if len(x.unknownFields) > 0 {
		return 0, false
	}
	n := 0
	for _, l := range x.Labels {
		if l == nil || len(l.unknownFields) > 0 || !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			return 0, false
		}
		n += sizeLen(l.fastSize())
	}
	for _, c := range x.Chunks {
		cn, ok := c.fastSize()
		if !ok || c == nil {
			return 0, false
		}
		n += sizeLen(cn)
	}
	x.sizeCache = int32(n)
	return n, true
}

func (x *Series) appendFast(b []byte) []byte {
	for _, l := range x.Labels {
		b = protowire.AppendVarint(append(b, tagLen1), uint64(l.fastSize()))
		if l.Name != "" {
			b = protowire.AppendVarint(append(b, tagLen1), uint64(len(l.Name)))
			b = append(b, l.Name...)
		}
		if l.Value != "" {
			b = protowire.AppendVarint(append(b, tagLen2), uint64(len(l.Value)))
			b = append(b, l.Value...)
		}
	}
	for _, c := range x.Chunks {
		b = protowire.AppendVarint(append(b, tagLen2), uint64(c.sizeCache))
		b = c.appendFast(b)
	}
	return b
}

func (x *Label) fastSize() int {
	n := 0
	if x.Name != "" {
		n += sizeLen(len(x.Name))
	}
	if x.Value != "" {
		n += sizeLen(len(x.Value))
	}
	return n
}

func (x *AggrChunk) fastSize() (int, bool) {
	if x == nil {
		return 0, true
	}
	n := 0
	if x.MinTime != 0 {
		n += 1 + sizeVarint(uint64(x.MinTime))
	}
	if x.MaxTime != 0 {
		n += 1 + sizeVarint(uint64(x.MaxTime))
	}
	n += x.Raw.sizeField() + x.Count.sizeField() + x.Sum.sizeField() + x.Min.sizeField() + x.Max.sizeField() + x.Counter.sizeField()
	if len(x.unknownFields) > 0 || x.Raw.unknown() || x.Count.unknown() || x.Sum.unknown() ||
		x.Min.unknown() || x.Max.unknown() || x.Counter.unknown() {
		return 0, false
	}
	x.sizeCache = int32(n)
	return n, true
}

// sizeField is the size of x as a field of an AggrChunk; 0 when x is nil.
func (x *Chunk) sizeField() int {
	if x == nil {
		return 0
	}
	return sizeLen(x.fastSize())
}

func (x *Chunk) unknown() bool { return x != nil && len(x.unknownFields) > 0 }

func (x *AggrChunk) appendFast(b []byte) []byte {
	if x.MinTime != 0 {
		b = protowire.AppendVarint(append(b, tagVarint1), uint64(x.MinTime))
	}
	if x.MaxTime != 0 {
		b = protowire.AppendVarint(append(b, tagVarint2), uint64(x.MaxTime))
	}
	b = x.Raw.appendField(b, 3)
	b = x.Count.appendField(b, 4)
	b = x.Sum.appendField(b, 5)
	b = x.Min.appendField(b, 6)
	b = x.Max.appendField(b, 7)
	return x.Counter.appendField(b, 8)
}

// appendField appends x as field number f (3 to 8) of an AggrChunk; nothing when nil.
func (x *Chunk) appendField(b []byte, f byte) []byte {
	if x == nil {
		return b
	}
	b = protowire.AppendVarint(append(b, f<<3|2), uint64(x.fastSize()))
	if x.Type != 0 {
		b = protowire.AppendVarint(append(b, tagVarint1), uint64(x.Type))
	}
	if len(x.Data) > 0 {
		b = protowire.AppendVarint(append(b, tagLen2), uint64(len(x.Data)))
		b = append(b, x.Data...)
	}
	if x.Hash != 0 {
		b = protowire.AppendVarint(append(b, tagVarint3), x.Hash)
	}
	return b
}

func (x *Chunk) fastSize() int {
	n := 0
	if x.Type != 0 {
		n += 1 + sizeVarint(uint64(x.Type))
	}
	if len(x.Data) > 0 {
		n += sizeLen(len(x.Data))
	}
	if x.Hash != 0 {
		n += 1 + sizeVarint(x.Hash)
	}
	return n
}

// UnmarshalFast decodes b into m, aliasing b, and reports whether it could; on false m
// holds garbage and must be decoded with proto.Unmarshal instead.
func (m *SeriesResponse) UnmarshalFast(b []byte) bool {
	m.Result, m.unknownFields = nil, nil
	for len(b) > 0 {
		tag, n := protowire.ConsumeVarint(b)
		if n < 0 || m.Result != nil {
			return false
		}
		v, vn := protowire.ConsumeBytes(b[n:])
		if vn < 0 {
			return false
		}
		b = b[n+vn:]
		switch tag {
		case tagLen1:
			s := new(Series)
			if !s.unmarshalFast(v) {
				return false
			}
			m.Result = &SeriesResponse_Series{Series: s}
		case tagLen2:
			if !utf8.Valid(v) {
				return false
			}
			m.Result = &SeriesResponse_Warning{Warning: aliasString(v)}
		case tagLen4:
			batch := new(SeriesBatch)
			if !batch.unmarshalFast(v) {
				return false
			}
			m.Result = &SeriesResponse_Batch{Batch: batch}
		default:
			return false
		}
	}
	return true
}

// aliasString returns b as a string without copying it.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// countLen counts the length-delimited fields with tag t in b, checking that b is a
// sequence of length-delimited fields; -1 if it is not.
func countLen(b []byte, t uint64) int {
	n := 0
	for len(b) > 0 {
		tag, tn := protowire.ConsumeVarint(b)
		if tn < 0 || tag&7 != 2 {
			return -1
		}
		_, vn := protowire.ConsumeBytes(b[tn:])
		if vn < 0 {
			return -1
		}
		if tag == t {
			n++
		}
		b = b[tn+vn:]
	}
	return n
}

func (x *SeriesBatch) unmarshalFast(b []byte) bool {
	n := countLen(b, tagLen1)
	if n < 0 {
		return false
	}
	slab := make([]Series, n)
	x.Series = make([]*Series, n)
	for i := range slab {
		tag, tn := protowire.ConsumeVarint(b)
		v, vn := protowire.ConsumeBytes(b[tn:])
		b = b[tn+vn:]
		if tag != tagLen1 || !slab[i].unmarshalFast(v) {
			return false
		}
		x.Series[i] = &slab[i]
	}
	return len(b) == 0
}

func (x *Series) unmarshalFast(b []byte) bool {
	nl, nc := countLen(b, tagLen1), countLen(b, tagLen2)
	if nl < 0 || nc < 0 {
		return false
	}
	var (
		labels = make([]Label, nl)
		aggrs  = make([]AggrChunk, nc)
		chunks = make([]Chunk, 0, nc) // the sub-chunks: usually one per AggrChunk
	)
	x.Labels, x.Chunks = make([]*Label, 0, nl), make([]*AggrChunk, 0, nc)
	for len(b) > 0 {
		tag, tn := protowire.ConsumeVarint(b)
		v, vn := protowire.ConsumeBytes(b[tn:])
		b = b[tn+vn:]
		switch tag {
		case tagLen1:
			l := &labels[len(x.Labels)]
			if !l.unmarshalFast(v) {
				return false
			}
			x.Labels = append(x.Labels, l)
		case tagLen2:
			a := &aggrs[len(x.Chunks)]
			var ok bool
			if chunks, ok = a.unmarshalFast(v, chunks); !ok {
				return false
			}
			x.Chunks = append(x.Chunks, a)
		default:
			return false
		}
	}
	return true
}

func (x *Label) unmarshalFast(b []byte) bool {
	for len(b) > 0 {
		tag, tn := protowire.ConsumeVarint(b)
		if tn < 0 {
			return false
		}
		v, vn := protowire.ConsumeBytes(b[tn:])
		if vn < 0 || !utf8.Valid(v) {
			return false
		}
		b = b[tn+vn:]
		switch tag {
		case tagLen1:
			x.Name = aliasString(v)
		case tagLen2:
			x.Value = aliasString(v)
		default:
			return false
		}
	}
	return true
}

// unmarshalFast decodes an AggrChunk, taking its sub-chunks from the slab (it returns
// the slab with them appended; a full slab is replaced, never grown, so the pointers
// already handed out stay valid).
func (x *AggrChunk) unmarshalFast(b []byte, slab []Chunk) ([]Chunk, bool) {
	for len(b) > 0 {
		tag, tn := protowire.ConsumeVarint(b)
		if tn < 0 {
			return slab, false
		}
		b = b[tn:]
		switch tag {
		case tagVarint1, tagVarint2:
			v, vn := protowire.ConsumeVarint(b)
			if vn < 0 {
				return slab, false
			}
			b = b[vn:]
			if tag == tagVarint1 {
				x.MinTime = int64(v)
			} else {
				x.MaxTime = int64(v)
			}
			continue
		}
		field := int(tag >> 3)
		if tag&7 != 2 || field < 3 || field > 8 {
			return slab, false
		}
		v, vn := protowire.ConsumeBytes(b)
		if vn < 0 {
			return slab, false
		}
		b = b[vn:]
		dst := [6]**Chunk{&x.Raw, &x.Count, &x.Sum, &x.Min, &x.Max, &x.Counter}[field-3]
		if *dst != nil { // protobuf merges a repeated message field
			return slab, false
		}
		if len(slab) == cap(slab) {
			slab = make([]Chunk, 0, max(cap(slab), 1))
		}
		slab = slab[:len(slab)+1]
		c := &slab[len(slab)-1]
		if !c.unmarshalFast(v) {
			return slab, false
		}
		*dst = c
	}
	return slab, true
}

func (x *Chunk) unmarshalFast(b []byte) bool {
	for len(b) > 0 {
		tag, tn := protowire.ConsumeVarint(b)
		if tn < 0 {
			return false
		}
		b = b[tn:]
		switch tag {
		case tagVarint1, tagVarint3:
			v, vn := protowire.ConsumeVarint(b)
			if vn < 0 {
				return false
			}
			b = b[vn:]
			if tag == tagVarint1 {
				x.Type = Chunk_Encoding(int32(v))
			} else {
				x.Hash = v
			}
		case tagLen2:
			v, vn := protowire.ConsumeBytes(b)
			if vn < 0 {
				return false
			}
			b = b[vn:]
			x.Data = v[:len(v):len(v)]
		default:
			return false
		}
	}
	return true
}
