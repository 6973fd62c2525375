// Package admission runs, for each object of a manifest stream, what a create of it meets in a cluster
// with Knative installed: the API server's strict decoding against the CRD schema, the mutating
// (defaulting) webhook, the API server's schema validation, then the validating webhook. It reports the
// outcome as kubectl would print it.
package admission

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
	"sigs.k8s.io/yaml"

	"kiot.dev/tools/knative/internal/apiserver"
	"kiot.dev/tools/knative/internal/release"
	"kiot.dev/tools/knative/internal/webhooks"
)

// How far an object was checked.
const (
	CheckedKnative = "knative" // CRD schema and Knative's webhooks
	CheckedSchema  = "schema"  // CRD schema only (a Knative kind no webhook is registered for)
	CheckedBuiltin = "builtin" // a Kubernetes kind: strict decoding and metadata
	CheckedNone    = "none"    // not even parsed
)

// Result is the outcome of one object.
type Result struct {
	Source     string         `json:"source"`
	Document   int            `json:"document"`
	APIVersion string         `json:"apiVersion,omitempty"`
	Kind       string         `json:"kind,omitempty"`
	Namespace  string         `json:"namespace,omitempty"`
	Name       string         `json:"name,omitempty"`
	Allowed    bool           `json:"allowed"`
	Checked    string         `json:"checked"`
	Message    string         `json:"message"`
	Warnings   []string       `json:"warnings,omitempty"`
	Object     map[string]any `json:"object,omitempty"`
}

// Admitter holds the release's CRDs and webhooks.
type Admitter struct {
	registry *apiserver.Registry
	builtin  *apiserver.Builtin
	planes   []*webhooks.Plane
}

// New builds the registry of every CRD of the modules and the webhooks of serving and eventing.
func New(modules map[string]*release.Module) (*Admitter, error) {
	var crds = modules[release.Serving].CRDs
	crds = append(crds, modules[release.Eventing].CRDs...)
	registry, err := apiserver.NewRegistry(crds)
	if err != nil {
		return nil, err
	}
	serving, err := webhooks.Serving(modules[release.Serving])
	if err != nil {
		return nil, fmt.Errorf("serving webhooks: %w", err)
	}
	eventing, err := webhooks.Eventing(modules[release.Eventing])
	if err != nil {
		return nil, fmt.Errorf("eventing webhooks: %w", err)
	}
	return &Admitter{registry: registry, builtin: apiserver.NewBuiltin(), planes: []*webhooks.Plane{serving, eventing}}, nil
}

// Create checks one YAML document of source.
func (a *Admitter) Create(source string, document int, doc []byte) Result {
	result := Result{Source: source, Document: document, Checked: CheckedNone}
	body, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return result.fail(fmt.Sprintf("error: error parsing %s: error converting YAML to JSON: %v", source, err))
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(body); err != nil {
		return result.fail(fmt.Sprintf("error: unable to decode %q: %v", source, err))
	}
	gvk := u.GroupVersionKind()
	result.APIVersion, result.Kind, result.Name = u.GetAPIVersion(), u.GetKind(), u.GetName()

	resource, known, err := a.registry.Lookup(gvk)
	switch {
	case err != nil:
		return result.fail(mappingError(u, source, err))
	case !known && a.builtin.Knows(gvk):
		result.Checked = CheckedBuiltin
		result.Namespace = u.GetNamespace()
		if err := a.builtin.Create(body, gvk); err != nil {
			return result.fail(serverError(source, err))
		}
		result.Object = u.Object
		return result.admitted(apiserver.ResourceName(gvk))
	case !known:
		return result.fail(mappingError(u, source, fmt.Errorf("no matches for kind %q in version %q", gvk.Kind, gvk.GroupVersion())))
	}
	if resource.Namespaced && u.GetNamespace() == "" {
		u.SetNamespace(metav1.NamespaceDefault) // kubectl's namespace when neither the object nor -n names one
	}
	result.Namespace = u.GetNamespace()
	result.Checked = CheckedSchema
	plane := a.planeFor(gvk)
	if plane != nil {
		result.Checked = CheckedKnative
	}
	if err := a.create(resource, plane, u, &result); err != nil {
		return result.fail(serverError(source, err))
	}
	result.Object = u.Object
	return result.admitted(apiserver.ResourceName(gvk))
}

// create is the API server's create handler for a custom resource, admission included.
func (a *Admitter) create(resource *apiserver.Resource, plane *webhooks.Plane, u *unstructured.Unstructured, result *Result) error {
	if err := resource.DecodeStrict(u); err != nil {
		return err
	}
	if plane != nil {
		patch, warnings, err := plane.Default(contextFor(), a.request(resource, u))
		result.Warnings = append(result.Warnings, warnings...)
		if err != nil {
			return err
		}
		if err := applyPatch(u, patch); err != nil {
			return apierrors.NewInternalError(fmt.Errorf("applying the patch of %s: %w", plane.DefaultingName, err))
		}
		if err := resource.Coerce(u); err != nil {
			return apierrors.NewInternalError(err)
		}
	}
	resource.PrepareForCreate(u)
	u.SetUID(uuid.NewUUID())
	u.SetCreationTimestamp(metav1.NewTime(time.Now()))
	if err := resource.Validate(u); err != nil {
		return err
	}
	if plane != nil {
		warnings, err := plane.Validate(contextFor(), a.request(resource, u))
		result.Warnings = append(result.Warnings, warnings...)
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *Admitter) planeFor(gvk schema.GroupVersionKind) *webhooks.Plane {
	for _, plane := range a.planes {
		if plane.Handles(gvk) {
			return plane
		}
	}
	return nil
}

func (a *Admitter) request(resource *apiserver.Resource, u *unstructured.Unstructured) *admissionRequest {
	body, _ := json.Marshal(u.Object)
	return webhooks.Request(resource.GVK, resource.Plural, u.GetNamespace(), u.GetName(), body)
}

func applyPatch(u *unstructured.Unstructured, patch []byte) error {
	if len(patch) == 0 || string(patch) == "null" || string(patch) == "[]" {
		return nil
	}
	decoded, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return err
	}
	body, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	patched, err := decoded.Apply(body)
	if err != nil {
		return err
	}
	fresh := map[string]any{}
	if err := json.Unmarshal(patched, &fresh); err != nil {
		return err
	}
	u.Object = fresh
	return nil
}

// serverError is kubectl's line for an error the API server answered.
func serverError(source string, err error) string {
	status, ok := err.(apierrors.APIStatus)
	if !ok {
		return fmt.Sprintf("error: error when creating %q: %v", source, err)
	}
	reason := status.Status().Reason
	if reason == "" {
		reason = metav1.StatusReason(http.StatusText(int(status.Status().Code)))
		if status.Status().Code == http.StatusBadRequest {
			reason = metav1.StatusReasonBadRequest
		}
	}
	return fmt.Sprintf("Error from server (%s): error when creating %q: %s", reason, source, status.Status().Message)
}

// mappingError is kubectl's line when the cluster does not serve the kind.
func mappingError(u *unstructured.Unstructured, source string, err error) string {
	return fmt.Sprintf("error: resource mapping not found for name: %q namespace: %q from %q: %v\nensure CRDs are installed first",
		u.GetName(), u.GetNamespace(), source, err)
}

func (r Result) fail(message string) Result {
	r.Allowed = false
	r.Message = message
	return r
}

func (r Result) admitted(resource string) Result {
	r.Allowed = true
	r.Message = fmt.Sprintf("%s/%s admitted", resource, r.Name)
	return r
}
