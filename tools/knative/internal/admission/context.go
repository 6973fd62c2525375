package admission

import (
	"context"

	"go.uber.org/zap"
	admissionv1 "k8s.io/api/admission/v1"
	"knative.dev/pkg/logging"
)

type admissionRequest = admissionv1.AdmissionRequest

// contextFor: the context of one webhook request, without the controllers' per-request info logging.
func contextFor() context.Context {
	return logging.WithLogger(context.Background(), zap.NewNop().Sugar())
}
