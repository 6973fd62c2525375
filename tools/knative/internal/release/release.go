// Package release reads what a Knative release ships beside its Go code (the CRDs, the default
// ConfigMaps, the webhook configurations under config/core of knative.dev/serving and
// knative.dev/eventing) from the Go module cache, at the versions this binary was built with: the
// YAML and the Go code that enforces it always come from the same release, and nothing upstream is
// copied into the repository.
package release

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"

	"golang.org/x/mod/module"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The Knative modules whose release files are read.
const (
	Serving  = "knative.dev/serving"
	Eventing = "knative.dev/eventing"
)

// Module is one Knative module as this binary was built with it.
type Module struct {
	Path    string
	Version string
	Dir     string
	// The webhooks of the release, by the names the API server reports them under.
	DefaultingWebhook string
	ValidationWebhook string
	// The release's ConfigMaps, all in the module's system namespace.
	ConfigMaps map[string]*corev1.ConfigMap
	CRDs       []*apiextensionsv1.CustomResourceDefinition
}

// Load finds the directory of each module (dirs overrides it by module path) and reads its release files:
// the given modules, or serving's and eventing's.
func Load(dirs map[string]string, paths ...string) (map[string]*Module, error) {
	if len(paths) == 0 {
		paths = []string{Serving, Eventing}
	}
	var missing []string
	for _, path := range paths {
		if dirs[path] == "" {
			missing = append(missing, path)
		}
	}
	versions, err := builtVersions(missing)
	if err != nil {
		return nil, err
	}
	out := map[string]*Module{}
	for _, path := range paths {
		m := &Module{Path: path, Version: versions[path], Dir: dirs[path], ConfigMaps: map[string]*corev1.ConfigMap{}}
		if m.Dir == "" {
			if m.Dir, err = moduleCacheDir(path, m.Version); err != nil {
				return nil, err
			}
		}
		if err := m.read(); err != nil {
			return nil, fmt.Errorf("%s@%s in %s: %w", path, m.Version, m.Dir, err)
		}
		out[path] = m
	}
	return out, nil
}

// builtVersions: the versions of the Knative modules linked into this binary (its build info).
func builtVersions(paths []string) (map[string]string, error) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil, errors.New("no build information in this binary")
	}
	versions := map[string]string{}
	for _, dep := range info.Deps {
		if dep.Replace != nil {
			dep = dep.Replace
		}
		versions[dep.Path] = dep.Version
	}
	for _, path := range paths {
		if versions[path] == "" {
			return nil, fmt.Errorf("%s is not a dependency of this binary", path)
		}
	}
	return versions, nil
}

// moduleCacheDir: where `go mod download` puts a module (GOMODCACHE/<escaped path>@<escaped version>).
func moduleCacheDir(path, version string) (string, error) {
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			return "", fmt.Errorf("locating the Go module cache (go env GOMODCACHE): %w", err)
		}
		cache = strings.TrimSpace(string(out))
	}
	escapedPath, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	escapedVersion, err := module.EscapeVersion(version)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, escapedPath+"@"+escapedVersion)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("%s@%s is not in the module cache (run `go mod download` in tools/knative): %w", path, version, err)
	}
	return dir, nil
}

// read walks config/core of the module: every CRD, ConfigMap and admission webhook configuration.
func (m *Module) read() error {
	root := filepath.Join(m.Dir, "config", "core")
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, file := range files {
		docs, err := Documents(file)
		if err != nil {
			return err
		}
		for _, doc := range docs {
			if err := m.add(filepath.Base(file), doc); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
		}
	}
	switch {
	case len(m.CRDs) == 0:
		return errors.New("no CustomResourceDefinition under config/core")
	case m.DefaultingWebhook == "" || m.ValidationWebhook == "":
		return errors.New("no defaulting or resource-validation webhook configuration under config/core")
	}
	return nil
}

// add keeps a CRD or ConfigMap, and the names of the webhooks that config/core/webhooks/defaulting.yaml
// and resource-validation.yaml configure (their rules and paths are filled in by the webhook at run time).
func (m *Module) add(file string, doc []byte) error {
	var head struct{ Kind string }
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return err
	}
	switch head.Kind {
	case "CustomResourceDefinition":
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(doc, crd); err != nil {
			return err
		}
		m.CRDs = append(m.CRDs, crd)
	case "ConfigMap":
		cm := &corev1.ConfigMap{}
		if err := yaml.UnmarshalStrict(doc, cm); err != nil {
			return err
		}
		m.ConfigMaps[cm.Name] = cm
	case "MutatingWebhookConfiguration":
		config := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := yaml.UnmarshalStrict(doc, config); err != nil {
			return err
		}
		if file == "defaulting.yaml" && len(config.Webhooks) == 1 {
			m.DefaultingWebhook = config.Webhooks[0].Name
		}
	case "ValidatingWebhookConfiguration":
		config := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := yaml.UnmarshalStrict(doc, config); err != nil {
			return err
		}
		if file == "resource-validation.yaml" && len(config.Webhooks) == 1 {
			m.ValidationWebhook = config.Webhooks[0].Name
		}
	}
	return nil
}

// Documents splits a YAML stream into its non-empty documents.
func Documents(file string) ([][]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Split(f)
}

// Split splits a YAML stream ("---" separated) into its non-empty documents.
func Split(r io.Reader) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

// stripComments drops comment-only lines, so that a document of comments alone counts as empty.
func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 && trimmed[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}
