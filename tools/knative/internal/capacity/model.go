package capacity

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Measured is what one pod of a function sustains, as knative/deploy-values.json records it beside the
// autoscaling values derived from it (services.<name>.capacity).
type Measured struct {
	EventsPerSecond float64 `json:"eventsPerSecond"`
	// The concurrency at which it sustained that rate with its p99 at the target.
	Concurrency float64 `json:"concurrency"`
	P99Ms       float64 `json:"p99Ms"`
	ColdStartMs float64 `json:"coldStartMs"`
}

// Model is the load model: what each device message and each device-day bring each function.
type Model struct {
	// Pod scheduling, image (cached on the node) and container start, before the process's own cold start.
	PodStartSeconds float64 `json:"podStartSeconds"`
	Functions       map[string]struct {
		// Events per device message (telemetry-ingest: 1).
		PerMessage float64 `json:"perMessage"`
		// Events per device per day, spread like the messages (commands, presence, …).
		PerDevicePerDay float64 `json:"perDevicePerDay"`
		// Work that runs on a schedule, not per event: one request every IntervalSeconds that takes
		// messages-since-last-run ÷ eventsPerSecond (rollups).
		BatchIntervalSeconds float64 `json:"batchIntervalSeconds"`
	} `json:"functions"`
}

// Curve is the load of the day relative to the nominal rate, per hour; between hours it is interpolated.
type Curve [24]float64

// ReadCurve reads `hour,factor` rows (a header line is allowed).
func ReadCurve(r io.Reader) (Curve, error) {
	var c Curve
	seen := map[int]bool{}
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return c, err
	}
	for i, row := range rows {
		if len(row) < 2 {
			return c, fmt.Errorf("line %d: want hour,factor", i+1)
		}
		hour, err := strconv.Atoi(strings.TrimSpace(row[0]))
		if err != nil {
			if i == 0 {
				continue // header
			}
			return c, fmt.Errorf("line %d: hour %q", i+1, row[0])
		}
		factor, err := strconv.ParseFloat(strings.TrimSpace(row[1]), 64)
		if err != nil || factor < 0 || hour < 0 || hour > 23 {
			return c, fmt.Errorf("line %d: want an hour 0-23 and a factor >= 0", i+1)
		}
		c[hour] = factor
		seen[hour] = true
	}
	if len(seen) != 24 {
		return c, fmt.Errorf("the curve needs all 24 hours, has %d", len(seen))
	}
	return c, nil
}

// At is the factor at a second of the day: hour values are the middle of their hour, linear between.
func (c Curve) At(second int) float64 {
	x := float64(second)/3600 - 0.5
	h0 := int(math.Floor(x))
	frac := x - float64(h0)
	a, b := c[(h0+24)%24], c[(h0+1+24)%24]
	return a + (b-a)*frac
}

// Peak is the largest factor of the day.
func (c Curve) Peak() float64 {
	p := 0.0
	for _, f := range c {
		p = math.Max(p, f)
	}
	return p
}

// ReadMeasured reads services.<name>.capacity of knative/deploy-values.json.
func ReadMeasured(file string) (map[string]Measured, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var values struct {
		Services map[string]struct {
			Capacity *Measured `json:"capacity"`
		} `json:"services"`
	}
	if err := json.Unmarshal(raw, &values); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out := map[string]Measured{}
	for name, svc := range values.Services {
		if svc.Capacity != nil {
			out[name] = *svc.Capacity
		}
	}
	return out, nil
}

// ReadModel reads the load model.
func ReadModel(file string) (*Model, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := &Model{}
	if err := json.Unmarshal(raw, m); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

// Scenario is a fleet: its size and how often each device sends a message at the nominal rate.
type Scenario struct {
	Devices  int
	Interval time.Duration
	Curve    Curve
}

// FunctionOf is one function of the model in a scenario: its load, and the work each event takes.
func (m *Model) FunctionOf(name string, sc Scenario, measured Measured) (load Load, work func(int) float64, scheduled bool) {
	f := m.Functions[name]
	perEvent := 1 / measured.EventsPerSecond
	if f.BatchIntervalSeconds <= 0 {
		return m.LoadOf(name, sc), func(int) float64 { return perEvent }, false
	}
	interval := int(f.BatchIntervalSeconds)
	messages := m.LoadOf(name, sc)
	return func(second int) float64 {
			if second%interval == 0 {
				return 1
			}
			return 0
		}, func(second int) float64 {
			// A run works through the messages of the interval before it.
			sum := 0.0
			for s := second - interval; s < second; s++ {
				sum += messages((s + Day) % Day)
			}
			return math.Max(sum*perEvent, 0.1)
		}, true
}

// LoadOf is the events per second one function gets at each second of the day in a scenario.
func (m *Model) LoadOf(name string, sc Scenario) Load {
	f := m.Functions[name]
	nominal := float64(sc.Devices) / sc.Interval.Seconds() // messages per second at factor 1
	mean := 0.0
	for _, v := range sc.Curve {
		mean += v / 24
	}
	perDay := float64(sc.Devices) * f.PerDevicePerDay / Day // events per second on average over the day
	return func(second int) float64 {
		factor := sc.Curve.At(second)
		rate := nominal * factor * f.PerMessage
		if mean > 0 {
			rate += perDay * factor / mean
		}
		return rate
	}
}
