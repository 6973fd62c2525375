package webhooks

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"knative.dev/pkg/webhook"
	"knative.dev/pkg/webhook/resourcesemantics"
	"knative.dev/pkg/webhook/resourcesemantics/validation"
	autoscalingv1alpha1 "knative.dev/serving/pkg/apis/autoscaling/v1alpha1"
	apisconfig "knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	servingv1beta1 "knative.dev/serving/pkg/apis/serving/v1beta1"
	extravalidation "knative.dev/serving/pkg/webhook"

	"kiot.dev/tools/knative/internal/release"
)

// servingTypes: the kinds serving's cmd/webhook registers, except networking.internal.knative.dev's
// (created by serving's controllers, never by users).
var servingTypes = map[schema.GroupVersionKind]resourcesemantics.GenericCRD{
	servingv1.SchemeGroupVersion.WithKind("Revision"):                &servingv1.Revision{},
	servingv1.SchemeGroupVersion.WithKind("Configuration"):           &servingv1.Configuration{},
	servingv1.SchemeGroupVersion.WithKind("Route"):                   &servingv1.Route{},
	servingv1.SchemeGroupVersion.WithKind("Service"):                 &servingv1.Service{},
	autoscalingv1alpha1.SchemeGroupVersion.WithKind("PodAutoscaler"): &autoscalingv1alpha1.PodAutoscaler{},
	autoscalingv1alpha1.SchemeGroupVersion.WithKind("Metric"):        &autoscalingv1alpha1.Metric{},
	servingv1beta1.SchemeGroupVersion.WithKind("DomainMapping"):      &servingv1beta1.DomainMapping{},
}

// servingCallbacks: serving's extra validation (a pod-spec dry run, which it runs for dry-run requests only).
var servingCallbacks = map[schema.GroupVersionKind]validation.Callback{
	servingv1.SchemeGroupVersion.WithKind("Service"): validation.NewCallback(
		extravalidation.ValidateService, webhook.Create, webhook.Update),
	servingv1.SchemeGroupVersion.WithKind("Configuration"): validation.NewCallback(
		extravalidation.ValidateConfiguration, webhook.Create, webhook.Update),
}

// Serving builds serving's webhooks over its config store (config-defaults, config-features,
// config-autoscaler) loaded with the given ConfigMaps: store.ToContext decorates both, as in cmd/webhook,
// and serving decodes without disallowing unknown fields (its CRDs have schemas).
func Serving(m *release.Module) (*Plane, error) {
	ctx := base("webhook-certs")
	store := apisconfig.NewStore(storeLogger())
	if err := watch(m.ConfigMaps, store); err != nil {
		return nil, err
	}
	return newPlane(ctx, m.DefaultingWebhook, m.ValidationWebhook, servingTypes, store.ToContext, store.ToContext,
		false, servingCallbacks)
}
