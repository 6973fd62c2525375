package apiserver

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/scheme"
)

// Builtin checks the kinds Kubernetes itself serves (client-go's scheme): the API server's strict
// decoding (unknown and duplicate fields) and the generic object-metadata rules. The per-kind validation
// of the API server (k8s.io/kubernetes/pkg/apis/*/validation) is not importable as a library and is not run.
type Builtin struct {
	decoder runtime.Decoder
}

// NewBuiltin: a strict decoder over client-go's scheme.
func NewBuiltin() *Builtin {
	return &Builtin{decoder: serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()}
}

// Knows reports whether Kubernetes serves the kind in that version.
func (b *Builtin) Knows(gvk schema.GroupVersionKind) bool {
	return scheme.Scheme.Recognizes(gvk)
}

// clusterScoped: the built-in kinds of client-go's scheme that have no namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"StorageClass": true, "PriorityClass": true, "CSIDriver": true, "CSINode": true, "RuntimeClass": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true, "IngressClass": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true, "CertificateSigningRequest": true,
	"PodSecurityPolicy": true, "VolumeAttachment": true, "FlowSchema": true, "PriorityLevelConfiguration": true,
}

// Create decodes body (JSON) strictly and checks the object's metadata.
func (b *Builtin) Create(body []byte, gvk schema.GroupVersionKind) error {
	obj, _, err := b.decoder.Decode(body, nil, nil)
	if err != nil {
		if !runtime.IsStrictDecodingError(err) {
			return apierrors.NewBadRequest(err.Error())
		}
		return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v",
			gvk.Kind, gvk.Version, gvk.Kind, err))
	}
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	nameRule := validation.NameIsDNSSubdomain
	if gvk.Kind == "Namespace" || (gvk.Group == "" && gvk.Kind == "Service") {
		// core validation: Namespace names are DNS-1123 labels, Service names DNS-1035 labels.
		nameRule = func(name string, prefix bool) []string {
			if gvk.Kind == "Namespace" {
				return validation.ValidateNamespaceName(name, prefix)
			}
			return validation.NameIsDNS1035Label(name, prefix)
		}
	}
	errs := validation.ValidateObjectMetaAccessor(accessor, !clusterScoped[gvk.Kind], nameRule, field.NewPath("metadata"))
	if len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Group: gvk.Group, Kind: gvk.Kind}, accessor.GetName(), errs)
	}
	return nil
}

// ResourceName is the lower-case name kubectl prints for a kind (`statefulset.apps`).
func ResourceName(gvk schema.GroupVersionKind) string {
	if gvk.Group == "" {
		return strings.ToLower(gvk.Kind)
	}
	return strings.ToLower(gvk.Kind) + "." + gvk.Group
}
