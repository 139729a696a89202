package clickhouse

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LocalCPU reads the CPU time (user+system) used so far by this process
// ("go"), by all PostgreSQL processes ("postgres", including exited
// backends and parallel workers through the postmaster's reaped-children
// time) and by clickhouse-server ("clickhouse") on this machine, from
// /proc. It is for IngestConfig.CPU when the servers run locally: the
// rate of a shared machine depends on its load, CPU time per event does
// much less.
func LocalCPU() (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return nil, err
	}
	out["go"] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	const tick = 100 // USER_HZ on Linux
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the process ended meanwhile
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		comm := s[open+1 : end]
		var group string
		switch {
		case comm == "postgres":
			group = "postgres"
		case strings.HasPrefix(comm, "clickhouse"):
			group = "clickhouse"
		default:
			continue
		}
		fields := strings.Fields(s[end+1:]) // fields[0] is field 3 (state)
		if len(fields) < 15 {
			return nil, fmt.Errorf("%s: short stat line", f)
		}
		var ticks int64
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime (fields 14-17)
			v, err := strconv.ParseInt(fields[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			ticks += v
		}
		out[group] += time.Duration(ticks) * time.Second / tick
	}
	return out, nil
}
