// Package capacity simulates a day of kiot's functions under a load curve, with Knative's own autoscaler
// deciding the replicas: serving's MetricCollector averages the concurrency the pods and the activator
// report over the stable and panic windows, and serving's KPA (scaling.New, the autoscaler of
// knative.dev/serving v0.50.0) turns it into a desired pod count every 2 s tick, with its panic mode,
// scale-down delay and activation scale. Around it, what the KPA reconciler does with that number
// (kpa/kpa.go, kpa/scaler.go: the min/max bounds, the stable window a PodAutoscaler stays active, the
// scale-to-zero grace period) and a pod model: a pod is ready `PodStart` after it is asked for and then
// serves the rate one instance was measured to sustain at its p99 target.
package capacity

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/types"
	autoscalingv1alpha1 "knative.dev/serving/pkg/apis/autoscaling/v1alpha1"
	"knative.dev/serving/pkg/autoscaler/metrics"
	"knative.dev/serving/pkg/autoscaler/scaling"

	"kiot.dev/tools/knative/internal/autoscaling"
)

// Load is what one function receives: events per second at each second of the day.
type Load func(second int) float64

// Function is one Knative Service with what one of its pods sustains.
type Function struct {
	Revision *autoscaling.Revision
	// Seconds of one pod's capacity an event arriving at a second of the day takes: 1 ÷ the events per second
	// one pod sustains with its p99 at the target (measured), or for a scheduled run the run's length.
	Work func(second int) float64
	// The latency of one event at the measured rate (its p99): with the rate served, the concurrency the
	// pods report (Little's law). Zero for scheduled runs, whose concurrency is the run itself.
	ServiceTime time.Duration
	// From asking for a pod to its first 2xx: scheduling, image (cached on the node), container start and
	// the process's own cold start.
	PodStart time.Duration
	Load     Load
	// Scheduled runs arrive exactly as Load says (one per tick), not as a Poisson stream.
	Scheduled bool
}

// Result is a day of one function.
type Result struct {
	Service string `json:"service"`
	// Replicas (ready or starting) at the end of each minute of the day.
	Replicas []int `json:"-"`
	// The most replicas at any time of the day.
	PeakReplicas int `json:"peakReplicas"`
	// Sum over the day of (ready + starting pods) × time.
	PodHours float64 `json:"podHours"`
	// Pods an always-on deployment needs to carry the peak second at the measured per-pod rate, and the
	// pod-hours of such a deployment over the day.
	AlwaysOnPods     int     `json:"alwaysOnPods"`
	AlwaysOnPodHours float64 `json:"alwaysOnPodHours"`
	// Scale-ups from zero ready pods (a request waited for a cold start), and pods started in all.
	ColdStarts int `json:"coldStarts"`
	PodStarts  int `json:"podStarts"`
	// Waiting beyond the per-event latency (events queued at the activator or in a pod's queue for lack of
	// capacity), p99 over the events of the peak hour and over the whole day, in milliseconds.
	P99QueueMsAtPeak float64 `json:"p99QueueMsAtPeak"`
	P99QueueMsDay    float64 `json:"p99QueueMsDay"`
	MaxQueueMsDay    float64 `json:"maxQueueMsDay"`
	Events           float64 `json:"events"`
	PeakHour         int     `json:"peakHour"`
	// Minutes of the day with no pod at all.
	MinutesAtZero int `json:"minutesAtZero"`
}

// Day is the length of the simulated day; Warmup days run before it so that the day starts in the state
// the previous one left (the evening's pods, the night's zero).
const (
	Day          = 24 * 3600
	warmupDays   = 1
	tickInterval = 2 * time.Second // scaling.tickInterval: the autoscaler decides every 2 s
)

type cohort struct {
	arrived int
	count   float64
	work    float64
}

type readyCounter struct{ ready *int }

func (c readyCounter) ReadyCount() (int, error)    { return *c.ready, nil }
func (c readyCounter) NotReadyCount() (int, error) { return 0, nil }

// Simulate runs Warmup days and one reported day of fn at a 1 s resolution.
func Simulate(fn Function, seed int64) (*Result, error) {
	rev := fn.Revision
	logger := zap.NewNop().Sugar()
	collector := metrics.NewMetricCollector(
		func(*autoscalingMetric, *zap.SugaredLogger) (metrics.StatsScraper, error) { return nil, nil }, logger)
	if err := collector.CreateOrUpdate(rev.Metric); err != nil {
		return nil, err
	}
	defer collector.Delete(rev.Metric.Namespace, rev.Metric.Name)
	key := types.NamespacedName{Namespace: rev.Metric.Namespace, Name: rev.Metric.Name}

	ready := 0
	scaler := scaling.New(attribute.NewSet(), noop.NewMeterProvider(), rev.PA.Namespace, rev.PA.Name, collector,
		readyCounter{&ready}, &rev.Decider.Spec)

	res := &Result{Service: rev.Service, Replicas: make([]int, Day/60)}
	rng := rand.New(rand.NewSource(seed))
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	var (
		starting     []time.Time // ready-at times of pods not ready yet
		queue        []cohort
		backlog      float64
		active       = false // the PodAutoscaler's Active condition (pods exist or are asked for)
		activeSince  time.Time
		inactiveAt   time.Time
		inactive     = false
		lastDesired  int32
		nextTick     = start
		waitsPeak    []weighted
		waitsDay     []weighted
		peakHour     = peakHourOf(fn.Load)
		serviceS     = fn.ServiceTime.Seconds()
		bounds       = func(n int32) int32 { return clamp(n, rev.MinScale, rev.MaxScale) }
		scaleToZeroW = rev.ScaleToZeroWait()
		stableWindow = rev.Decider.Spec.StableWindow
	)
	total := (warmupDays + 1) * Day
	for s := 0; s < total; s++ {
		now := start.Add(time.Duration(s) * time.Second)
		daySecond := s % Day
		reported := s >= warmupDays*Day
		// Pods whose start finished are ready.
		kept := starting[:0]
		for _, at := range starting {
			if !at.After(now) {
				ready++
			} else {
				kept = append(kept, at)
			}
		}
		starting = kept

		arrivals := fn.Load(daySecond)
		if !fn.Scheduled {
			arrivals = poisson(rng, arrivals)
		}
		if arrivals > 0 {
			queue = append(queue, cohort{arrived: s, count: arrivals, work: fn.Work(daySecond)})
			backlog += arrivals
		}
		// Ready pods give a second of capacity each, first come first served; a scheduled run is one request,
		// served by one pod at a time.
		capacity := float64(ready)
		if fn.Scheduled {
			capacity = math.Min(capacity, 1)
		}
		served := 0.0
		for capacity > 1e-12 && len(queue) > 0 {
			head := &queue[0]
			take := math.Min(capacity/head.work, head.count)
			if reported {
				w := weighted{wait: float64(s - head.arrived), n: take}
				waitsDay = append(waitsDay, w)
				if daySecond/3600 == peakHour {
					waitsPeak = append(waitsPeak, w)
				}
			}
			head.count -= take
			capacity -= take * head.work
			served += take
			if head.count <= 1e-9 {
				queue = queue[1:]
			}
		}
		backlog -= served
		if backlog < 1e-9 {
			backlog = 0
		}
		// What the autoscaler sees this second: the events in service (Little's law: rate × latency) and
		// those waiting (in a pod's queue-proxy, or at the activator while no pod can take them).
		concurrency := served*serviceS + backlog
		collector.Record(key, now, metrics.Stat{
			PodName:                   "simulated",
			AverageConcurrentRequests: concurrency,
			RequestCount:              arrivals,
		})

		// The activator pokes the autoscaler when a request arrives for a revision without pods; otherwise
		// the autoscaler ticks every 2 s.
		poke := ready == 0 && len(starting) == 0 && backlog > 0
		if poke || !now.Before(nextTick) {
			nextTick = now.Add(tickInterval)
			sr := scaler.Scale(logger, now)
			if sr.ScaleValid {
				lastDesired = sr.DesiredPodCount
			}
			want := bounds(lastDesired)
			current := int32(ready + len(starting))
			// kpa/scaler.go handleScaleToZero: an active PodAutoscaler goes inactive only after a stable
			// window active; then its last pod stays for the grace period (or the pod retention).
			if want == 0 && current > 0 {
				switch {
				case active && now.Sub(activeSince) < stableWindow:
					want = 1
				case active:
					active, inactive, inactiveAt = false, true, now
					want = current
				case inactive && now.Sub(inactiveAt) < scaleToZeroW:
					want = current
				}
			}
			if bounds(lastDesired) > 0 && !active {
				active, inactive, activeSince = true, false, now
			}
			switch {
			case want > current:
				if current == 0 && reported {
					res.ColdStarts++
				}
				for i := int32(0); i < want-current; i++ {
					starting = append(starting, now.Add(fn.PodStart))
				}
				if reported {
					res.PodStarts += int(want - current)
				}
			case want < current:
				drop := int(current - want)
				for drop > 0 && len(starting) > 0 {
					starting = starting[:len(starting)-1]
					drop--
				}
				ready -= drop
			}
		}
		if !reported {
			continue
		}
		pods := ready + len(starting)
		res.PodHours += float64(pods) / 3600
		if pods > res.PeakReplicas {
			res.PeakReplicas = pods
		}
		res.Events += arrivals
		if daySecond%60 == 59 {
			res.Replicas[daySecond/60] = pods
		}
	}
	// An always-on deployment sized for the peak: the pods whose seconds of capacity the busiest second needs
	// (a scheduled run: one pod, however long the run).
	peakWork := 0.0
	for s := 0; s < Day; s++ {
		if !fn.Scheduled {
			peakWork = math.Max(peakWork, fn.Load(s)*fn.Work(s))
		}
	}
	res.AlwaysOnPods = int(math.Max(1, math.Ceil(peakWork-1e-9)))
	res.AlwaysOnPodHours = float64(res.AlwaysOnPods) * 24
	res.P99QueueMsAtPeak = 1000 * quantile(waitsPeak, 0.99)
	res.P99QueueMsDay = 1000 * quantile(waitsDay, 0.99)
	res.MaxQueueMsDay = 1000 * quantile(waitsDay, 1)
	res.PeakHour = peakHour
	for _, n := range res.Replicas {
		if n == 0 {
			res.MinutesAtZero++
		}
	}
	return res, nil
}

type autoscalingMetric = autoscalingv1alpha1.Metric

func clamp(n, min, max int32) int32 {
	if n < min {
		return min
	}
	if max > 0 && n > max {
		return max
	}
	return n
}

// poisson draws the arrivals of one second: exact for small rates, the normal approximation above.
func poisson(rng *rand.Rand, lambda float64) float64 {
	switch {
	case lambda <= 0:
		return 0
	case lambda < 500:
		l, k, p := math.Exp(-lambda), 0.0, 1.0
		for {
			p *= rng.Float64()
			if p <= l {
				return k
			}
			k++
		}
	default:
		return math.Max(0, math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64()))
	}
}

type weighted struct{ wait, n float64 }

// quantile of waits weighted by their event counts. A wait is counted in whole seconds of the simulation
// (an event served in the second it arrived waited 0).
func quantile(ws []weighted, q float64) float64 {
	if len(ws) == 0 {
		return 0
	}
	sorted := append([]weighted(nil), ws...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].wait < sorted[j].wait })
	total := 0.0
	for _, w := range sorted {
		total += w.n
	}
	seen := 0.0
	for _, w := range sorted {
		seen += w.n
		if seen >= q*total-1e-9 {
			return w.wait
		}
	}
	return sorted[len(sorted)-1].wait
}

func peakHourOf(load Load) int {
	best, hour := -1.0, 0
	for h := 0; h < 24; h++ {
		sum := 0.0
		for s := h * 3600; s < (h+1)*3600; s += 60 {
			sum += load(s)
		}
		if sum > best {
			best, hour = sum, h
		}
	}
	return hour
}

// String is a one-line summary for logs.
func (r *Result) String() string {
	return fmt.Sprintf("%s: peak %d replicas, %.1f pod-hours (always-on %d pods: %.0f), p99 queue at peak %.0f ms, %d cold starts",
		r.Service, r.PeakReplicas, r.PodHours, r.AlwaysOnPods, r.AlwaysOnPodHours, r.P99QueueMsAtPeak, r.ColdStarts)
}
