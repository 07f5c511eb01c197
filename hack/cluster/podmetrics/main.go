// Command podmetrics serves custom.metrics.k8s.io (v1beta2 and v1beta1) for pods on the local
// e2e control plane, so that the real HPA controller can scale on Pods metrics.
//
// It is a test device standing in for prometheus-adapter, which a real cluster would run: the Go
// module proxy these machines use refuses sigs.k8s.io/prometheus-adapter, and the tests need no
// Prometheus between them and the HPA. It is built on the same library as prometheus-adapter
// and KEDA's adapter (sigs.k8s.io/custom-metrics-apiserver), so the HPA reads it through the
// aggregator exactly as it would read them.
//
// A pod's value of metric M is the quantity in its annotation `metrics.surge.dev/M`, which the
// tests write (as they write kwok's usage-cpu annotations that metrics-server reports). A pod
// without that annotation has no value of M, so the HPA counts it as missing, as it would a pod
// that Prometheus has no series for. Values carry the time of the request (the annotation states
// the pod's current value, like a gauge read by an instant query) and a window of 1 minute.
// Pods are read from an informer's cache, never listed per request.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	genericapiserver "k8s.io/apiserver/pkg/server"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"
	"k8s.io/metrics/pkg/apis/custom_metrics"

	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
)

// AnnotationPrefix + metric name is the annotation that holds a pod's value of that metric.
const AnnotationPrefix = "metrics.surge.dev/"

// WindowSeconds is the window each value claims to cover (the HPA only reports it).
const WindowSeconds int64 = 60

var podsResource = schema.GroupResource{Resource: "pods"}

// PodMetrics is a provider.CustomMetricsProvider that reads pod annotations.
type PodMetrics struct {
	Pods corelisters.PodLister
	Now  func() metav1.Time
}

var _ provider.CustomMetricsProvider = (*PodMetrics)(nil)

// GetMetricByName answers /namespaces/NS/pods/NAME/METRIC.
func (p *PodMetrics) GetMetricByName(_ context.Context, name types.NamespacedName,
	info provider.CustomMetricInfo, metricSelector labels.Selector) (*custom_metrics.MetricValue, error) {
	if !servesPods(info) {
		return nil, provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	pod, err := p.Pods.Pods(name.Namespace).Get(name.Name)
	if err != nil {
		return nil, err
	}
	value, ok, err := p.valueOf(pod, info.Metric)
	if err != nil {
		return nil, err
	}
	// The values carry no labels, so only a selector that matches the empty set selects them.
	if !ok || !metricSelector.Matches(labels.Set{}) {
		return nil, provider.NewMetricNotFoundForError(info.GroupResource, info.Metric, name.Name)
	}
	return value, nil
}

// GetMetricBySelector answers /namespaces/NS/pods/*/METRIC?labelSelector=... (what the HPA asks
// for a Pods metric): the pods that match and carry the annotation, sorted by name.
func (p *PodMetrics) GetMetricBySelector(_ context.Context, namespace string, selector labels.Selector,
	info provider.CustomMetricInfo, metricSelector labels.Selector) (*custom_metrics.MetricValueList, error) {
	if !servesPods(info) {
		return nil, provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	list := &custom_metrics.MetricValueList{Items: []custom_metrics.MetricValue{}}
	if !metricSelector.Matches(labels.Set{}) {
		return list, nil
	}
	pods, err := p.Pods.Pods(namespace).List(selector)
	if err != nil {
		return nil, err
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	for _, pod := range pods {
		value, ok, err := p.valueOf(pod, info.Metric)
		if err != nil {
			return nil, err
		}
		if ok {
			list.Items = append(list.Items, *value)
		}
	}
	return list, nil
}

// ListAllMetrics names every metric some pod has an annotation for (API discovery only).
func (p *PodMetrics) ListAllMetrics() []provider.CustomMetricInfo {
	pods, err := p.Pods.List(labels.Everything())
	if err != nil {
		klog.ErrorS(err, "listing pods from the cache")
		return nil
	}
	seen := map[string]bool{}
	for _, pod := range pods {
		for key := range pod.Annotations {
			if name, ok := strings.CutPrefix(key, AnnotationPrefix); ok {
				seen[name] = true
			}
		}
	}
	infos := make([]provider.CustomMetricInfo, 0, len(seen))
	for name := range seen {
		infos = append(infos, provider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: name})
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Metric < infos[j].Metric })
	return infos
}

func servesPods(info provider.CustomMetricInfo) bool {
	return info.Namespaced && info.GroupResource == podsResource
}

// valueOf returns the pod's value of the metric; ok is false when the pod has no annotation
// for it. An annotation that is not a quantity is an error naming the pod and the annotation,
// so the HPA reports it (FailedGetPodsMetric) instead of scaling on a guess.
func (p *PodMetrics) valueOf(pod *corev1.Pod, metric string) (value *custom_metrics.MetricValue, ok bool, err error) {
	key := AnnotationPrefix + metric
	text, ok := pod.Annotations[key]
	if !ok {
		return nil, false, nil
	}
	quantity, err := resource.ParseQuantity(text)
	if err != nil {
		return nil, false, fmt.Errorf("pod %s/%s: annotation %s=%q is not a quantity (write e.g. \"3\" or \"2500m\"): %w",
			pod.Namespace, pod.Name, key, text, err)
	}
	window := WindowSeconds
	return &custom_metrics.MetricValue{
		// "/v1": group "" + "/" + version, as the library's helpers.ReferenceFor writes it.
		DescribedObject: custom_metrics.ObjectReference{
			APIVersion: "/v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		},
		Metric:        custom_metrics.MetricIdentifier{Name: metric},
		Timestamp:     p.Now(),
		WindowSeconds: &window,
		Value:         quantity,
	}, true, nil
}

func main() {
	logs.InitLogs()
	defer logs.FlushLogs()

	// Flags of the library: --secure-port, --tls-cert-file, --lister-kubeconfig, ...
	adapter := &basecmd.AdapterBase{Name: "surge-podmetrics"}
	if err := adapter.Flags().Parse(os.Args[1:]); err != nil {
		klog.Fatalf("flags: %v", err)
	}
	informers, err := adapter.Informers()
	if err != nil {
		klog.Fatalf("informers: %v", err)
	}
	pods := informers.Core().V1().Pods()
	adapter.WithCustomMetrics(&PodMetrics{Pods: pods.Lister(), Now: metav1.Now})

	ctx := genericapiserver.SetupSignalContext()
	// Serve only from a filled cache: an empty one would tell the HPA that every pod is missing.
	informers.Start(ctx.Done())
	for informer, synced := range informers.WaitForCacheSync(ctx.Done()) {
		if !synced {
			klog.Fatalf("the %v cache did not sync", informer)
		}
	}
	klog.InfoS("serving custom.metrics.k8s.io for pods", "annotationPrefix", AnnotationPrefix)
	if err := adapter.Run(ctx); err != nil {
		klog.Fatalf("custom metrics server: %v", err)
	}
}
