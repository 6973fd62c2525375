// Package apiserver does what the Kubernetes API server does with a custom resource on a create, around
// the admission webhooks: decode the body strictly against the CRD's structural schema, apply the
// schema's defaults, and validate the result (metadata, OpenAPI schema, list types). It mirrors
// k8s.io/apiextensions-apiserver's customresource_handler.go (unstructuredSchemaCoercer) and
// registry/customresource (strategy.Validate, customResourceValidator.Validate) with their own building
// blocks; the CRDs of the Knative releases declare no x-kubernetes-validations (CEL), so none run here.
package apiserver

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resource is one served version of a custom resource.
type Resource struct {
	GVK        schema.GroupVersionKind
	Plural     string
	Namespaced bool
	HasStatus  bool
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
}

// Registry holds every served version of every CRD it was given.
type Registry struct {
	resources map[schema.GroupVersionKind]*Resource
	kinds     map[schema.GroupKind][]string
}

// NewRegistry builds the structural schema and the schema validator of every served version.
func NewRegistry(crds []*apiextensionsv1.CustomResourceDefinition) (*Registry, error) {
	r := &Registry{resources: map[schema.GroupVersionKind]*Resource{}, kinds: map[schema.GroupKind][]string{}}
	for _, crd := range crds {
		internal := &apiextensions.CustomResourceDefinition{}
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, internal, nil); err != nil {
			return nil, fmt.Errorf("CRD %s: %w", crd.Name, err)
		}
		for _, version := range crd.Spec.Versions {
			if !version.Served {
				continue
			}
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: version.Name, Kind: crd.Spec.Names.Kind}
			validation, err := apiextensions.GetSchemaForVersion(internal, version.Name)
			if err != nil || validation == nil || validation.OpenAPIV3Schema == nil {
				return nil, fmt.Errorf("CRD %s %s: no schema (%v)", crd.Name, version.Name, err)
			}
			structural, err := structuralschema.NewStructural(validation.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("CRD %s %s: %w", crd.Name, version.Name, err)
			}
			validator, _, err := apiservervalidation.NewSchemaValidator(validation.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("CRD %s %s: %w", crd.Name, version.Name, err)
			}
			r.resources[gvk] = &Resource{
				GVK:        gvk,
				Plural:     crd.Spec.Names.Plural,
				Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
				HasStatus:  version.Subresources != nil && version.Subresources.Status != nil,
				structural: structural,
				validator:  validator,
			}
			r.kinds[gvk.GroupKind()] = append(r.kinds[gvk.GroupKind()], version.Name)
		}
	}
	return r, nil
}

// Lookup: the resource of apiVersion and kind; ok is false when no CRD defines the group and kind at all.
func (r *Registry) Lookup(gvk schema.GroupVersionKind) (resource *Resource, known bool, err error) {
	versions, known := r.kinds[gvk.GroupKind()]
	if resource, ok := r.resources[gvk]; ok {
		return resource, true, nil
	}
	if !known {
		return nil, false, nil
	}
	sort.Strings(versions)
	// kubectl's words when the cluster serves the kind in other versions only (a RESTMapper miss).
	return nil, true, fmt.Errorf("no matches for kind %q in version %q (served: %s)",
		gvk.Kind, gvk.GroupVersion().String(), strings.Join(versions, ", "))
}

// Kinds lists the group/kinds the registry serves.
func (r *Registry) Kinds() []schema.GroupVersionKind {
	out := make([]schema.GroupVersionKind, 0, len(r.resources))
	for gvk := range r.resources {
		out = append(out, gvk)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
