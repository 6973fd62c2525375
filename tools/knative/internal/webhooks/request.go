package webhooks

import (
	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	webhookerrors "k8s.io/apiserver/pkg/admission/plugin/webhook/errors"
)

func metaGVK(gvk schema.GroupVersionKind) metav1.GroupVersionKind {
	return metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}
}

func metaGVR(gvk schema.GroupVersionKind, plural string) metav1.GroupVersionResource {
	return metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: plural}
}

func runtimeRaw(obj []byte) runtime.RawExtension {
	return runtime.RawExtension{Raw: obj}
}

// denied is the API server's error for a webhook's refusal (its webhook dispatcher's ToStatusErr).
func denied(name string, resp *admissionv1.AdmissionResponse) *apierrors.StatusError {
	return webhookerrors.ToStatusErr(name, resp.Result)
}
