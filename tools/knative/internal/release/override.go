package release

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Override merges cluster settings into the release's ConfigMaps, as `kubectl edit` of them would: each
// ConfigMap names its namespace (knative-serving or knative-eventing) and its keys replace the release's.
func Override(modules map[string]*Module, file string) error {
	docs, err := Documents(file)
	if err != nil {
		return err
	}
	for i, doc := range docs {
		cm := &corev1.ConfigMap{}
		if err := yaml.UnmarshalStrict(doc, cm); err != nil {
			return fmt.Errorf("%s document %d: %w", file, i+1, err)
		}
		if cm.Kind != "ConfigMap" {
			return fmt.Errorf("%s document %d: a %s, not a ConfigMap", file, i+1, cm.Kind)
		}
		target := targetOf(modules, cm)
		if target == nil {
			return fmt.Errorf("%s document %d: no ConfigMap %s/%s in the Knative releases (%s)", file, i+1,
				cm.Namespace, cm.Name, strings.Join(known(modules), ", "))
		}
		merged := target.DeepCopy()
		if merged.Data == nil {
			merged.Data = map[string]string{}
		}
		for key, value := range cm.Data {
			merged.Data[key] = value
		}
		for _, m := range modules {
			if m.ConfigMaps[cm.Name] == target {
				m.ConfigMaps[cm.Name] = merged
			}
		}
	}
	return nil
}

func targetOf(modules map[string]*Module, cm *corev1.ConfigMap) *corev1.ConfigMap {
	for _, m := range modules {
		if release, ok := m.ConfigMaps[cm.Name]; ok && release.Namespace == cm.Namespace {
			return release
		}
	}
	return nil
}

func known(modules map[string]*Module) []string {
	var out []string
	for _, path := range []string{Serving, Eventing} {
		if modules[path] == nil {
			continue
		}
		for name, cm := range modules[path].ConfigMaps {
			out = append(out, cm.Namespace+"/"+name)
		}
	}
	return out
}
