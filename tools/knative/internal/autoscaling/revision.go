// Package autoscaling reads a Knative Service the way Serving's controllers do on its way to the autoscaler:
// the Service's template becomes a Revision (configuration/resources.MakeRevision), the Revision a
// PodAutoscaler (revision/resources.MakePA), the PodAutoscaler a Decider (kpa/resources.MakeDecider) and a
// Metric (autoscaling/resources.MakeMetric), with config-autoscaler and config-defaults of the release (or
// a stricter cluster's). Nothing here re-states a Knative rule: defaults, bounds and targets are Knative's.
package autoscaling

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/logging"
	autoscalingv1alpha1 "knative.dev/serving/pkg/apis/autoscaling/v1alpha1"
	apisconfig "knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	asconfig "knative.dev/serving/pkg/autoscaler/config"
	"knative.dev/serving/pkg/autoscaler/config/autoscalerconfig"
	"knative.dev/serving/pkg/autoscaler/scaling"
	kparesources "knative.dev/serving/pkg/reconciler/autoscaling/kpa/resources"
	asresources "knative.dev/serving/pkg/reconciler/autoscaling/resources"
	configresources "knative.dev/serving/pkg/reconciler/configuration/resources"
	revisionresources "knative.dev/serving/pkg/reconciler/revision/resources"
	"sigs.k8s.io/yaml"
)

// Revision is what the autoscaler of one Knative Service works with.
type Revision struct {
	Service              string
	PA                   *autoscalingv1alpha1.PodAutoscaler
	Metric               *autoscalingv1alpha1.Metric
	Decider              *scaling.Decider
	Config               *autoscalerconfig.Config
	MinScale, MaxScale   int32
	ContainerConcurrency int64
}

// Settings is the summary printed by `capacity autoscaling`: the values the autoscaler ends up with.
type Settings struct {
	Service               string  `json:"service"`
	Class                 string  `json:"class"`
	Metric                string  `json:"metric"`
	ContainerConcurrency  int64   `json:"containerConcurrency"`
	TargetPerPod          float64 `json:"targetPerPod"`
	TotalPerPod           float64 `json:"totalPerPod"`
	PanicThreshold        float64 `json:"panicThreshold"`
	StableWindowS         float64 `json:"stableWindowSeconds"`
	PanicWindowS          float64 `json:"panicWindowSeconds"`
	ScaleDownDelayS       float64 `json:"scaleDownDelaySeconds"`
	ScaleToZeroGraceS     float64 `json:"scaleToZeroGracePeriodSeconds"`
	ScaleToZeroRetentionS float64 `json:"scaleToZeroPodRetentionSeconds"`
	MinScale              int32   `json:"minScale"`
	MaxScale              int32   `json:"maxScale"`
	InitialScale          int32   `json:"initialScale"`
	ActivationScale       int32   `json:"activationScale"`
	TargetBurstCapacity   float64 `json:"targetBurstCapacity"`
	MaxScaleUpRate        float64 `json:"maxScaleUpRate"`
	EnableScaleToZero     bool    `json:"enableScaleToZero"`
	ScaleToZeroAfterIdleS float64 `json:"scaleToZeroAfterIdleSeconds"`
}

// Store is the config store of serving's controllers, loaded from ConfigMaps (config-autoscaler,
// config-defaults, config-features, config-deployment …).
func Store(configMaps map[string]*corev1.ConfigMap) (context.Context, *autoscalerconfig.Config, error) {
	logger := zap.NewNop().Sugar()
	store := apisconfig.NewStore(logger)
	for _, name := range []string{"config-defaults", "config-features", "config-autoscaler"} {
		cm, ok := configMaps[name]
		if !ok {
			return nil, nil, fmt.Errorf("the release has no ConfigMap %s", name)
		}
		store.OnConfigChanged(cm)
	}
	ctx := store.ToContext(logging.WithLogger(context.Background(), logger))
	cfg, err := asconfig.NewConfigFromConfigMap(configMaps["config-autoscaler"])
	if err != nil {
		return nil, nil, fmt.Errorf("config-autoscaler: %w", err)
	}
	return ctx, cfg, nil
}

// FromService builds the autoscaler's view of a Knative Service (YAML or JSON), as the cluster would.
func FromService(ctx context.Context, cfg *autoscalerconfig.Config, doc []byte) (*Revision, error) {
	svc := &servingv1.Service{}
	if err := yaml.Unmarshal(doc, svc); err != nil {
		return nil, err
	}
	svc.SetDefaults(ctx)
	configuration := &servingv1.Configuration{ObjectMeta: svc.ObjectMeta, Spec: svc.Spec.ConfigurationSpec}
	rev := configresources.MakeRevision(ctx, configuration, time.Unix(0, 0))
	rev.Name = svc.Name + "-00001"
	// A revision that a Route sends traffic to: the autoscaler treats it as reachable.
	rev.SetRoutingState(servingv1.RoutingStateActive, time.Unix(0, 0))
	pa := revisionresources.MakePA(rev, nil)
	min, max := pa.ScaleBounds(cfg)
	return &Revision{
		Service:              svc.Name,
		PA:                   pa,
		Metric:               asresources.MakeMetric(pa, "", cfg),
		Decider:              kparesources.MakeDecider(pa, cfg),
		Config:               cfg,
		MinScale:             min,
		MaxScale:             max,
		ContainerConcurrency: rev.Spec.GetContainerConcurrency(),
	}, nil
}

// ScaleToZeroWait is how long a PodAutoscaler stays inactive before its last pod goes
// (kpa/scaler.go handleScaleToZero: the larger of scale-to-zero-grace-period and the pod retention).
func (r *Revision) ScaleToZeroWait() time.Duration {
	retention := r.Config.ScaleToZeroPodRetentionPeriod
	if d, ok := r.PA.ScaleToZeroPodRetention(); ok {
		retention = d
	}
	if r.Config.ScaleToZeroGracePeriod > retention {
		return r.Config.ScaleToZeroGracePeriod
	}
	return retention
}

// Settings summarises the revision's autoscaling as Knative resolved it.
func (r *Revision) Settings() Settings {
	spec := r.Decider.Spec
	retention := r.Config.ScaleToZeroPodRetentionPeriod
	if d, ok := r.PA.ScaleToZeroPodRetention(); ok {
		retention = d
	}
	return Settings{
		Service:               r.Service,
		Class:                 r.PA.Class(),
		Metric:                spec.ScalingMetric,
		ContainerConcurrency:  r.ContainerConcurrency,
		TargetPerPod:          spec.TargetValue,
		TotalPerPod:           spec.TotalValue,
		PanicThreshold:        spec.PanicThreshold,
		StableWindowS:         spec.StableWindow.Seconds(),
		PanicWindowS:          r.Metric.Spec.PanicWindow.Seconds(),
		ScaleDownDelayS:       spec.ScaleDownDelay.Seconds(),
		ScaleToZeroGraceS:     r.Config.ScaleToZeroGracePeriod.Seconds(),
		ScaleToZeroRetentionS: retention.Seconds(),
		MinScale:              r.MinScale,
		MaxScale:              r.MaxScale,
		InitialScale:          spec.InitialScale,
		ActivationScale:       spec.ActivationScale,
		TargetBurstCapacity:   spec.TargetBurstCapacity,
		MaxScaleUpRate:        spec.MaxScaleUpRate,
		EnableScaleToZero:     r.Config.EnableScaleToZero,
		// From the end of the last request: the stable window empties, the scale-down delay holds the last
		// non-zero recommendation, then the PA is inactive for the grace period (kpa/scaler.go).
		ScaleToZeroAfterIdleS: (spec.StableWindow + spec.ScaleDownDelay + r.ScaleToZeroWait()).Seconds(),
	}
}
