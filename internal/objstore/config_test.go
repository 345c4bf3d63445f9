package objstore

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestFilesystemBucket(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	bkt, err := NewBucket(context.Background(), []byte("type: filesystem\nconfig:\n  directory: "+dir+"\n"), discard(), reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := bkt.Upload(ctx, "a/b", strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a", "b")); err != nil || string(b) != "hello" {
		t.Fatalf("object on disk = %q, %v", b, err)
	}
	rc, err := bkt.Get(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	_ = rc.Close()
	if string(b) != "hello" {
		t.Fatalf("Get = %q", b)
	}
	if n := testutil.CollectAndCount(reg, "vigil_objstore_bucket_operations_total"); n == 0 {
		t.Fatal("no vigil_objstore_bucket_operations_total metric registered")
	}
}

func TestPrefix(t *testing.T) {
	dir := t.TempDir()
	bkt, err := NewBucket(context.Background(), []byte("type: FILESYSTEM\nconfig:\n  directory: "+dir+"\nprefix: tenant-a\n"), discard(), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(context.Background(), "x", strings.NewReader("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tenant-a", "x")); err != nil {
		t.Fatalf("prefix not applied: %v", err)
	}
}

func TestS3ConfigNoNetwork(t *testing.T) {
	conf := `type: s3
config:
  bucket: thanos
  endpoint: 127.0.0.1:1
  access_key: minio
  secret_key: minio123
  insecure: true
  signature_version2: false
  http_config:
    idle_conn_timeout: 1m30s
    insecure_skip_verify: true
  bucket_lookup_type: path
`
	cfg, err := ParseConfig([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Type != "S3" {
		t.Fatalf("type = %q, want S3", cfg.Type)
	}
	bkt, err := NewBucket(context.Background(), []byte(conf), discard(), prometheus.NewRegistry(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if bkt.Name() != "thanos" {
		t.Fatalf("bucket name %q", bkt.Name())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, conf, want string }{
		{"unknown S3 key", "type: S3\nconfig:\n  bucket: b\n  endpoint: e:9000\n  acess_key: x\n",
			`objstore config: unknown field "acess_key" in S3 config`},
		{"unknown nested key", "type: S3\nconfig:\n  bucket: b\n  endpoint: e:9000\n  http_config:\n    idle_timeout: 1m\n",
			`unknown field "idle_timeout"`},
		{"unknown top-level key", "type: S3\nconfg:\n  bucket: b\n", `unknown field "confg" at line 2 in objstore config`},
		{"unknown filesystem key", "type: FILESYSTEM\nconfig:\n  dir: /tmp\n", `unknown field "dir" in FILESYSTEM config`},
		{"unsupported type", "type: ftp\n", `unsupported type "ftp"`},
		{"missing type", "config: {}\n", "missing type"},
		{"empty", "", "configuration is empty"},
		{"endpoint with scheme", "type: s3\nconfig:\n  bucket: b\n  endpoint: http://minio:9000\n", "without a scheme"},
		{"no endpoint", "type: s3\nconfig:\n  bucket: b\n", "endpoint is required"},
		{"access key alone", "type: s3\nconfig:\n  bucket: b\n  endpoint: minio:9000\n  access_key: a\n", "access_key and secret_key must be given together"},
		{"secret key alone", "type: s3\nconfig:\n  bucket: b\n  endpoint: minio:9000\n  secret_key: a\n", "access_key and secret_key must be given together"},
		{"no directory", "type: filesystem\nconfig: {}\n", "directory is required"},
		{"config not a map", "type: filesystem\nconfig: [a]\n", "must be a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.conf))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "objstore config: ") {
				t.Fatalf("error %q does not start with \"objstore config: \"", err)
			}
			if _, err := NewBucket(context.Background(), []byte(tc.conf), discard(), nil, "test"); err == nil {
				t.Fatal("NewBucket accepted a bad config")
			}
		})
	}
}

func TestAllProvidersParse(t *testing.T) {
	for _, conf := range []string{
		"type: gcs\nconfig:\n  bucket: b\n  service_account: ''\n",
		"type: azure\nconfig:\n  storage_account: a\n  storage_account_key: k\n  container: c\n",
		"type: swift\nconfig:\n  auth_url: http://x\n  container_name: c\n",
		"type: cos\nconfig:\n  bucket: b\n  region: r\n",
		"type: aliyunoss\nconfig:\n  endpoint: e\n  bucket: b\n",
		"type: bos\nconfig:\n  bucket: b\n  endpoint: e\n",
		"type: oci\nconfig:\n  provider: default\n  bucket: b\n",
		"type: obs\nconfig:\n  bucket: b\n  endpoint: e\n",
	} {
		if _, err := ParseConfig([]byte(conf)); err != nil {
			t.Errorf("%q: %v", conf, err)
		}
	}
}

func TestFirstDocumentOnly(t *testing.T) {
	dir := t.TempDir()
	conf := "type: FILESYSTEM\nconfig:\n  directory: " + dir + "\n---\ntype: S3\nbogus: true\n"
	cfg, err := ParseConfig([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Type != "FILESYSTEM" {
		t.Fatalf("type %q, want FILESYSTEM from the first document", cfg.Type)
	}
	if _, err := NewBucket(context.Background(), []byte(conf), discard(), nil, "test"); err != nil {
		t.Fatal(err)
	}
}

func parseFlags(t *testing.T, args ...string) (*Flags, error) {
	t.Helper()
	app := kingpin.New("test", "")
	cmd := app.Command("run", "")
	f := RegisterFlags(cmd)
	_, err := app.Parse(append([]string{"run"}, args...))
	return f, err
}

func TestFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bucket.yml")
	if err := os.WriteFile(path, []byte("type: FILESYSTEM\nconfig:\n  directory: $(VIGIL_TEST_DIR)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VIGIL_TEST_DIR", "/data/bucket")

	f, err := parseFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := f.Content(); b != nil || err != nil {
		t.Fatalf("no flags: Content = %q, %v; want nil, nil", b, err)
	}

	f, _ = parseFlags(t, "--objstore.config-file="+path)
	b, err := f.Content()
	if err != nil || !bytes.Contains(b, []byte("directory: /data/bucket")) {
		t.Fatalf("file: Content = %q, %v", b, err)
	}

	f, _ = parseFlags(t, "--objstore.config=type: FILESYSTEM")
	if b, err := f.Content(); err != nil || string(b) != "type: FILESYSTEM" {
		t.Fatalf("inline: Content = %q, %v", b, err)
	}

	f, _ = parseFlags(t, "--objstore.config-file="+path, "--objstore.config=type: S3")
	if _, err := f.Content(); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("both flags: err = %v", err)
	}

	f, _ = parseFlags(t, "--objstore.config=directory: $(VIGIL_TEST_UNSET_VARIABLE)")
	if _, err := f.Content(); err == nil || !strings.Contains(err.Error(), "VIGIL_TEST_UNSET_VARIABLE") {
		t.Fatalf("unset variable: err = %v", err)
	}

	f, _ = parseFlags(t, "--objstore.config-file="+filepath.Join(t.TempDir(), "missing.yml"))
	if _, err := f.Content(); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestGoKitLogger(t *testing.T) {
	var buf bytes.Buffer
	l := NewGoKitLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	_ = l.Log("level", "warn", "msg", "hello", "k", 1)
	_ = l.Log("odd")
	out := buf.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "msg=hello") || !strings.Contains(out, "k=1") {
		t.Fatalf("unexpected output %q", out)
	}
}
