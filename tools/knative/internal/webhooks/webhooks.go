// Package webhooks runs Knative's own admission webhooks in process: the defaulting and the
// resource-validation admission controllers of knative.dev/pkg, configured as serving's and eventing's
// cmd/webhook configure them (the same resource types, the same config stores built from the release's
// ConfigMaps, the same context decorators), with fake Kubernetes clients in place of a cluster. Each
// request goes through the controller's own Admit, so decoding, SetDefaults, Validate and the error
// wording are Knative's.
package webhooks

import (
	"context"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/logging"
	"knative.dev/pkg/webhook"
	"knative.dev/pkg/webhook/resourcesemantics"
	"knative.dev/pkg/webhook/resourcesemantics/defaulting"
	"knative.dev/pkg/webhook/resourcesemantics/validation"

	// The fake clients and informers the admission controllers are built with (registered with injection.Fake).
	_ "knative.dev/pkg/client/injection/kube/client/fake"
	_ "knative.dev/pkg/client/injection/kube/informers/admissionregistration/v1/mutatingwebhookconfiguration/fake"
	_ "knative.dev/pkg/client/injection/kube/informers/admissionregistration/v1/validatingwebhookconfiguration/fake"
	_ "knative.dev/pkg/injection/clients/namespacedkube/informers/core/v1/secret/fake"
)

// Plane is one Knative component's pair of admission webhooks.
type Plane struct {
	DefaultingName string
	ValidationName string
	types          map[schema.GroupVersionKind]resourcesemantics.GenericCRD
	defaulting     webhook.AdmissionController
	validation     webhook.AdmissionController
}

// Handles reports whether the plane's webhooks are registered for the kind.
func (p *Plane) Handles(gvk schema.GroupVersionKind) bool {
	_, ok := p.types[gvk]
	return ok
}

// The user the requests come from: a cluster administrator applying manifests.
var admin = authenticationv1.UserInfo{
	Username: "kubernetes-admin",
	Groups:   []string{"kubeadm:cluster-admins", "system:authenticated"},
}

// Request is the AdmissionRequest the API server sends for a create of obj (JSON).
func Request(gvk schema.GroupVersionKind, plural, namespace, name string, obj []byte) *admissionv1.AdmissionRequest {
	return &admissionv1.AdmissionRequest{
		UID:       "kiot-admission",
		Kind:      metaGVK(gvk),
		Resource:  metaGVR(gvk, plural),
		Name:      name,
		Namespace: namespace,
		Operation: admissionv1.Create,
		UserInfo:  admin,
		Object:    runtimeRaw(obj),
	}
}

// Default runs the mutating webhook: the JSON patch it answers (empty when it changes nothing).
func (p *Plane) Default(ctx context.Context, req *admissionv1.AdmissionRequest) (patch []byte, warnings []string, err error) {
	resp := p.defaulting.Admit(ctx, req)
	if !resp.Allowed {
		return nil, resp.Warnings, denied(p.DefaultingName, resp)
	}
	return resp.Patch, resp.Warnings, nil
}

// Validate runs the validating webhook.
func (p *Plane) Validate(ctx context.Context, req *admissionv1.AdmissionRequest) (warnings []string, err error) {
	resp := p.validation.Admit(ctx, req)
	if !resp.Allowed {
		return resp.Warnings, denied(p.ValidationName, resp)
	}
	return resp.Warnings, nil
}

// base is the context every admission controller is built in: fake clients and informers, webhook options,
// no logging (the controllers log each request at info level).
func base(secretName string) context.Context {
	// system.Namespace() reads it; the controllers filter their secret informer by it.
	if os.Getenv("SYSTEM_NAMESPACE") == "" {
		_ = os.Setenv("SYSTEM_NAMESPACE", "knative-system")
	}
	ctx := logging.WithLogger(context.Background(), zap.NewNop().Sugar())
	ctx, _ = injection.Fake.SetupInformers(ctx, &rest.Config{})
	return webhook.WithOptions(ctx, webhook.Options{SecretName: secretName})
}

// watch starts a static watcher over the release's ConfigMaps (those of one namespace) for the stores.
func watch(configMaps map[string]*corev1.ConfigMap, stores ...interface{ WatchConfigs(configmap.Watcher) }) (err error) {
	defer func() {
		if fatal := recover(); fatal != nil {
			err = fmt.Errorf("%v", fatal)
		}
	}()
	list := make([]*corev1.ConfigMap, 0, len(configMaps))
	for _, cm := range configMaps {
		list = append(list, cm)
	}
	watcher := configmap.NewStaticWatcher(list...)
	for _, store := range stores {
		store.WatchConfigs(watcher)
	}
	return watcher.Start(nil)
}

func admissionController(impl *controller.Impl) webhook.AdmissionController {
	return impl.Reconciler.(webhook.AdmissionController)
}

func newPlane(
	ctx context.Context,
	defaultingName, validationName string,
	types map[schema.GroupVersionKind]resourcesemantics.GenericCRD,
	defaultingContext, validationContext func(context.Context) context.Context,
	disallowUnknownFields bool,
	callbacks map[schema.GroupVersionKind]validation.Callback,
) (*Plane, error) {
	if defaultingName == "" || validationName == "" {
		return nil, fmt.Errorf("webhook names missing (%q, %q)", defaultingName, validationName)
	}
	return &Plane{
		DefaultingName: defaultingName,
		ValidationName: validationName,
		types:          types,
		defaulting: admissionController(defaulting.NewAdmissionController(ctx, defaultingName, "/defaulting",
			types, defaultingContext, disallowUnknownFields)),
		validation: admissionController(validation.NewAdmissionController(ctx, validationName, "/resource-validation",
			types, validationContext, disallowUnknownFields, callbacks)),
	}, nil
}

// storeLogger: a config store logs a fatal error when a ConfigMap of the cluster does not parse (the
// webhook would exit at start); here that becomes a panic with the message, which watch turns into an error.
func storeLogger() *zap.SugaredLogger {
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zapcore.EncoderConfig{}), zapcore.AddSync(io.Discard), zapcore.FatalLevel)
	return zap.New(core, zap.WithFatalHook(zapcore.WriteThenPanic)).Sugar()
}
