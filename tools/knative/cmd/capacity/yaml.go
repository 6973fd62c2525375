package main

import "sigs.k8s.io/yaml"

func yamlUnmarshal(doc []byte, into any) error { return yaml.Unmarshal(doc, into) }
