// Command capacity answers "how many pods, and how fast, for N devices at the evening peak?" with
// Knative's own autoscaler (knative.dev/serving v0.50.0, the release the manifests target).
//
//	capacity autoscaling [--config configmaps.yaml]... [FILE|-]...
//	    what the autoscaler makes of each Knative Service: per-pod target, windows, scale-down delay,
//	    bounds, the scale-to-zero wait, as JSON (one object per Service)
//	capacity simulate --values knative/deploy-values.json --model docs/capacity/model.json
//	    --curve docs/capacity/curve.csv --devices 10000,100000 [--interval 60s] [--svg docs/capacity]
//	    [--config configmaps.yaml]... FILE...
//	    a day per fleet size: replicas per function over the day, queueing delay at the peak, cold starts,
//	    pod-hours against an always-on deployment sized for the peak; one JSON line per scenario
//
// FILE holds the Knative Services (knative/services/*.yaml); other kinds are skipped.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"kiot.dev/tools/knative/internal/autoscaling"
	"kiot.dev/tools/knative/internal/capacity"
	"kiot.dev/tools/knative/internal/release"
)

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "autoscaling" && args[0] != "simulate") {
		fmt.Fprintln(stderr, "usage: capacity autoscaling|simulate [flags] [FILE|-]...")
		return 2
	}
	command := args[0]
	flags := flag.NewFlagSet(command, flag.ContinueOnError)
	flags.SetOutput(stderr)
	var configs repeated
	flags.Var(&configs, "config", "a YAML file of ConfigMaps (knative-serving) whose keys replace the release's; repeatable")
	values := flags.String("values", "knative/deploy-values.json", "the deploy values with each function's measured capacity")
	modelFile := flags.String("model", "docs/capacity/model.json", "the load model: events per message and per device-day")
	curveFile := flags.String("curve", "docs/capacity/curve.csv", "the daily load curve: hour,factor of the nominal rate")
	devices := flags.String("devices", "10000,100000,1000000", "fleet sizes, one scenario each")
	interval := flags.Duration("interval", time.Minute, "one message per device per interval at factor 1 of the curve")
	svgDir := flags.String("svg", "", "write replicas-<devices>.svg per scenario into this directory")
	seed := flags.Int64("seed", 1, "seed of the arrivals (the output is reproducible)")
	if err := flags.Parse(args[1:]); err != nil {
		return 2
	}
	modules, err := release.Load(nil, release.Serving)
	if err == nil {
		for _, file := range configs {
			if err = release.Override(modules, file); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	ctx, cfg, err := autoscaling.Store(modules[release.Serving].ConfigMaps)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	revisions, err := readServices(flags.Args(), stdin, func(doc []byte) (*autoscaling.Revision, error) {
		return autoscaling.FromService(ctx, cfg, doc)
	})
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	if command == "autoscaling" {
		settings := make([]autoscaling.Settings, 0, len(revisions))
		for _, r := range revisions {
			settings = append(settings, r.Settings())
		}
		out, _ := json.MarshalIndent(settings, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return 0
	}
	if err := simulate(revisions, *values, *modelFile, *curveFile, *devices, *interval, *svgDir, *seed, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	return 0
}

func readServices(sources []string, stdin io.Reader, build func([]byte) (*autoscaling.Revision, error)) ([]*autoscaling.Revision, error) {
	if len(sources) == 0 {
		sources = []string{"-"}
	}
	var out []*autoscaling.Revision
	for _, source := range sources {
		var docs [][]byte
		var err error
		if source == "-" {
			docs, err = release.Split(stdin)
		} else {
			docs, err = release.Documents(source)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		for _, doc := range docs {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yamlUnmarshal(doc, &head); err != nil {
				return nil, fmt.Errorf("%s: %w", source, err)
			}
			if head.Kind != "Service" || !strings.HasPrefix(head.APIVersion, "serving.knative.dev/") {
				continue
			}
			rev, err := build(doc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", source, err)
			}
			out = append(out, rev)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out, nil
}

// Scenario is the JSON line printed per fleet size.
type Scenario struct {
	Scenario           string             `json:"scenario"`
	Devices            int                `json:"devices"`
	IntervalS          float64            `json:"interval_s"`
	PeakFactor         float64            `json:"peak_factor"`
	PeakMessagesPerS   float64            `json:"peak_messages_per_s"`
	PeakReplicas       map[string]int     `json:"peak_replicas"`
	PeakReplicasTotal  int                `json:"peak_replicas_total"`
	PodHours           map[string]float64 `json:"pod_hours"`
	PodHoursTotal      float64            `json:"pod_hours_per_day"`
	AlwaysOnPods       map[string]int     `json:"always_on_pods"`
	AlwaysOnPodHours   float64            `json:"always_on_pod_hours_per_day"`
	SavingsRatio       float64            `json:"pod_hours_ratio_to_always_on"`
	P99QueueMsAtPeak   map[string]float64 `json:"p99_queue_ms_at_peak"`
	P99QueueMsAtPeakMx float64            `json:"p99_queue_ms_at_peak_max"`
	ScheduledLagS      map[string]float64 `json:"scheduled_work_max_lag_s"`
	ColdStarts         map[string]int     `json:"cold_starts"`
	MinutesAtZero      map[string]int     `json:"minutes_at_zero"`
	Unmodelled         []string           `json:"unmodelled,omitempty"`
}

func simulate(revisions []*autoscaling.Revision, valuesFile, modelFile, curveFile, deviceList string,
	interval time.Duration, svgDir string, seed int64, stdout, stderr io.Writer) error {
	measured, err := capacity.ReadMeasured(valuesFile)
	if err != nil {
		return err
	}
	model, err := capacity.ReadModel(modelFile)
	if err != nil {
		return err
	}
	f, err := os.Open(curveFile)
	if err != nil {
		return err
	}
	curve, err := capacity.ReadCurve(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", curveFile, err)
	}
	for _, field := range strings.Split(deviceList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n <= 0 {
			return fmt.Errorf("--devices: %q is not a fleet size", field)
		}
		sc := capacity.Scenario{Devices: n, Interval: interval, Curve: curve}
		line := Scenario{
			Scenario: fmt.Sprintf("%d devices, a message every %s each, %gx evening peak", n, every(interval), curve.Peak()),
			Devices:  n, IntervalS: interval.Seconds(), PeakFactor: curve.Peak(),
			PeakMessagesPerS: float64(n) / interval.Seconds() * curve.Peak(),
			PeakReplicas:     map[string]int{}, PodHours: map[string]float64{}, AlwaysOnPods: map[string]int{},
			P99QueueMsAtPeak: map[string]float64{}, ColdStarts: map[string]int{}, MinutesAtZero: map[string]int{},
			ScheduledLagS: map[string]float64{},
		}
		var results []*capacity.Result
		for _, rev := range revisions {
			m, ok := measured[rev.Service]
			if _, modelled := model.Functions[rev.Service]; !ok || !modelled {
				line.Unmodelled = append(line.Unmodelled, rev.Service)
				continue
			}
			load, work, scheduled := model.FunctionOf(rev.Service, sc, m)
			// Little's law at the measured point: the latency of an event is the concurrency over the rate.
			serviceTime := time.Duration(m.Concurrency / m.EventsPerSecond * float64(time.Second))
			if scheduled {
				serviceTime = 0
			}
			res, err := capacity.Simulate(capacity.Function{
				Revision: rev, Work: work, ServiceTime: serviceTime, Load: load, Scheduled: scheduled,
				PodStart: time.Duration((model.PodStartSeconds*1000 + m.ColdStartMs) * float64(time.Millisecond)),
			}, seed)
			if err != nil {
				return fmt.Errorf("%s: %w", rev.Service, err)
			}
			fmt.Fprintf(stderr, "%d devices: %s\n", n, res)
			results = append(results, res)
			line.PeakReplicas[res.Service] = res.PeakReplicas
			line.PeakReplicasTotal += res.PeakReplicas
			line.PodHours[res.Service] = round(res.PodHours, 2)
			line.PodHoursTotal += res.PodHours
			line.AlwaysOnPods[res.Service] = res.AlwaysOnPods
			line.AlwaysOnPodHours += res.AlwaysOnPodHours
			if scheduled {
				// A run's wait is how far the scheduled work (rollups) lags behind, not a request's queueing.
				line.ScheduledLagS[res.Service] = res.MaxQueueMsDay / 1000
			} else {
				line.P99QueueMsAtPeak[res.Service] = res.P99QueueMsAtPeak
				if res.P99QueueMsAtPeak > line.P99QueueMsAtPeakMx {
					line.P99QueueMsAtPeakMx = res.P99QueueMsAtPeak
				}
			}
			line.ColdStarts[res.Service] = res.ColdStarts
			line.MinutesAtZero[res.Service] = res.MinutesAtZero
		}
		line.PodHoursTotal = round(line.PodHoursTotal, 2)
		if line.AlwaysOnPodHours > 0 {
			line.SavingsRatio = round(line.PodHoursTotal/line.AlwaysOnPodHours, 3)
		}
		out, _ := json.Marshal(line)
		fmt.Fprintln(stdout, string(out))
		if svgDir != "" {
			file := filepath.Join(svgDir, fmt.Sprintf("replicas-%d.svg", n))
			if err := capacity.Plot(file, line.Scenario, results, sc); err != nil {
				return err
			}
		}
	}
	return nil
}

func round(v float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// every spells an interval as people say it: "minute", "30 s", "5 min".
func every(d time.Duration) string {
	switch {
	case d == time.Minute:
		return "minute"
	case d%time.Minute == 0:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	default:
		return fmt.Sprintf("%g s", d.Seconds())
	}
}
