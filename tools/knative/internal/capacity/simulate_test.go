package capacity

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"kiot.dev/tools/knative/internal/autoscaling"
	"kiot.dev/tools/knative/internal/release"
)

func TestRareEventsScaleToZero(t *testing.T) {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "knative.dev/serving").Output()
	if err != nil {
		t.Fatal(err)
	}
	modules, err := release.Load(map[string]string{release.Serving: strings.TrimSpace(string(dir))}, release.Serving)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cfg, err := autoscaling.Store(modules[release.Serving].ConfigMaps)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../../../knative/services/dead-letters.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := autoscaling.FromService(ctx, cfg, doc)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bounds %d..%d, settings %+v", rev.MinScale, rev.MaxScale, rev.Settings())
	res, err := Simulate(Function{
		Revision: rev, Work: func(int) float64 { return 0.001 }, ServiceTime: 10 * time.Millisecond,
		PodStart: 3 * time.Second, Scheduled: true,
		Load: func(s int) float64 {
			if s == 36000 {
				return 1
			}
			return 0
		},
	}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v, minutes at zero %d, replicas around: %v", res, res.MinutesAtZero, res.Replicas[598:610])
	if res.MinutesAtZero < 1430 {
		t.Fatalf("one event a day kept a pod %d minutes", 1440-res.MinutesAtZero)
	}
}
