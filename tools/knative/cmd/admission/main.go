// Command admission checks Kubernetes manifests as a cluster with Knative Serving and Eventing would on
// `kubectl create`: the API server's strict decoding against each CRD's structural schema, Knative's
// defaulting webhook (with the release's default ConfigMaps, or stricter ones given with --config), the
// API server's schema validation, then Knative's validating webhook. Knative's own code does the checks,
// at the versions of tools/knative/go.mod; the CRDs and ConfigMaps come from those modules' config/core.
//
//	admission [--config configmaps.yaml]... [--output text|json] [--source NAME] [FILE|-]...
//
// It reads a YAML stream from each FILE (stdin when there is none, or "-") and prints, per object,
// kubectl's line: "service.serving.knative.dev/x admitted", or the error kubectl would print. The exit
// status is 1 when any object is refused, 2 when the tool itself cannot run.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"kiot.dev/tools/knative/internal/admission"
	"kiot.dev/tools/knative/internal/release"
)

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("admission", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var configs, moduleDirs repeated
	flags.Var(&configs, "config", "a YAML file of ConfigMaps (namespace knative-serving or knative-eventing) whose keys replace the release's defaults; repeatable")
	flags.Var(&moduleDirs, "module-dir", "MODULE=DIR: read a module's release files from DIR instead of the Go module cache; repeatable")
	output := flags.String("output", "text", "text (kubectl's lines) or json (one result per object, with the object as it would be stored)")
	stdinName := flags.String("source", "STDIN", "the name of standard input in messages")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "error: --output must be text or json, not %q\n", *output)
		return 2
	}
	dirs := map[string]string{}
	for _, entry := range moduleDirs {
		path, dir, ok := strings.Cut(entry, "=")
		if !ok {
			fmt.Fprintf(stderr, "error: --module-dir %q: expected MODULE=DIR\n", entry)
			return 2
		}
		dirs[path] = dir
	}
	modules, err := release.Load(dirs)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	for _, file := range configs {
		if err := release.Override(modules, file); err != nil {
			fmt.Fprintf(stderr, "error: --config %v\n", err)
			return 2
		}
	}
	admitter, err := admission.New(modules)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}

	sources := flags.Args()
	if len(sources) == 0 {
		sources = []string{"-"}
	}
	var results []admission.Result
	for _, source := range sources {
		name, reader := source, io.Reader(nil)
		if source == "-" {
			name, reader = *stdinName, stdin
		} else {
			f, err := os.Open(source)
			if err != nil {
				fmt.Fprintf(stderr, "error: %v\n", err)
				return 2
			}
			defer f.Close()
			reader = f
		}
		docs, err := release.Split(reader)
		if err != nil {
			fmt.Fprintf(stderr, "error: reading %s: %v\n", name, err)
			return 2
		}
		for i, doc := range docs {
			results = append(results, admitter.Create(name, i+1, doc))
		}
	}

	status := 0
	for _, result := range results {
		if !result.Allowed {
			status = 1
		}
	}
	if *output == "json" {
		encoder := json.NewEncoder(stdout)
		encoder.SetIndent("", "  ")
		if err := encoder.Encode(results); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 2
		}
		return status
	}
	for _, result := range results {
		for _, warning := range result.Warnings {
			fmt.Fprintf(stderr, "Warning: %s\n", warning)
		}
		if result.Allowed {
			fmt.Fprintln(stdout, result.Message)
		} else {
			fmt.Fprintln(stderr, result.Message)
		}
	}
	return status
}
