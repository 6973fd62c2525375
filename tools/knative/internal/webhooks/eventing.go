package webhooks

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime/schema"
	defaultconfig "knative.dev/eventing/pkg/apis/config"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	eventingv1alpha1 "knative.dev/eventing/pkg/apis/eventing/v1alpha1"
	eventingv1beta1 "knative.dev/eventing/pkg/apis/eventing/v1beta1"
	eventingv1beta2 "knative.dev/eventing/pkg/apis/eventing/v1beta2"
	"knative.dev/eventing/pkg/apis/feature"
	flowsv1 "knative.dev/eventing/pkg/apis/flows/v1"
	channeldefaultconfig "knative.dev/eventing/pkg/apis/messaging/config"
	messagingv1 "knative.dev/eventing/pkg/apis/messaging/v1"
	"knative.dev/eventing/pkg/apis/sinks"
	sinksv1alpha1 "knative.dev/eventing/pkg/apis/sinks/v1alpha1"
	pingdefaultconfig "knative.dev/eventing/pkg/apis/sources/config"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	sourcesv1alpha1 "knative.dev/eventing/pkg/apis/sources/v1alpha1"
	sourcesv1beta2 "knative.dev/eventing/pkg/apis/sources/v1beta2"
	kubeclient "knative.dev/pkg/client/injection/kube/client"
	"knative.dev/pkg/webhook/resourcesemantics"
	"knative.dev/pkg/webhook/resourcesemantics/validation"

	"kiot.dev/tools/knative/internal/release"
)

// eventingTypes: the kinds eventing's cmd/webhook registers, except RequestReply (its validation needs a
// CESQL function that only the webhook's main registers).
var eventingTypes = map[schema.GroupVersionKind]resourcesemantics.GenericCRD{
	eventingv1alpha1.SchemeGroupVersion.WithKind("EventPolicy"):      &eventingv1alpha1.EventPolicy{},
	eventingv1alpha1.SchemeGroupVersion.WithKind("EventTransform"):   &eventingv1alpha1.EventTransform{},
	eventingv1beta1.SchemeGroupVersion.WithKind("EventType"):         &eventingv1beta1.EventType{},
	eventingv1beta2.SchemeGroupVersion.WithKind("EventType"):         &eventingv1beta2.EventType{},
	eventingv1.SchemeGroupVersion.WithKind("Broker"):                 &eventingv1.Broker{},
	eventingv1.SchemeGroupVersion.WithKind("Trigger"):                &eventingv1.Trigger{},
	messagingv1.SchemeGroupVersion.WithKind("Channel"):               &messagingv1.Channel{},
	messagingv1.SchemeGroupVersion.WithKind("Subscription"):          &messagingv1.Subscription{},
	sourcesv1alpha1.SchemeGroupVersion.WithKind("IntegrationSource"): &sourcesv1alpha1.IntegrationSource{},
	sourcesv1beta2.SchemeGroupVersion.WithKind("PingSource"):         &sourcesv1beta2.PingSource{},
	sourcesv1.SchemeGroupVersion.WithKind("ApiServerSource"):         &sourcesv1.ApiServerSource{},
	sourcesv1.SchemeGroupVersion.WithKind("PingSource"):              &sourcesv1.PingSource{},
	sourcesv1.SchemeGroupVersion.WithKind("SinkBinding"):             &sourcesv1.SinkBinding{},
	sourcesv1.SchemeGroupVersion.WithKind("ContainerSource"):         &sourcesv1.ContainerSource{},
	sinksv1alpha1.SchemeGroupVersion.WithKind("JobSink"):             &sinksv1alpha1.JobSink{},
	sinksv1alpha1.SchemeGroupVersion.WithKind("IntegrationSink"):     &sinksv1alpha1.IntegrationSink{},
	flowsv1.SchemeGroupVersion.WithKind("Parallel"):                  &flowsv1.Parallel{},
	flowsv1.SchemeGroupVersion.WithKind("Sequence"):                  &flowsv1.Sequence{},
}

// Eventing builds eventing's webhooks with the context decorators of its cmd/webhook: the broker defaults
// (config-br-defaults), channel defaults (default-ch-webhook), features (config-features) for both, plus
// the PingSource defaults (config-ping-defaults) and the sinks config for validation. Eventing decodes
// with unknown fields disallowed.
func Eventing(m *release.Module) (*Plane, error) {
	ctx := base("eventing-webhook-certs")
	store := defaultconfig.NewStore(storeLogger())
	channelStore := channeldefaultconfig.NewStore(storeLogger())
	pingStore := pingdefaultconfig.NewStore(storeLogger())
	featureStore := feature.NewStore(storeLogger())
	if err := watch(m.ConfigMaps, store, channelStore, pingStore, featureStore); err != nil {
		return nil, err
	}
	k8s := kubeclient.Get(ctx)
	defaulting := func(ctx context.Context) context.Context {
		return featureStore.ToContext(channelStore.ToContext(store.ToContext(ctx)))
	}
	validating := func(ctx context.Context) context.Context {
		return sinks.WithConfig(
			featureStore.ToContext(channelStore.ToContext(pingStore.ToContext(store.ToContext(ctx)))),
			&sinks.Config{KubeClient: k8s})
	}
	return newPlane(ctx, m.DefaultingWebhook, m.ValidationWebhook, eventingTypes, defaulting, validating, true,
		map[schema.GroupVersionKind]validation.Callback{})
}
