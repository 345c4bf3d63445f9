package hashring

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

func BenchmarkHashSeries(b *testing.B) {
	// A typical Kubernetes series: 10 labels, about 300 bytes of hash input.
	ls := []prompb.Label{
		{Name: "__name__", Value: "container_cpu_usage_seconds_total"},
		{Name: "container", Value: "prometheus"},
		{Name: "cpu", Value: "total"},
		{Name: "endpoint", Value: "https-metrics"},
		{Name: "id", Value: "/kubepods/burstable/pod0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"},
		{Name: "instance", Value: "10.0.12.34:10250"},
		{Name: "job", Value: "kubelet"},
		{Name: "namespace", Value: "monitoring"},
		{Name: "node", Value: "ip-10-0-12-34.eu-west-1.compute.internal"},
		{Name: "pod", Value: "prometheus-k8s-0"},
	}
	b.ReportAllocs()
	for b.Loop() {
		HashSeries("default-tenant", ls)
	}
}

func BenchmarkGetN(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	hashes := make([]uint64, 4096)
	for i := range hashes {
		hashes[i] = rng.Uint64()
	}
	for _, alg := range []string{AlgorithmHashmod, AlgorithmKetama} {
		for _, size := range []int{3, 30} {
			eps := make([]Endpoint, size)
			for i := range eps {
				eps[i].Address = fmt.Sprintf("receive-%d.receive.monitoring.svc:10901", i)
			}
			r := mustRing(b, []Config{{Endpoints: eps}}, alg)
			b.Run(fmt.Sprintf("%s/%d", alg, size), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := r.GetN("default-tenant", hashes[i&4095], uint64(i%3)); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// BenchmarkNewKetama is the cost of a ring (re)load, paid once per file change.
func BenchmarkNewKetama(b *testing.B) {
	eps := make([]Endpoint, 30)
	for i := range eps {
		eps[i] = Endpoint{Address: fmt.Sprintf("receive-%d:10901", i), AZ: fmt.Sprint(i % 3)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newKetama(eps, sectionsPerEndpoint); err != nil {
			b.Fatal(err)
		}
	}
}
