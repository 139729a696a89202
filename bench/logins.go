package bench

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"postbox/auth"
	"postbox/kasse"
	"postbox/storage/sqldb"
)

// LoginLoad is a login benchmark on one store: accounts with the
// production Argon2id parameters and rate limits lifted, so only the work
// is measured.
type LoginLoad struct {
	svc     *auth.Service
	sms     *SMSInbox
	tenant  string
	users   int
	mobiles []string
	next    atomic.Int64 // logins so far: each login takes the next account
}

const loginPassword = "Kx7#mPq2vR"

// NewLoginLoad creates a Kasse with users insured accounts (password and
// confirmed mobile for the mTAN) in db. Logins take the accounts in turn;
// an account gets at most 5 SMS in 15 minutes (auth's own limit, not a
// rate limit that can be lifted), so give at least a quarter as many
// accounts as logins will happen.
func NewLoginLoad(ctx context.Context, db *sqldb.Store, users int) (*LoginLoad, error) {
	sms := NewSMSInbox()
	unlimited := auth.Limit{Max: 1 << 30, Window: time.Minute}
	svc, err := auth.NewService(db.Auth(), auth.Options{Argon2: auth.DefaultArgon2, Key: make([]byte, 32), ClientAddrKey: make([]byte, 32), SMS: sms,
		RateLimits: auth.RateLimits{LoginPerAddress: unlimited, LoginPerAccount: unlimited, CodePerAccount: unlimited, ResetPerAccount: unlimited}})
	if err != nil {
		return nil, err
	}
	k := kasse.Kasse{ID: "bench-" + randHex(5), Name: "Benchkasse", Settings: kasse.DefaultSettings()}
	if err := db.InTx(ctx, func(tx *sqldb.Tx) error { return tx.CreateKasse(ctx, k) }); err != nil {
		return nil, err
	}
	hash, err := auth.HashSecret(loginPassword, auth.DefaultArgon2)
	if err != nil {
		return nil, err
	}
	l := &LoginLoad{svc: svc, sms: sms, tenant: k.ID, users: users, mobiles: make([]string, users)}
	for i := range users {
		l.mobiles[i] = fmt.Sprintf("+49151%08d", i)
		a := auth.Account{ID: uuid.NewString(), TenantID: k.ID, Role: auth.RoleInsured, Username: fmt.Sprintf("user%d", i), PasswordHash: hash,
			Status: auth.StatusActive, Mobile: l.mobiles[i], SecurityQuestion: auth.SecurityQuestions[0]}
		if err := db.Auth().InTx(ctx, func(tx auth.Tx) error {
			a.MobileConfirmedAt, a.ActivatedAt = tx.Now(), tx.Now()
			return tx.CreateAccount(ctx, a)
		}); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// LoginStats is one measurement.
type LoginStats struct {
	Latencies []time.Duration // sorted
	Elapsed   time.Duration
	CPU       time.Duration // this process's CPU time meanwhile
}

func (s LoginStats) PerSecond() float64 { return float64(len(s.Latencies)) / s.Elapsed.Seconds() }

// Percentile of the sorted latencies, p in [0, 1].
func (s LoginStats) Percentile(p float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	return s.Latencies[min(len(s.Latencies)-1, int(p*float64(len(s.Latencies))))]
}

// Run lets clients goroutines log in until n logins are done or the time
// limit passed: the password step (rate limit counters, Argon2id, the
// unfinished session, the audit event, each in its transaction) and, with
// mtan, the second step (code check, new session, auth.login event).
func (l *LoginLoad) Run(ctx context.Context, withMTAN bool, clients, n int, limit time.Duration) (LoginStats, error) {
	var (
		mu    sync.Mutex
		lats  []time.Duration
		done  atomic.Int64
		first error
	)
	deadline := time.Now().Add(limit)
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			defer func() {
				mu.Lock()
				lats = append(lats, mine...)
				mu.Unlock()
			}()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if done.Add(1) > int64(n) {
					return
				}
				i := int(l.next.Add(1)) % l.users
				t0 := time.Now()
				r, err := l.svc.Login(ctx, auth.Meta{ClientAddr: fmt.Sprintf("198.51.100.%d", i%250)}, l.tenant, fmt.Sprintf("user%d", i), loginPassword, "")
				if err == nil && withMTAN {
					_, err = l.svc.LoginSecondFactor(ctx, auth.Meta{}, r.Token, "mtan", l.sms.Code(l.mobiles[i]), "")
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	st := LoginStats{Elapsed: time.Since(start), CPU: cpuTime() - cpu0}
	slices.Sort(lats)
	st.Latencies = lats
	if first != nil {
		return st, first
	}
	if len(lats) == 0 {
		return st, fmt.Errorf("no login finished within %v", limit)
	}
	return st, nil
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// SMSInbox is an auth.SMSSender that keeps the last code per number.
type SMSInbox struct {
	mu   sync.Mutex
	last map[string]string
}

func NewSMSInbox() *SMSInbox { return &SMSInbox{last: map[string]string{}} }

var smsCode = regexp.MustCompile(`: ([0-9]{6})\. Gültig`)

func (s *SMSInbox) SendSMS(_ context.Context, to, text string) error {
	if m := smsCode.FindStringSubmatch(text); m != nil {
		s.mu.Lock()
		s.last[to] = m[1]
		s.mu.Unlock()
	}
	return nil
}

// Code is the last code sent to the number ("" none).
func (s *SMSInbox) Code(to string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[to]
}

// stepLogins: logins/s and latency with the production Argon2id
// parameters on PostgreSQL, 8 concurrent clients.
func stepLogins(ctx context.Context, r *run) error {
	db, err := r.freshStore(ctx)
	if err != nil {
		return err
	}
	n, limit := 160, 15*time.Second
	if r.opts.Quick {
		n, limit = 16, 10*time.Second
	}
	const clients = 8
	l, err := NewLoginLoad(ctx, db, max(64, 2*n*r.runs()/4+8))
	if err != nil {
		return err
	}
	for _, mtan := range []bool{false, true} {
		name := "password"
		if mtan {
			name = "password + mTAN"
		}
		var rate, p50, p99, cpu []float64
		for range r.runs() {
			st, err := l.Run(ctx, mtan, clients, n, limit)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			rate = append(rate, st.PerSecond())
			p50 = append(p50, ms(st.Percentile(0.50)))
			p99 = append(p99, ms(st.Percentile(0.99)))
			cpu = append(cpu, ms(st.CPU)/float64(len(st.Latencies)))
			r.logf("%s: %d logins in %v: %.1f/s, p99 %v", name, len(st.Latencies), st.Elapsed.Round(time.Millisecond), st.PerSecond(), st.Percentile(0.99))
		}
		r.figure("logins/s, "+name, "1/s", rate, "", nil, "8 clients, PostgreSQL")
		r.figure("login p50, "+name, "ms", p50, "", nil, "")
		r.figure("login p99, "+name, "ms", p99, "", nil, "")
		r.figure("CPU per login, "+name, "ms", cpu, "", nil, "this process (Argon2id, driver), not PostgreSQL")
	}
	r.rep.note("Logins: auth.Service on PostgreSQL with auth.DefaultArgon2 (m=19 MiB, t=2, p=1), 8 concurrent clients, rate limits lifted; "+
		"each run stops after %d logins or %v, whichever comes first; each account logs in at most 4 times (auth sends at most 5 SMS per account in 15 minutes). The HTTP login under load is in the mixed step.", n, limit)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
