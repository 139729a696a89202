package auth_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/auth"
	"postbox/kasse"
	"postbox/storage/sqldb"
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
	sms := &smsRecorder{}
	unlimited := auth.Limit{Max: 1 << 30, Window: time.Minute}
	svc, err := auth.NewService(db.Auth(), auth.Options{Argon2: auth.DefaultArgon2, Key: make([]byte, 32), ClientAddrKey: make([]byte, 32), SMS: sms,
		RateLimits: auth.RateLimits{LoginPerAddress: unlimited, LoginPerAccount: unlimited, CodePerAccount: unlimited, ResetPerAccount: unlimited}})
	if err != nil {
		b.Fatal(err)
	}
	k := kasse.Kasse{ID: "bench", Name: "Benchkasse", Settings: kasse.DefaultSettings()}
	if err := db.InTx(ctx, func(tx *sqldb.Tx) error { return tx.CreateKasse(ctx, k) }); err != nil {
		b.Fatal(err)
	}
	const users = 64
	hash, _ := auth.HashSecret("Kx7#mPq2vR", auth.DefaultArgon2)
	mobiles := make([]string, users)
	for i := range users {
		mobiles[i] = fmt.Sprintf("+49151%08d", i)
		a := auth.Account{ID: uuid.NewString(), TenantID: k.ID, Role: auth.RoleInsured, Username: fmt.Sprintf("user%d", i), PasswordHash: hash,
			Status: auth.StatusActive, Mobile: mobiles[i], SecurityQuestion: auth.SecurityQuestions[0]}
		if err := db.Auth().InTx(ctx, func(tx auth.Tx) error {
			a.MobileConfirmedAt, a.ActivatedAt = tx.Now(), tx.Now()
			return tx.CreateAccount(ctx, a)
		}); err != nil {
			b.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		lats []time.Duration
		next atomic.Int64
	)
	b.SetParallelism(4) // 4 × GOMAXPROCS clients
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := int(next.Add(1)) % users
			t0 := time.Now()
			r, err := svc.Login(ctx, auth.Meta{ClientAddr: fmt.Sprintf("198.51.100.%d", i)}, k.ID, fmt.Sprintf("user%d", i), "Kx7#mPq2vR", "")
			if err != nil {
				b.Error(err)
				return
			}
			if withMTAN {
				if _, err := svc.LoginSecondFactor(ctx, auth.Meta{}, r.Token, "mtan", sms.codeFor(mobiles[i]), ""); err != nil {
					b.Error(err)
					return
				}
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lats = append(lats, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if len(lats) == 0 {
		return
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "logins/s")
	b.ReportMetric(float64(lats[len(lats)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lats[min(len(lats)-1, len(lats)*99/100)].Microseconds())/1000, "p99-ms")
	// CPU time per login: on a shared machine the wall-clock numbers depend
	// on the neighbours; this one says what an idle machine could do
	// (logins/s ≈ cores / cpu-s per login).
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(lats)), "cpu-ms/login")
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// codeFor returns the last code sent to a number (the benchmark's users
// log in concurrently, each with its own number).
func (r *smsRecorder) codeFor(to string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.msgs) - 1; i >= 0; i-- {
		if r.msgs[i].to == to {
			if m := codeInSMS.FindStringSubmatch(r.msgs[i].text); m != nil {
				return m[1]
			}
		}
	}
	return ""
}
