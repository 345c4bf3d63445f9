// Package objstore loads the Thanos object storage configuration (--objstore.config and
// --objstore.config-file) and opens the bucket through github.com/thanos-io/objstore.
//
// The YAML is the one Thanos reads: only the first document counts, it is parsed
// strictly (an unknown key is an error naming the key), and `type` is case-insensitive:
//
//	type: S3
//	config:
//	  bucket: thanos
//	  endpoint: minio:9000
//	prefix: ""
package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/client"
	"github.com/thanos-io/objstore/providers/azure"
	"github.com/thanos-io/objstore/providers/bos"
	"github.com/thanos-io/objstore/providers/cos"
	"github.com/thanos-io/objstore/providers/filesystem"
	"github.com/thanos-io/objstore/providers/gcs"
	"github.com/thanos-io/objstore/providers/obs"
	"github.com/thanos-io/objstore/providers/oci"
	"github.com/thanos-io/objstore/providers/oss"
	"github.com/thanos-io/objstore/providers/s3"
	"github.com/thanos-io/objstore/providers/swift"
	"go.yaml.in/yaml/v2"
)

// Config is a parsed objstore configuration: the provider type (upper-cased), its
// provider-specific section and the optional object key prefix.
type Config struct {
	// Type is the provider, upper-cased: S3, GCS, AZURE, SWIFT, COS, ALIYUNOSS, BOS,
	// FILESYSTEM, OCI or OBS.
	Type string
	// Config is the provider section as decoded YAML (nil when absent).
	Config any
	// Prefix is prepended to every object key.
	Prefix string
}

// fileConfig is the top level of the YAML.
type fileConfig struct {
	Type   string `yaml:"type"`
	Config any    `yaml:"config"`
	Prefix string `yaml:"prefix"`
}

// providerConfigs returns a fresh value of each provider's config type, used to check the
// provider section strictly before any client is built (some providers parse leniently
// themselves, and building some clients already talks to the network).
var providerConfigs = map[string]func() any{
	string(objstore.S3):         func() any { return &s3.Config{} },
	string(objstore.GCS):        func() any { return &gcs.Config{} },
	string(objstore.AZURE):      func() any { return &azure.Config{} },
	string(objstore.SWIFT):      func() any { return &swift.Config{} },
	string(objstore.COS):        func() any { return &cos.Config{} },
	string(objstore.ALIYUNOSS):  func() any { return &oss.Config{} },
	string(objstore.BOS):        func() any { return &bos.Config{} },
	string(objstore.FILESYSTEM): func() any { return &filesystem.Config{} },
	string(objstore.OCI):        func() any { return &oci.Config{} },
	string(objstore.OBS):        func() any { return &obs.Config{} },
}

// SupportedTypes lists the provider types, sorted.
func SupportedTypes() []string {
	types := make([]string, 0, len(providerConfigs))
	for t := range providerConfigs {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

// ParseConfig parses and validates an objstore YAML configuration without creating a
// client. Only the first YAML document is read. Every error starts with "objstore config:"
// and an unknown key is reported by name.
func ParseConfig(content []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(content))
	dec.SetStrict(true)
	var fc fileConfig
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("objstore config: configuration is empty")
		}
		return nil, explainYAMLError(err, "objstore config (top level: type, config, prefix)", true)
	}
	typ := strings.ToUpper(strings.TrimSpace(fc.Type))
	if typ == "" {
		return nil, fmt.Errorf("objstore config: missing type (one of %s)", strings.Join(SupportedTypes(), ", "))
	}
	newConf, ok := providerConfigs[typ]
	if !ok {
		return nil, fmt.Errorf("objstore config: unsupported type %q (one of %s)", fc.Type, strings.Join(SupportedTypes(), ", "))
	}
	if fc.Config != nil {
		if _, isMap := fc.Config.(map[any]any); !isMap {
			return nil, fmt.Errorf("objstore config: config section of %s must be a mapping, got %T", typ, fc.Config)
		}
	}
	section, err := yaml.Marshal(fc.Config)
	if err != nil {
		return nil, fmt.Errorf("objstore config: re-encode %s config section: %w", typ, err)
	}
	if fc.Config != nil {
		if err := yaml.UnmarshalStrict(section, newConf()); err != nil {
			return nil, explainYAMLError(err, typ+" config", false)
		}
	}
	cfg := &Config{Type: typ, Config: fc.Config, Prefix: fc.Prefix}
	if err := validate(cfg, section); err != nil {
		return nil, err
	}
	return cfg, nil
}

// unknownFieldRE matches yaml.v2's strict-mode complaint about an unknown key.
var unknownFieldRE = regexp.MustCompile(`line (\d+): field (\S+) not found in type (\S+)`)

// explainYAMLError rewrites yaml.v2's "field x not found in type y" into an error that
// names the key, e.g. `objstore config: unknown field "acess_key" in S3 config`.
// withLine adds the YAML line, which is only meaningful for the top level (the provider
// section is checked after re-encoding).
func explainYAMLError(err error, where string, withLine bool) error {
	matches := unknownFieldRE.FindAllStringSubmatch(err.Error(), -1)
	if len(matches) == 0 {
		return fmt.Errorf("objstore config: parse %s: %w", where, err)
	}
	var fields []string
	for _, m := range matches {
		f := fmt.Sprintf("%q", m[2])
		if !strings.HasSuffix(m[3], ".Config") && !strings.HasSuffix(m[3], ".fileConfig") {
			f += " (in section of type " + m[3] + ")"
		}
		if withLine {
			f += " at line " + m[1]
		}
		fields = append(fields, f)
	}
	noun := "field"
	if len(fields) > 1 {
		noun = "fields"
	}
	return fmt.Errorf("objstore config: unknown %s %s in %s", noun, strings.Join(fields, ", "), where)
}

// validate adds checks the library leaves out or reports unclearly.
func validate(cfg *Config, section []byte) error {
	switch cfg.Type {
	case string(objstore.S3):
		var c s3.Config
		if err := yaml.Unmarshal(section, &c); err != nil {
			return fmt.Errorf("objstore config: parse S3 config: %w", err)
		}
		switch {
		case c.Bucket == "":
			return errors.New("objstore config: S3 config: bucket is required")
		case c.Endpoint == "":
			return errors.New("objstore config: S3 config: endpoint is required (host[:port], e.g. s3.us-east-1.amazonaws.com or minio:9000)")
		case strings.Contains(c.Endpoint, "://"):
			return fmt.Errorf("objstore config: S3 config: endpoint %q must be host[:port] without a scheme; "+
				"set insecure: true for plain HTTP", c.Endpoint)
		case strings.Contains(c.Endpoint, "/"):
			return fmt.Errorf("objstore config: S3 config: endpoint %q must be host[:port] without a path", c.Endpoint)
		case (c.AccessKey == "") != (c.SecretKey == ""):
			return errors.New("objstore config: S3 config: access_key and secret_key must be given together " +
				"(or both left out to use environment variables, ~/.aws/credentials or IAM)")
		case c.AWSSDKAuth && c.AccessKey != "":
			return errors.New("objstore config: S3 config: aws_sdk_auth and access_key are mutually exclusive")
		}
	case string(objstore.FILESYSTEM):
		var c filesystem.Config
		if err := yaml.Unmarshal(section, &c); err != nil {
			return fmt.Errorf("objstore config: parse FILESYSTEM config: %w", err)
		}
		if c.Directory == "" {
			return errors.New("objstore config: FILESYSTEM config: directory is required")
		}
	}
	return nil
}

// NewBucket parses content (see ParseConfig) and opens the bucket, instrumented with the
// vigil_objstore_bucket_* metrics (labelled with the bucket name) on reg. component names
// the caller in provider user agents. reg may be nil.
func NewBucket(ctx context.Context, content []byte, logger *slog.Logger, reg prometheus.Registerer, component string) (objstore.InstrumentedBucket, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open object storage bucket: %w", err)
	}
	cfg, err := ParseConfig(content)
	if err != nil {
		return nil, err
	}
	bkt, err := client.NewBucketFromConfig(NewGoKitLogger(logger), &client.BucketConfig{
		Type: objstore.ObjProvider(cfg.Type), Config: cfg.Config, Prefix: cfg.Prefix,
	}, component, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s bucket: %w", cfg.Type, err)
	}
	if reg != nil {
		reg = prometheus.WrapRegistererWithPrefix("vigil_", reg)
	}
	logger.Info("opened object storage bucket", "type", cfg.Type, "bucket", bkt.Name(), "prefix", cfg.Prefix)
	return objstore.WrapWithMetrics(bkt, reg, bkt.Name()), nil
}
