package apiserver

import (
	"errors"
	"fmt"

	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DecodeStrict is the API server decoding a create body with fieldValidation=Strict (kubectl's default):
// unknown fields (outside x-kubernetes-preserve-unknown-fields) and malformed metadata are a 400, in the
// words of the API server; otherwise the object is pruned and defaulted as it would be stored.
func (r *Resource) DecodeStrict(u *unstructured.Unstructured) error {
	unknown, err := r.coerce(u, true)
	if err != nil {
		return r.badRequest(err)
	}
	if len(unknown) > 0 {
		errs := make([]error, 0, len(unknown))
		for _, path := range unknown {
			errs = append(errs, fmt.Errorf(`unknown field "%s"`, path))
		}
		return r.badRequest(runtime.NewStrictDecodingError(errs))
	}
	structuraldefaulting.Default(u.Object, r.structural)
	return nil
}

// Coerce is what the API server does to an object a mutating webhook patched: prune what the schema does
// not know (silently), then apply the schema's defaults again.
func (r *Resource) Coerce(u *unstructured.Unstructured) error {
	if _, err := r.coerce(u, false); err != nil {
		return err
	}
	structuraldefaulting.Default(u.Object, r.structural)
	return nil
}

// coerce mirrors unstructuredSchemaCoercer.apply: metadata, pruning, non-nullable nulls, embedded metadata.
func (r *Resource) coerce(u *unstructured.Unstructured, trackUnknown bool) ([]string, error) {
	kind, apiVersion := u.GetKind(), u.GetAPIVersion()
	objectMeta, foundMeta, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(u.Object, schemaobjectmeta.ObjectMetaOptions{
		ReturnUnknownFieldPaths: trackUnknown,
	})
	if err != nil {
		return nil, err
	}
	unknown = append(unknown, structuralpruning.PruneWithOptions(u.Object, r.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: trackUnknown})...)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(u.Object, r.structural)
	fieldErr, paths := schemaobjectmeta.CoerceWithOptions(nil, u.Object, r.structural, false,
		schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: trackUnknown})
	if fieldErr != nil {
		return nil, fieldErr
	}
	unknown = append(unknown, paths...)
	u.SetKind(kind)
	u.SetAPIVersion(apiVersion)
	if foundMeta {
		if err := schemaobjectmeta.SetObjectMeta(u.Object, objectMeta); err != nil {
			return nil, err
		}
	}
	return unknown, nil
}

// PrepareForCreate: a create cannot set status (the CRDs have a status subresource); generation starts at 1.
func (r *Resource) PrepareForCreate(u *unstructured.Unstructured) {
	if r.HasStatus {
		delete(u.Object, "status")
	}
	u.SetGeneration(1)
}

// Validate is the strategy's validation of a create: object metadata, the OpenAPI schema, embedded
// resources' metadata and list-type invariants. Failures are a 422 in the API server's words.
func (r *Resource) Validate(u *unstructured.Unstructured) error {
	var errs field.ErrorList
	errs = append(errs, validation.ValidateObjectMetaAccessor(u, r.Namespaced, validation.NameIsDNSSubdomain, field.NewPath("metadata"))...)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, u.UnstructuredContent(), r.validator)...)
	errs = append(errs, schemaobjectmeta.Validate(nil, u.Object, r.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, r.structural, u.Object)...)
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(r.GVK.GroupKind(), u.GetName(), errs)
}

// badRequest is the API server's answer to a body it cannot decode (handlers.transformDecodeError).
func (r *Resource) badRequest(err error) error {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return err
	}
	return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v",
		r.GVK.Kind, r.GVK.Version, r.GVK.Kind, err))
}
