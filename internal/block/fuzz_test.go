package block

import (
	"bytes"
	"testing"
)

// FuzzDecodeMeta: a corrupt meta.json is an error, never a panic, and what decodes
// re-encodes and decodes to the same meta.
func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte(`{"ulid":"01HZZZZZZZZZZZZZZZZZZZZZZZ","minTime":0,"maxTime":7200000,"version":1,"compaction":{"level":1,"sources":["01HZZZZZZZZZZZZZZZZZZZZZZZ"]},"thanos":{"labels":{"replica":"a"},"downsample":{"resolution":0},"source":"sidecar"}}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"ulid":"x"`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(bytes.NewReader(b))
		if err != nil {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("a decoded meta does not encode: %v", err)
		}
		m2, err := DecodeMeta(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("re-encoded meta does not decode: %v\n%s", err, enc)
		}
		enc2, _ := m2.Encode()
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("meta changes on a round trip:\n%s\n%s", enc, enc2)
		}
	})
}
