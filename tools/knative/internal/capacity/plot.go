package capacity

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot writes an SVG of the replicas of each function over the day (one point a minute), with the load
// curve (messages per second, right-hand scale folded into the title) as a dashed grey line scaled to the
// largest replica count.
func Plot(file, title string, results []*Result, sc Scenario) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "hour of the day (UTC)"
	p.Y.Label.Text = "replicas (ready or starting)"
	p.X.Min, p.X.Max = 0, 24
	p.X.Tick.Marker = plot.ConstantTicks(hourTicks())
	p.Legend.Top = true
	p.Legend.Left = true
	peak := 1
	for _, r := range results {
		if r.PeakReplicas > peak {
			peak = r.PeakReplicas
		}
	}
	load := make(plotter.XYs, 0, Day/60)
	for m := 0; m < Day/60; m++ {
		load = append(load, plotter.XY{X: float64(m) / 60, Y: sc.Curve.At(m*60) / sc.Curve.Peak() * float64(peak)})
	}
	line, err := plotter.NewLine(load)
	if err != nil {
		return err
	}
	line.Color = color.Gray{Y: 160}
	line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(line)
	p.Legend.Add(fmt.Sprintf("load (peak %.0f msg/s)", float64(sc.Devices)/sc.Interval.Seconds()*sc.Curve.Peak()), line)
	for i, r := range results {
		xys := make(plotter.XYs, len(r.Replicas))
		for m, n := range r.Replicas {
			xys[m] = plotter.XY{X: float64(m+1) / 60, Y: float64(n)}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (peak %d)", r.Service, r.PeakReplicas), l)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return p.Save(9*vg.Inch, 4.5*vg.Inch, file)
}

func hourTicks() []plot.Tick {
	ticks := make([]plot.Tick, 0, 25)
	for h := 0; h <= 24; h++ {
		label := ""
		if h%3 == 0 {
			label = fmt.Sprintf("%02d", h)
		}
		ticks = append(ticks, plot.Tick{Value: float64(h), Label: label})
	}
	return ticks
}
