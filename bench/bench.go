// Package bench measures postbox against the real services in one run
// ("postbox bench"): uploads against MinIO directly and against a peer tus
// server, memory, audit event ingest and queries, notification mails,
// logins and a mixed load, each step bounded in time and size and cleaning
// up what it created. It renders the figures as a Markdown section of
// BENCHMARKS.md and the upload throughput as an SVG plot.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Services are the addresses of the running services (deploy/start's env file).
type Services struct {
	PostgresDSN                   string // an admin DSN; every step creates and drops its own database
	MinIOEndpoint, MinIOAccessKey string
	MinIOSecretKey                string
	ClickHouseAddr                string
	ServicesDir                   string // deploy's services dir: maildev and the peer tus server live in its npm folder
}

// ServicesFromEnv reads the POSTBOX_TEST_* variables written by deploy/start.
func ServicesFromEnv(getenv func(string) string) (Services, error) {
	s := Services{
		PostgresDSN:    getenv("POSTBOX_TEST_PG_DSN"),
		MinIOEndpoint:  getenv("POSTBOX_TEST_MINIO_ENDPOINT"),
		MinIOAccessKey: getenv("POSTBOX_TEST_MINIO_ACCESS_KEY"),
		MinIOSecretKey: getenv("POSTBOX_TEST_MINIO_SECRET_KEY"),
		ClickHouseAddr: getenv("POSTBOX_TEST_CLICKHOUSE_ADDR"),
		ServicesDir:    getenv("POSTBOX_SERVICES_DIR"),
	}
	var missing []string
	for name, v := range map[string]string{"POSTBOX_TEST_PG_DSN": s.PostgresDSN, "POSTBOX_TEST_MINIO_ENDPOINT": s.MinIOEndpoint,
		"POSTBOX_TEST_MINIO_ACCESS_KEY": s.MinIOAccessKey, "POSTBOX_TEST_MINIO_SECRET_KEY": s.MinIOSecretKey,
		"POSTBOX_TEST_CLICKHOUSE_ADDR": s.ClickHouseAddr, "POSTBOX_SERVICES_DIR": s.ServicesDir} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return s, fmt.Errorf("services not configured: %s unset (start them with ./deploy/start and source %s)",
			strings.Join(missing, ", "), "/var/tmp/postbox-services/env")
	}
	return s, nil
}

// Options choose what a run measures.
type Options struct {
	Services Services
	Binary   string // the postbox binary started as server (usually the running one)
	// ProfileDir, when set, gets a CPU profile of every postbox server
	// the run starts ("postbox bench serve --cpuprofile").
	ProfileDir string
	Quick      bool     // tiny sizes: checks that every step works, measures nothing worth keeping
	Runs       int      // repetitions of each measurement (min/median/max); ≥ 3 for the record
	Steps      []string // subset of StepNames; empty: all
	Log        io.Writer
}

// StepNames lists the steps in the order they run.
var StepNames = []string{"upload", "events", "notifications", "logins", "mixed"}

// Figure is one measured quantity with its value from each run.
type Figure struct {
	Step   string
	Name   string
	Unit   string
	Values []float64
	Goal   string // e.g. "< 150 MiB"; empty: none
	Met    string // "yes", "no" or "" (no goal)
	Note   string
}

// Stats returns min, median and max of the values.
func (f Figure) Stats() (lo, med, hi float64) { return stats(f.Values) }

func stats(v []float64) (lo, med, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[0], med, s[len(s)-1]
}

// UploadPoint is one bar of the upload plot.
type UploadPoint struct {
	Workload    string // "100 × 10 MiB", "1 GiB"
	Chunk       int64  // tus PATCH size (the direct PutObject uses minio-go's part size)
	Streams     int
	Contender   string // "postbox", "direct", "peer"
	MiBPerSec   []float64
	Description string
}

// MixedRoute is one route of the mixed load over its whole window.
type MixedRoute struct {
	Instances        int
	Route            string
	Requests, Errors int
	P50, P99         float64 // ms
}

// Report is everything one run measured.
type Report struct {
	Machine     Machine
	Quick       bool
	Runs        int
	Started     time.Time
	Duration    time.Duration
	Figures     []Figure
	Uploads     []UploadPoint
	Mixed       []MixedRoute
	Notes       []string // what was bounded or chosen, per step
	Failures    []string // steps that failed, with their error
	LoadAfter   [3]float64
	mu          sync.Mutex
	stepTimings []string
}

func (r *Report) add(f Figure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Figures = append(r.Figures, f)
}

func (r *Report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// run is the state one step sees: options, the report and a cleanup list
// worked off when the step ends, whatever happened.
type run struct {
	opts    Options
	rep     *Report
	step    string
	cleanup []func()
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.opts.Log, "[%s %s] %s\n", time.Now().UTC().Format("15:04:05"), r.step, fmt.Sprintf(format, args...))
}

// defer registers fn to run at the end of the step (last in, first out).
func (r *run) defer_(fn func()) { r.cleanup = append(r.cleanup, fn) }

func (r *run) figure(name, unit string, values []float64, goal string, met func(med float64) bool, note string) {
	f := Figure{Step: r.step, Name: name, Unit: unit, Values: values, Goal: goal, Note: note}
	if met != nil && len(values) > 0 {
		_, med, _ := stats(values)
		f.Met = "no"
		if met(med) {
			f.Met = "yes"
		}
	}
	r.rep.add(f)
}

func (r *run) runs() int {
	if r.opts.Runs > 0 {
		return r.opts.Runs
	}
	return 3
}

type stepFunc func(ctx context.Context, r *run) error

var steps = map[string]struct {
	fn    stepFunc
	limit time.Duration // whole step, full size
}{
	"upload":        {stepUpload, 16 * time.Minute},
	"events":        {stepEvents, 3 * time.Minute},
	"notifications": {stepNotifications, 90 * time.Second},
	"logins":        {stepLogins, 2 * time.Minute},
	"mixed":         {stepMixed, 3*time.Minute + 30*time.Second},
}

// Run measures the chosen steps one after the other. A failed step is
// recorded and the next one runs; the error lists all failures.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Binary = exe
	}
	names := opts.Steps
	if len(names) == 0 {
		names = StepNames
	}
	for _, n := range names {
		if _, ok := steps[n]; !ok {
			return nil, fmt.Errorf("unknown step %q (steps: %s)", n, strings.Join(StepNames, ", "))
		}
	}
	rep := &Report{Quick: opts.Quick, Runs: opts.Runs, Started: time.Now().UTC()}
	if rep.Runs == 0 {
		rep.Runs = 3
	}
	rep.Machine = describeMachine(ctx, opts.Services)
	var errs []error
	// The whole run is bounded too: a step gets at most what is left of
	// the budget (its own limit otherwise).
	budget := 20 * time.Minute
	if opts.Quick {
		budget = 5 * time.Minute
	}
	end := time.Now().Add(budget)
	for _, n := range names {
		st := steps[n]
		limit := st.limit
		if opts.Quick {
			limit = min(limit, 90*time.Second)
		}
		limit = min(limit, time.Until(end))
		if limit < 30*time.Second {
			err := fmt.Errorf("not run: only %v of the %v budget left", time.Until(end).Round(time.Second), budget)
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %v", n, err))
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
			continue
		}
		r := &run{opts: opts, rep: rep, step: n}
		sctx, cancel := context.WithTimeout(ctx, limit)
		t0 := time.Now()
		r.logf("start (limit %v)", limit)
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			return st.fn(sctx, r)
		}()
		cancel()
		tc := time.Now()
		for i := len(r.cleanup) - 1; i >= 0; i-- {
			r.cleanup[i]()
		}
		if d := time.Since(tc); d > 2*time.Second {
			r.logf("cleanup took %v", d.Round(time.Second))
		}
		d := time.Since(t0).Round(time.Second)
		rep.stepTimings = append(rep.stepTimings, fmt.Sprintf("%s %v", n, d))
		if err != nil {
			r.logf("FAILED after %v: %v", d, err)
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %v", n, err))
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
			continue
		}
		r.logf("done in %v", d)
		if ctx.Err() != nil {
			break
		}
	}
	rep.Duration = time.Since(rep.Started).Round(time.Second)
	rep.LoadAfter = loadAverage()
	return rep, errors.Join(errs...)
}
