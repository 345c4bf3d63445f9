package downsample

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
)

// TestFileChunkReaderMatchesMmap reads every chunk of a block, a raw one and its 5m
// downsampled copy (AggrChunks), with the FileChunkReader and with Prometheus's mapped
// reader, and compares them; a corrupted byte must fail the checksum.
func TestFileChunkReaderMatchesMmap(t *testing.T) {
	tmp := t.TempDir()
	raw, _ := createBlock(t, tmp, 48*3600*1000)
	out := filepath.Join(tmp, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := DownsampleDir(context.Background(), discard, raw, out, 300_000)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{raw, filepath.Join(out, id.String())} {
		b, err := tsdb.OpenBlock(discard, dir, NewPool(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ir, err := b.Index()
		if err != nil {
			t.Fatal(err)
		}
		mr, err := b.Chunks()
		if err != nil {
			t.Fatal(err)
		}
		fr, err := WithFileChunks(b, dir, NewPool(), 0).Chunks()
		if err != nil {
			t.Fatal(err)
		}
		name, value := index.AllPostingsKey()
		p, err := ir.Postings(context.Background(), name, value)
		if err != nil {
			t.Fatal(err)
		}
		var sb labels.ScratchBuilder
		var metas []chunks.Meta
		n := 0
		for p.Next() {
			if err := ir.Series(p.At(), &sb, &metas); err != nil {
				t.Fatal(err)
			}
			for _, m := range metas {
				want, _, err := mr.ChunkOrIterable(m)
				if err != nil {
					t.Fatal(err)
				}
				got, _, err := fr.ChunkOrIterable(m)
				if err != nil {
					t.Fatal(err)
				}
				if got.Encoding() != want.Encoding() || !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Fatalf("%s: chunk %v differs", dir, m.Ref)
				}
				n++
			}
		}
		if n == 0 {
			t.Fatalf("%s: no chunks", dir)
		}
		fr.Close()
		mr.Close()
		ir.Close()
		b.Close()
	}

	// A flipped byte in a chunk fails its checksum.
	seg := filepath.Join(raw, "chunks", "000001")
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[chunks.SegmentHeaderSize+3] ^= 0xff
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fr, err := OpenFileChunkReader(filepath.Join(raw, "chunks"), NewPool())
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	if _, _, err := fr.ChunkOrIterable(chunks.Meta{Ref: chunks.ChunkRef(chunks.NewBlockChunkRef(0, chunks.SegmentHeaderSize))}); err == nil {
		t.Fatal("a corrupted chunk must fail its checksum")
	}
}
