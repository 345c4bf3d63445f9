package e2eutil

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOStartTimeout bounds how long StartMinIO waits for /minio/health/ready.
const MinIOStartTimeout = 30 * time.Second

// MinIO credentials and bucket of every test MinIO.
const (
	MinIOAccessKey = "minio"
	MinIOSecretKey = "minio123"
	MinIOBucket    = "vigil"
)

// MinIO is a running MinIO server on loopback, with its data in its own temporary
// directory and one empty bucket.
type MinIO struct {
	*Process
	Endpoint  string // 127.0.0.1:port, the S3 API (host:port, as the objstore config wants it)
	URL       string // http://Endpoint
	Bucket    string
	AccessKey string
	SecretKey string
	DataDir   string
	// Client is a minio-go client for the S3 API, for tests to create, inspect and
	// corrupt objects behind Vigil's back.
	Client *minio.Client
}

// MinIOBin returns the MinIO server binary: $MINIO_BIN, $(go env GOPATH)/bin/minio (where
// `make deps` installs it) or minio from PATH. It skips the test when there is none.
func MinIOBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MINIO_BIN"); p != "" {
		return p
	}
	var gopaths []string
	if gp := os.Getenv("GOPATH"); gp != "" {
		gopaths = filepath.SplitList(gp)
	} else if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopaths = filepath.SplitList(strings.TrimSpace(string(out)))
	} else if home, err := os.UserHomeDir(); err == nil {
		gopaths = []string{filepath.Join(home, "go")}
	}
	for _, gp := range gopaths {
		p := filepath.Join(gp, "bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	SkipMissing(t, "MinIO binary not found: run `make deps` (go install github.com/minio/minio) or set MINIO_BIN")
	return ""
}

// StartMinIO starts a MinIO server on free 127.0.0.1 ports with a fresh data directory,
// waits until it is ready and creates the bucket MinIOBucket. The test's cleanup stops it.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := MinIOBin(t)
	dir := t.TempDir()
	addr, console := FreeAddr(t), FreeAddr(t)
	m := &MinIO{Endpoint: addr, URL: "http://" + addr, Bucket: MinIOBucket,
		AccessKey: MinIOAccessKey, SecretKey: MinIOSecretKey, DataDir: filepath.Join(dir, "data")}
	m.Process = StartProcess(t, ProcessSpec{Name: "minio", Bin: bin, Dir: dir,
		Args: []string{"server", "--address", addr, "--console-address", console, "--quiet", m.DataDir},
		Env: []string{
			"MINIO_ROOT_USER=" + m.AccessKey, "MINIO_ROOT_PASSWORD=" + m.SecretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1",
		}})
	if err := WaitHTTP(m.URL+"/minio/health/ready", http.StatusOK, MinIOStartTimeout, m.Process); err != nil {
		t.Fatalf("start MinIO: %v", err)
	}
	c, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), Secure: false})
	if err != nil {
		t.Fatalf("MinIO client: %v", err)
	}
	m.Client = c
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := PollErr(20*time.Second, 200*time.Millisecond, func() error {
		return c.MakeBucket(ctx, m.Bucket, minio.MakeBucketOptions{})
	}); err != nil {
		t.Fatalf("create MinIO bucket %s: %v", m.Bucket, err)
	}
	return m
}

// ObjstoreYAML returns a Vigil (Thanos) objstore configuration of type S3 for the bucket,
// reaching the S3 API at endpoint (host:port; empty means m.Endpoint, another address is
// for a proxy in front of MinIO).
func (m *MinIO) ObjstoreYAML(endpoint string) string {
	if endpoint == "" {
		endpoint = m.Endpoint
	}
	return fmt.Sprintf(`type: S3
config:
  bucket: %s
  endpoint: %s
  access_key: %s
  secret_key: %s
  insecure: true
`, m.Bucket, endpoint, m.AccessKey, m.SecretKey)
}

// WriteObjstoreConfig writes ObjstoreYAML(endpoint) to a new file in a temporary directory
// and returns its path, for --objstore.config-file.
func (m *MinIO) WriteObjstoreConfig(t testing.TB, endpoint string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "objstore.yml")
	if err := os.WriteFile(p, []byte(m.ObjstoreYAML(endpoint)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Objects lists the objects under prefix (recursively) with their sizes.
func (m *MinIO) Objects(ctx context.Context, prefix string) (map[string]int64, error) {
	out := map[string]int64{}
	for o := range m.Client.ListObjects(ctx, m.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", m.Bucket, prefix, o.Err)
		}
		out[o.Key] = o.Size
	}
	return out, nil
}

// ObjectNames lists the names of the objects under prefix, sorted.
func (m *MinIO) ObjectNames(ctx context.Context, prefix string) ([]string, error) {
	objs, err := m.Objects(ctx, prefix)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(objs))
	for n := range objs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Get returns the content of an object.
func (m *MinIO) Get(ctx context.Context, name string) ([]byte, error) {
	o, err := m.Client.GetObject(ctx, m.Bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	return b, nil
}

// Put writes an object, replacing any object of that name.
func (m *MinIO) Put(ctx context.Context, name string, content []byte) error {
	_, err := m.Client.PutObject(ctx, m.Bucket, name, bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{})
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return nil
}

// Remove deletes an object.
func (m *MinIO) Remove(ctx context.Context, name string) error {
	if err := m.Client.RemoveObject(ctx, m.Bucket, name, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// EnableVersioning turns on bucket versioning, so that every PUT of an object keeps a
// version and VersionCounts can tell how often an object was written.
func (m *MinIO) EnableVersioning(ctx context.Context) error {
	if err := m.Client.EnableVersioning(ctx, m.Bucket); err != nil {
		return fmt.Errorf("enable versioning of %s: %w", m.Bucket, err)
	}
	return nil
}

// VersionCounts returns, for each object under prefix, how many versions it has (how many
// times it was written, with versioning enabled), delete markers left out.
func (m *MinIO) VersionCounts(ctx context.Context, prefix string) (map[string]int, error) {
	out := map[string]int{}
	for o := range m.Client.ListObjects(ctx, m.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list versions %s/%s: %w", m.Bucket, prefix, o.Err)
		}
		if o.IsDeleteMarker {
			continue
		}
		out[o.Key]++
	}
	return out, nil
}
