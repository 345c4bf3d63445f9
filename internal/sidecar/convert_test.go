package sidecar

import (
	"bytes"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func pl(kv ...string) []prompb.Label {
	out := make([]prompb.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// convertLabels runs the converter the way Store.Series sets it up.
func convertLabels(ext labels.Labels, withoutReplica []string, observed []prompb.Label) (labels.Labels, int) {
	_, stripped := storeapi.StripSet(ext, withoutReplica)
	s, bound := newConverter(ext, stripped, false).convert(&promclient.RawSeries{Labels: observed})
	return storeapi.LabelsFromProto(s.Labels), bound
}

func TestConvertLabels(t *testing.T) {
	ext := labels.FromStrings("cluster", "eu", "replica", "0")
	cases := []struct {
		name           string
		withoutReplica []string
		observed       []prompb.Label // as remote read delivers them: ext merged in, series labels winning
		want           labels.Labels
		wantBound      int
	}{
		{
			name:      "external labels added",
			observed:  pl("__name__", "up", "cluster", "eu", "job", "a", "replica", "0"),
			want:      labels.FromStrings("__name__", "up", "cluster", "eu", "job", "a", "replica", "0"),
			wantBound: 3, // __name__, cluster(ext), job
		},
		{
			name:      "external label overrides a series label of the same name",
			observed:  pl("__name__", "up", "cluster", "us", "job", "a", "replica", "7"),
			want:      labels.FromStrings("__name__", "up", "cluster", "eu", "job", "a", "replica", "0"),
			wantBound: 3,
		},
		{
			name:      "external labels missing from the remote-read answer are still added",
			observed:  pl("__name__", "up", "job", "a"),
			want:      labels.FromStrings("__name__", "up", "cluster", "eu", "job", "a", "replica", "0"),
			wantBound: 3,
		},
		{
			name:           "stripped replica label removed",
			withoutReplica: []string{"replica"},
			observed:       pl("__name__", "up", "cluster", "eu", "job", "a", "replica", "0"),
			want:           labels.FromStrings("__name__", "up", "cluster", "eu", "job", "a"),
			wantBound:      3,
		},
		{
			name:           "stripped external label removed even when the series carried its own value",
			withoutReplica: []string{"replica"},
			observed:       pl("__name__", "up", "job", "a", "replica", "own"),
			want:           labels.FromStrings("__name__", "up", "cluster", "eu", "job", "a"),
			wantBound:      3,
		},
		{
			name:      "only external labels after the series' own",
			observed:  pl("a", "1", "cluster", "eu", "replica", "0"),
			want:      labels.FromStrings("a", "1", "cluster", "eu", "replica", "0"),
			wantBound: 1,
		},
		{
			name:      "series label after all external labels",
			observed:  pl("cluster", "eu", "replica", "0", "zone", "z"),
			want:      labels.FromStrings("cluster", "eu", "replica", "0", "zone", "z"),
			wantBound: 3,
		},
		{
			name:      "series made only of external-named labels",
			observed:  pl("cluster", "x", "replica", "0"),
			want:      labels.FromStrings("cluster", "eu", "replica", "0"),
			wantBound: 0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, bound := convertLabels(ext, tc.withoutReplica, tc.observed)
			if !labels.Equal(got, tc.want) {
				t.Errorf("labels %s, want %s", got, tc.want)
			}
			if bound != tc.wantBound {
				t.Errorf("bound %d, want %d", bound, tc.wantBound)
			}
		})
	}
}

// A series label named like a replica label that is not an external label is data.
func TestConvertKeepsNonExternalReplicaLabel(t *testing.T) {
	ext := labels.FromStrings("cluster", "eu")
	got, bound := convertLabels(ext, []string{"replica", "rule_replica"}, pl("__name__", "up", "cluster", "eu", "replica", "b"))
	want := labels.FromStrings("__name__", "up", "cluster", "eu", "replica", "b")
	if !labels.Equal(got, want) {
		t.Fatalf("labels %s, want %s: replica is not external, so it must stay", got, want)
	}
	if bound != 3 {
		t.Fatalf("bound %d, want 3", bound)
	}
}

func TestConvertWireLabelsSorted(t *testing.T) {
	ext := labels.FromStrings("b", "e", "d", "e")
	s, _ := newConverter(ext, nil, false).convert(&promclient.RawSeries{Labels: pl("a", "1", "c", "1", "e", "1")})
	var names []string
	for _, l := range s.Labels {
		names = append(names, l.Name)
	}
	if got := len(names); got != 5 || names[0] != "a" || names[1] != "b" || names[2] != "c" || names[3] != "d" || names[4] != "e" {
		t.Fatalf("wire label order %v, want [a b c d e]", names)
	}
}

func TestConvertChunks(t *testing.T) {
	xor := chunkenc.NewXORChunk()
	app, _ := xor.Appender()
	for i := range 10 {
		app.Append(0, int64(i)*1000, float64(i))
	}
	hist := chunkenc.NewHistogramChunk()
	fhist := chunkenc.NewFloatHistogramChunk()
	raw := &promclient.RawSeries{
		Labels: pl("__name__", "up"),
		Chunks: []promclient.RawChunk{
			{MinTime: 0, MaxTime: 9000, Encoding: int32(chunkenc.EncXOR), Data: xor.Bytes()},
			{MinTime: 10000, MaxTime: 20000, Encoding: int32(chunkenc.EncHistogram), Data: hist.Bytes()},
			{MinTime: -5, MaxTime: -1, Encoding: int32(chunkenc.EncFloatHistogram), Data: fhist.Bytes()},
		},
	}
	wantType := []storepb.Chunk_Encoding{storepb.Chunk_XOR, storepb.Chunk_HISTOGRAM, storepb.Chunk_FLOAT_HISTOGRAM}
	if storepb.Chunk_XOR != 0 || storepb.Chunk_HISTOGRAM != 1 || storepb.Chunk_FLOAT_HISTOGRAM != 2 {
		t.Fatal("storepb chunk encodings must be XOR=0, HISTOGRAM=1, FLOAT_HISTOGRAM=2 on the wire")
	}
	s, _ := newConverter(labels.FromStrings("cluster", "eu"), nil, false).convert(raw)
	if len(s.Chunks) != 3 {
		t.Fatalf("%d chunks, want 3", len(s.Chunks))
	}
	for i, ac := range s.Chunks {
		rc := raw.Chunks[i]
		if ac.MinTime != rc.MinTime || ac.MaxTime != rc.MaxTime {
			t.Errorf("chunk %d: range [%d,%d], want [%d,%d]", i, ac.MinTime, ac.MaxTime, rc.MinTime, rc.MaxTime)
		}
		if ac.Raw.GetType() != wantType[i] {
			t.Errorf("chunk %d: type %v, want %v", i, ac.Raw.GetType(), wantType[i])
		}
		if !bytes.Equal(ac.Raw.GetData(), rc.Data) {
			t.Errorf("chunk %d: data changed", i)
		}
		if ac.Raw.GetHash() != xxhash.Sum64(rc.Data) || ac.Raw.GetHash() == 0 {
			t.Errorf("chunk %d: hash %x, want xxhash64(data) %x", i, ac.Raw.GetHash(), xxhash.Sum64(rc.Data))
		}
		if ac.Count != nil || ac.Sum != nil || ac.Min != nil || ac.Max != nil || ac.Counter != nil {
			t.Errorf("chunk %d: aggregate chunks set for raw data", i)
		}
		// The wire chunk must decode back to the Prometheus encoding it came from.
		chk, err := storeapi.ChunkFromProto(ac.Raw)
		if err != nil {
			t.Errorf("chunk %d: ChunkFromProto: %v", i, err)
		} else if int32(chk.Encoding()) != rc.Encoding {
			t.Errorf("chunk %d: decodes as %v, want encoding %d", i, chk.Encoding(), rc.Encoding)
		}
	}
	smps, err := storeapi.FloatSamples(&storepb.Series{Chunks: s.Chunks[:1]}, 2000, 4000)
	if err != nil || len(smps) != 3 || smps[0].T != 2000 || smps[2].V != 4 {
		t.Errorf("FloatSamples of the XOR chunk = %v, %v", smps, err)
	}
}

func TestConvertSkipChunks(t *testing.T) {
	raw := &promclient.RawSeries{
		Labels: pl("__name__", "up", "job", "a"),
		Chunks: []promclient.RawChunk{{MinTime: 1, MaxTime: 2, Encoding: 1, Data: []byte{0, 0}}},
	}
	s, bound := newConverter(labels.FromStrings("cluster", "eu"), nil, true).convert(raw)
	if len(s.Chunks) != 0 {
		t.Fatalf("skipChunks: %d chunks, want none", len(s.Chunks))
	}
	if got := storeapi.LabelsFromProto(s.Labels); !labels.Equal(got, labels.FromStrings("__name__", "up", "cluster", "eu", "job", "a")) || bound != 3 {
		t.Fatalf("skipChunks labels %s bound %d", got, bound)
	}
	s, _ = newConverter(labels.FromStrings("cluster", "eu"), nil, false).convert(&promclient.RawSeries{Labels: pl("a", "1")})
	if s.Chunks != nil {
		t.Fatalf("series without chunks: %v", s.Chunks)
	}
}
