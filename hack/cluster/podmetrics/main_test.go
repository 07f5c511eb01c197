package main

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
)

var now = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

func pod(namespace, name, app string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: namespace, Name: name, Labels: map[string]string{"app": app}, Annotations: annotations,
	}}
}

func newProvider(t *testing.T, pods ...*corev1.Pod) *PodMetrics {
	t.Helper()
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range pods {
		if err := indexer.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	return &PodMetrics{Pods: corelisters.NewPodLister(indexer), Now: func() metav1.Time { return now }}
}

var inflight = provider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: "inflight"}

func TestBySelectorListsAnnotatedPodsOnly(t *testing.T) {
	p := newProvider(t,
		pod("ns", "b", "agent", map[string]string{"metrics.surge.dev/inflight": "2500m"}),
		pod("ns", "a", "agent", map[string]string{"metrics.surge.dev/inflight": "4"}),
		pod("ns", "c", "agent", map[string]string{"metrics.surge.dev/other": "9"}),     // no value: missing
		pod("ns", "d", "else", map[string]string{"metrics.surge.dev/inflight": "7"}),   // not selected
		pod("ns2", "e", "agent", map[string]string{"metrics.surge.dev/inflight": "8"}), // other namespace
	)
	selector := labels.SelectorFromSet(labels.Set{"app": "agent"})
	list, err := p.GetMetricBySelector(context.Background(), "ns", selector, inflight, labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range list.Items {
		if v.DescribedObject.Kind != "Pod" || v.Metric.Name != "inflight" || !v.Timestamp.Equal(&now) ||
			v.WindowSeconds == nil || *v.WindowSeconds != 60 {
			t.Errorf("value %+v: want kind Pod, metric inflight, timestamp %v, window 60", v, now)
		}
		got = append(got, v.DescribedObject.Name+"="+v.Value.String())
	}
	if want := "a=4 b=2500m"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	// The values have no labels: a metric selector that needs one selects none of them.
	needs, _ := labels.Parse("queue=high")
	list, err = p.GetMetricBySelector(context.Background(), "ns", selector, inflight, needs)
	if err != nil || len(list.Items) != 0 {
		t.Errorf("with metric selector %v: got %v, %v; want no values", needs, list, err)
	}
}

func TestByNameAndErrors(t *testing.T) {
	p := newProvider(t,
		pod("ns", "a", "agent", map[string]string{"metrics.surge.dev/inflight": "3"}),
		pod("ns", "b", "agent", nil),
		pod("ns", "bad", "x", map[string]string{"metrics.surge.dev/inflight": "three"}),
	)
	ctx := context.Background()
	v, err := p.GetMetricByName(ctx, types.NamespacedName{Namespace: "ns", Name: "a"}, inflight, labels.Everything())
	if err != nil || v.Value.String() != "3" {
		t.Errorf("pod a: got %v, %v; want 3", v, err)
	}
	_, err = p.GetMetricByName(ctx, types.NamespacedName{Namespace: "ns", Name: "b"}, inflight, labels.Everything())
	if !apierrors.IsNotFound(err) {
		t.Errorf("pod b without the annotation: got %v, want NotFound", err)
	}
	nodes := provider.CustomMetricInfo{GroupResource: schema.GroupResource{Resource: "nodes"}, Metric: "inflight"}
	_, err = p.GetMetricBySelector(ctx, "", labels.Everything(), nodes, labels.Everything())
	if !apierrors.IsNotFound(err) {
		t.Errorf("nodes: got %v, want NotFound", err)
	}
	_, err = p.GetMetricBySelector(ctx, "ns", labels.Everything(), inflight, labels.Everything())
	if err == nil || !strings.Contains(err.Error(), `pod ns/bad: annotation metrics.surge.dev/inflight="three" is not a quantity`) {
		t.Errorf("bad annotation: got %v, want an error naming the pod and the annotation", err)
	}
}

func TestListAllMetrics(t *testing.T) {
	p := newProvider(t,
		pod("ns", "a", "agent", map[string]string{"metrics.surge.dev/inflight": "3", "unrelated": "x"}),
		pod("ns2", "b", "agent", map[string]string{"metrics.surge.dev/queue": "1", "metrics.surge.dev/inflight": "2"}),
	)
	var got []string
	for _, info := range p.ListAllMetrics() {
		got = append(got, info.String())
	}
	if want := "pods/inflight(namespaced) pods/queue(namespaced)"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}
