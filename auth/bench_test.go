package auth_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"postbox/auth"
	"postbox/bench"
	"postbox/storage/sqlite"
)

// Argon2id cost of one hash with candidate parameters (one core each).
func BenchmarkArgon2id(b *testing.B) {
	for _, p := range []auth.Argon2Params{
		{MemoryKiB: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}, // OWASP, chosen (auth.DefaultArgon2)
		{MemoryKiB: 46 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, // OWASP alternative
		{MemoryKiB: 64 * 1024, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}, // RFC 9106 second recommendation
	} {
		b.Run(fmt.Sprintf("m=%dMiB,t=%d,p=%d", p.MemoryKiB/1024, p.Time, p.Threads), func(b *testing.B) {
			hash, err := auth.HashSecret("Kx7#mPq2vR", p)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if ok, _ := auth.VerifySecret("Kx7#mPq2vR", hash); !ok {
					b.Fatal("verify failed")
				}
			}
		})
	}
}

// BenchmarkLogin measures whole logins with the production Argon2id
// parameters on SQLite: the password step (rate limit counters, Argon2id,
// session, audit event) and the mTAN step (code check, new session, audit
// event), from 8 concurrent clients. It reports logins per second and the
// 99th percentile latency of one login.
func BenchmarkLogin(b *testing.B) {
	for _, step := range []string{"password", "password+mtan"} {
		b.Run(step, func(b *testing.B) { benchLogin(b, step == "password+mtan") })
	}
}

func benchLogin(b *testing.B, withMTAN bool) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l, err := bench.NewLoginLoad(ctx, db, max(64, b.N/4+1))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	// 4 × GOMAXPROCS clients, as b.SetParallelism(4) did.
	st, err := l.Run(ctx, withMTAN, 4*runtime.GOMAXPROCS(0), b.N, time.Hour)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(st.PerSecond(), "logins/s")
	b.ReportMetric(float64(st.Percentile(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(st.Percentile(0.99).Microseconds())/1000, "p99-ms")
	// CPU time per login: on a shared machine the wall-clock numbers depend
	// on the neighbours; this one says what an idle machine could do
	// (logins/s ≈ cores / cpu-s per login).
	b.ReportMetric(float64(st.CPU.Microseconds())/1000/float64(len(st.Latencies)), "cpu-ms/login")
}
