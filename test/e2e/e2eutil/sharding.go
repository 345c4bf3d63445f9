package e2eutil

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"go.yaml.in/yaml/v2"
)

// HashMod returns the shard Prometheus's `action: hashmod` relabeling assigns to value
// (the source labels' values joined by the separator) for modulus: the last 8 bytes of
// the value's MD5 sum, big-endian, modulo modulus.
func HashMod(value string, modulus uint64) uint64 {
	sum := md5.Sum([]byte(value))
	return binary.BigEndian.Uint64(sum[8:]) % modulus
}

// ShardScrapeConfig is a static scrape job for a sharded Prometheus. With Modulus > 0
// the Prometheus keeps only the targets whose __address__ hashes to Shard (hashmod
// sharding: every shard lists all targets); with Modulus 0 it scrapes all of them
// (functional sharding: each shard lists its own jobs).
type ShardScrapeConfig struct {
	JobName        string
	Targets        []string
	Modulus, Shard uint64
	// ScrapeInterval of the job; the global interval when zero.
	ScrapeInterval time.Duration
	// MetricsPath, Params and HonorLabels are for a job that federates: for example
	// /federate with match[] and honor_labels.
	MetricsPath string
	Params      map[string][]string
	HonorLabels bool
}

type shardScrapeYAML struct {
	JobName        string              `yaml:"job_name"`
	ScrapeInterval string              `yaml:"scrape_interval,omitempty"`
	ScrapeTimeout  string              `yaml:"scrape_timeout,omitempty"`
	MetricsPath    string              `yaml:"metrics_path,omitempty"`
	Params         map[string][]string `yaml:"params,omitempty"`
	HonorLabels    bool                `yaml:"honor_labels,omitempty"`
	StaticConfigs  []struct {
		Targets []string `yaml:"targets"`
	} `yaml:"static_configs"`
	RelabelConfigs []map[string]any `yaml:"relabel_configs,omitempty"`
}

// ScrapeConfigsYAML renders a top-level scrape_configs section with the jobs, for
// PrometheusConfig.ExtraYAML (set NoSelfScrape and leave ScrapeConfigs empty, so that
// the rendered file has no scrape_configs of its own).
func ScrapeConfigsYAML(jobs ...ShardScrapeConfig) (string, error) {
	var out struct {
		ScrapeConfigs []shardScrapeYAML `yaml:"scrape_configs"`
	}
	for _, j := range jobs {
		y := shardScrapeYAML{JobName: j.JobName, MetricsPath: j.MetricsPath, Params: j.Params, HonorLabels: j.HonorLabels}
		if j.ScrapeInterval > 0 {
			y.ScrapeInterval, y.ScrapeTimeout = j.ScrapeInterval.String(), j.ScrapeInterval.String()
		}
		y.StaticConfigs = append(y.StaticConfigs, struct {
			Targets []string `yaml:"targets"`
		}{j.Targets})
		if j.Modulus > 0 {
			y.RelabelConfigs = []map[string]any{
				{"source_labels": []string{"__address__"}, "modulus": j.Modulus, "target_label": "__tmp_hashmod", "action": "hashmod"},
				{"source_labels": []string{"__tmp_hashmod"}, "regex": strconv.FormatUint(j.Shard, 10), "action": "keep"},
			}
		}
		out.ScrapeConfigs = append(out.ScrapeConfigs, y)
	}
	b, err := yaml.Marshal(&out)
	if err != nil {
		return "", fmt.Errorf("render scrape_configs: %w", err)
	}
	return string(b), nil
}
