package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/hkdf"

	"postbox/audit"
	"postbox/auth"
	"postbox/intake"
	"postbox/kasse"
	"postbox/mailbox"
	"postbox/storage/sqldb"
)

// mixedPlan sizes the simulated population.
type mixedPlan struct {
	pinUsers, postfachUsers, loginUsers int
	accountsPerLoginUser                int
	duration                            time.Duration
	uploadSize                          int64
	think                               float64 // scales every pause
}

func (r *run) mixedPlan() mixedPlan {
	if r.opts.Quick {
		return mixedPlan{pinUsers: 6, postfachUsers: 6, loginUsers: 4, accountsPerLoginUser: 6, duration: 6 * time.Second, uploadSize: 64 * kib, think: 0.2}
	}
	return mixedPlan{pinUsers: 80, postfachUsers: 80, loginUsers: 40, accountsPerLoginUser: 8, duration: 60 * time.Second, uploadSize: 256 * kib, think: 1}
}

func (p mixedPlan) users() int { return p.pinUsers + p.postfachUsers + p.loginUsers }

// recorder keeps every request's route, start (relative to the window)
// and latency, and the errors.
type recorder struct {
	start, end time.Time
	mu         sync.Mutex
	samples    map[string][]sample
	errors     map[string]int
	firstErrs  []string
}

type sample struct {
	at  time.Duration // start, from the window's start
	lat time.Duration
}

func (rec *recorder) observe(route string, t0 time.Time, err error) {
	if t0.Before(rec.start) || !t0.Before(rec.end) {
		return // warm-up or after the window
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if err != nil {
		rec.errors[route]++
		if len(rec.firstErrs) < 5 {
			rec.firstErrs = append(rec.firstErrs, route+": "+firstLine(err.Error()))
		}
		return
	}
	rec.samples[route] = append(rec.samples[route], sample{at: t0.Sub(rec.start), lat: time.Since(t0)})
}

// vuser is one simulated person: own source address on loopback (so the
// per-address rate limits see 200 people, not one), own cookies, requests
// spread round-robin over the instances.
type vuser struct {
	hc    *http.Client
	bases []string
	next  *atomic.Uint64
	rec   *recorder
	csrf  string
	rng   *rand.Rand
	// thinkScale shortens the pauses of a quick run, so every route is
	// used within its few seconds.
	thinkScale float64
}

func newVUser(ip net.IP, bases []string, next *atomic.Uint64, rec *recorder, seed uint64) *vuser {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 2, DisableCompression: true}
	return &vuser{hc: &http.Client{Jar: jar, Transport: tr, Timeout: 60 * time.Second}, bases: bases, next: next, rec: rec,
		rng: rand.New(rand.NewPCG(seed, 7))}
}

func (u *vuser) base() string { return u.bases[u.next.Add(1)%uint64(len(u.bases))] }

// call sends one request and checks the status; out, when set, gets the
// JSON answer.
func (u *vuser) call(ctx context.Context, route, method, path string, body io.Reader, n int64, h map[string]string, want int, out any) (*http.Response, error) {
	url := path
	if !strings.HasPrefix(path, "http") {
		url = u.base() + path
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = n
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	t0 := time.Now()
	resp, err := u.hc.Do(req)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != want {
			err = fmt.Errorf("status %d, want %d: %.200s", resp.StatusCode, want, b)
		}
		if err == nil && out != nil {
			err = json.Unmarshal(b, out)
		}
	}
	if ctx.Err() == nil {
		u.rec.observe(route, t0, err)
	}
	return resp, err
}

func jsonBody(v any) (io.Reader, int64) {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b), int64(len(b))
}

func (u *vuser) postJSON(ctx context.Context, route, path string, v any, want int, out any) error {
	body, n := jsonBody(v)
	h := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
	if u.csrf != "" {
		h["X-CSRF-Token"] = u.csrf
	}
	_, err := u.call(ctx, route, "POST", path, body, n, h, want, out)
	return err
}

// think pauses 0.5–1.5 s (scaled), as a person reading does.
func (u *vuser) think(ctx context.Context, scale float64) {
	d := time.Duration((0.5 + u.rng.Float64()) * scale * u.thinkScale * float64(time.Second))
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// login runs the insured login over HTTP: password, then the mTAN from
// the SMS gateway.
func (u *vuser) login(ctx context.Context, sms *SMSInbox, kasseID, username, mobile string) error {
	u.csrf = ""
	var step struct {
		Stage    string `json:"stage"`
		CSRF     string `json:"csrf_token"`
		MTANSent bool   `json:"mtan_sent"`
	}
	if err := u.postJSON(ctx, "POST /api/auth/login", "/api/auth/login", map[string]string{"kasse": kasseID, "username": username, "password": loginPassword}, 200, &step); err != nil {
		return err
	}
	if step.Stage != "second_factor" {
		return fmt.Errorf("login: stage %q after the password", step.Stage)
	}
	u.csrf = step.CSRF
	if !step.MTANSent {
		if err := u.postJSON(ctx, "POST /api/auth/login/mtan", "/api/auth/login/mtan", nil, 200, nil); err != nil {
			return err
		}
	}
	if err := u.postJSON(ctx, "POST /api/auth/login/second-factor", "/api/auth/login/second-factor",
		map[string]string{"method": "mtan", "code": sms.Code(mobile)}, 200, &step); err != nil {
		return err
	}
	if step.Stage != "done" {
		return fmt.Errorf("login: stage %q after the mTAN", step.Stage)
	}
	u.csrf = step.CSRF
	return nil
}

// mixedWorld is the population of one configuration.
type mixedWorld struct {
	kasse    kasse.Kasse
	pins     []struct{ kvnr, pin string }
	postfach []struct{ username, mobile, thread string }
	logins   [][]struct{ username, mobile string }
}

// pinKey derives the Einmal-PIN hash key from the master key exactly as
// cmd/postbox's deriveKeys does ("postbox/einmal-pin"), so PINs issued here
// are the ones the servers accept.
func pinKey(masterHex string) ([]byte, error) {
	master, err := hex.DecodeString(masterHex)
	if err != nil {
		return nil, err
	}
	k := make([]byte, 32)
	_, err = io.ReadFull(hkdf.New(sha256.New, master, nil, []byte("postbox/einmal-pin")), k)
	return k, err
}

func (s *postboxSetup) mixedWorld(ctx context.Context, plan mixedPlan) (*mixedWorld, error) {
	k, persons, err := s.kasse(ctx, plan.pinUsers+plan.postfachUsers, false)
	if err != nil {
		return nil, err
	}
	w := &mixedWorld{kasse: k}
	key, err := pinKey(s.secretKey)
	if err != nil {
		return nil, err
	}
	pins := &intake.PINService{Store: s.db.PINIntake(), Hasher: intake.NewPINHasher(key), BaseURL: "http://portal.invalid", NotifyWindow: 15 * time.Minute}
	batch := intake.Actor{Principal: auth.Principal{TenantID: k.ID, Role: intake.RoleBatch}, RequestID: "bench"}
	for _, p := range persons[:plan.pinUsers] {
		issued, err := pins.Issue(ctx, batch, intake.IssueRequest{KVNR: p.KVNR, CaseType: audit.CaseType("hilfsmittel"), RequestText: "Bitte senden Sie uns die Verordnung."})
		if err != nil {
			return nil, fmt.Errorf("issue PIN: %w", err)
		}
		w.pins = append(w.pins, struct{ kvnr, pin string }{p.KVNR, intake.FormatPIN(issued.PIN)})
	}
	hash, err := auth.HashSecret(loginPassword, auth.DefaultArgon2)
	if err != nil {
		return nil, err
	}
	var accounts []auth.Account
	account := func(i int, personID string) (string, string) {
		a := auth.Account{ID: uuid.NewString(), TenantID: k.ID, Role: auth.RoleInsured, Username: fmt.Sprintf("vu%d", i), PasswordHash: hash,
			Status: auth.StatusActive, PersonID: personID, Mobile: fmt.Sprintf("+49152%08d", i), SecurityQuestion: auth.SecurityQuestions[0]}
		accounts = append(accounts, a)
		return a.Username, a.Mobile
	}
	err = s.db.InTx(ctx, func(tx *sqldb.Tx) error {
		team, err := tx.CreateTeam(ctx, mailbox.Team{TenantID: k.ID, Name: "Krankengeld", Topic: "krankengeld"})
		if err != nil {
			return err
		}
		for _, p := range persons[plan.pinUsers:] {
			th, err := tx.CreateThread(ctx, mailbox.Thread{TenantID: k.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: p.ID, TeamID: team.ID, Subject: "Anfrage Krankengeld"})
			if err != nil {
				return err
			}
			user, mobile := account(len(accounts), p.ID)
			w.postfach = append(w.postfach, struct{ username, mobile, thread string }{user, mobile, th.ID})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for range plan.loginUsers {
		var accs []struct{ username, mobile string }
		for range plan.accountsPerLoginUser {
			user, mobile := account(len(accounts), "")
			accs = append(accs, struct{ username, mobile string }{user, mobile})
		}
		w.logins = append(w.logins, accs)
	}
	// Accounts through the auth store: it writes the second-factor fields.
	err = s.db.Auth().InTx(ctx, func(tx auth.Tx) error {
		for _, a := range accounts {
			a.MobileConfirmedAt, a.ActivatedAt, a.PasswordChangedAt = tx.Now(), tx.Now(), tx.Now()
			if err := tx.CreateAccount(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	return w, err
}

// smsGateway receives the servers' SMS (POSTBOX_SMS_GATEWAY_URL) into an inbox.
func (r *run) smsGateway() (*SMSInbox, string, error) {
	inbox := NewSMSInbox()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var m struct{ To, Text string }
		if err := json.NewDecoder(req.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		inbox.SendSMS(req.Context(), m.To, m.Text)
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	r.defer_(func() { srv.Close() })
	return inbox, "http://" + ln.Addr().String() + "/sms", nil
}

// mixedResult is one configuration's window.
type mixedResult struct {
	perRoute map[string][]sample
	errors   map[string]int
	firstErr []string
	duration time.Duration
}

func (r *run) mixedOnce(ctx context.Context, instances int, plan mixedPlan, ipBlock byte) (*mixedResult, error) {
	sms, smsURL, err := r.smsGateway()
	if err != nil {
		return nil, err
	}
	pb, err := r.newPostbox(ctx, true)
	if err != nil {
		return nil, err
	}
	pb.smsURL = smsURL
	var bases []string
	var procs []*proc
	for range instances {
		p, addr, err := pb.start(ctx)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		bases = append(bases, "http://"+addr)
	}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	w, err := pb.mixedWorld(ctx, plan)
	if err != nil {
		return nil, err
	}
	rec := &recorder{samples: map[string][]sample{}, errors: map[string]int{}}
	var rr atomic.Uint64
	ip := func(i int) net.IP { return net.IPv4(127, ipBlock, byte(i/250), byte(i%250+1)) }

	// Warm-up (not measured): PIN and Postfach users sign in once.
	users := make([]*vuser, plan.users())
	for i := range users {
		users[i] = newVUser(ip(i), bases, &rr, rec, uint64(i))
		users[i].thinkScale = plan.think
	}
	rec.start = time.Now().Add(time.Hour) // nothing is recorded yet
	rec.end = rec.start
	var wg sync.WaitGroup
	var setupErr error
	var mu sync.Mutex
	sem := make(chan struct{}, 8)
	for i := range plan.pinUsers + plan.postfachUsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			if i < plan.pinUsers {
				err = users[i].postJSON(ctx, "POST /api/pin-login", "/api/pin-login", map[string]string{"kasse": w.kasse.ID, "kvnr": w.pins[i].kvnr, "pin": w.pins[i].pin}, 200, nil)
			} else {
				pf := w.postfach[i-plan.pinUsers]
				err = users[i].login(ctx, sms, w.kasse.ID, pf.username, pf.mobile)
			}
			if err != nil {
				mu.Lock()
				setupErr = errors.Join(setupErr, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if setupErr != nil {
		return nil, fmt.Errorf("warm-up sign-ins: %w", setupErr)
	}

	rec.start = time.Now()
	rec.end = rec.start.Add(plan.duration)
	wctx, cancel := context.WithDeadline(ctx, rec.end)
	defer cancel()
	// In-flight requests at the end may finish (they count); no new ones start.
	reqCtx, cancelReq := context.WithTimeout(ctx, plan.duration+time.Minute)
	defer cancelReq()
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.think(wctx, 1) // spread the starts
			switch {
			case i < plan.pinUsers:
				for wctx.Err() == nil {
					resp, err := u.call(reqCtx, "POST /api/uploads", "POST", "/api/uploads/", nil, 0, map[string]string{
						"Tus-Resumable": intake.TusVersion, "Upload-Length": strconv.FormatInt(plan.uploadSize, 10),
						"Upload-Metadata": "filename YmVmdW5kLnBkZg=="}, http.StatusCreated, nil)
					if err == nil {
						u.call(reqCtx, "PATCH /api/uploads/:id", "PATCH", resp.Header.Get("Location"), newSource(plan.uploadSize), plan.uploadSize, map[string]string{
							"Tus-Resumable": intake.TusVersion, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}, http.StatusNoContent, nil)
					}
					u.think(wctx, 2)
				}
			case i < plan.pinUsers+plan.postfachUsers:
				pf := w.postfach[i-plan.pinUsers]
				for n := 0; wctx.Err() == nil; n++ {
					u.call(reqCtx, "GET /api/postfach/threads", "GET", "/api/postfach/threads", nil, 0, map[string]string{"Accept": "application/json"}, 200, nil)
					u.think(wctx, 1)
					u.call(reqCtx, "GET /api/postfach/threads/:id", "GET", "/api/postfach/threads/"+pf.thread, nil, 0, map[string]string{"Accept": "application/json"}, 200, nil)
					u.think(wctx, 1)
					if n%2 == 0 {
						u.postJSON(reqCtx, "POST /api/postfach/threads/:id/messages", "/api/postfach/threads/"+pf.thread+"/messages",
							map[string]any{"body": "Anbei meine Antwort auf Ihre Nachricht."}, http.StatusCreated, nil)
						u.think(wctx, 1)
					}
				}
			default:
				accs := w.logins[i-plan.pinUsers-plan.postfachUsers]
				for n := 0; wctx.Err() == nil; n++ {
					a := accs[n%len(accs)]
					if err := u.login(reqCtx, sms, w.kasse.ID, a.username, a.mobile); err == nil {
						u.postJSON(reqCtx, "POST /api/auth/logout", "/api/auth/logout", nil, 200, nil)
					}
					u.think(wctx, 3.5) // ≈ 17 logins a minute: under the per-address limit of 30 in 15 minutes
				}
			}
		}()
	}
	wg.Wait()
	// Idle keep-alive connections would hold up the servers' graceful stop.
	for _, u := range users {
		u.hc.CloseIdleConnections()
	}
	return &mixedResult{perRoute: rec.samples, errors: rec.errors, firstErr: rec.firstErrs, duration: plan.duration}, nil
}

// stepMixed: 200 simulated people for 60 s against one instance and
// against three behind a round-robin client.
func stepMixed(ctx context.Context, r *run) error {
	plan := r.mixedPlan()
	for ci, instances := range []int{1, 3} {
		res, err := r.mixedOnce(ctx, instances, plan, byte(ci+1))
		if err != nil {
			return fmt.Errorf("%s: %w", plural(instances, "instance"), err)
		}
		label := plural(instances, "instance")
		third := res.duration / 3
		var routes []string
		for rt := range res.perRoute {
			routes = append(routes, rt)
		}
		for rt := range res.errors {
			if _, ok := res.perRoute[rt]; !ok {
				routes = append(routes, rt)
			}
		}
		sort.Strings(routes)
		total := make([]float64, 3)
		errs := 0
		for _, rt := range routes {
			var p50, p99 []float64
			for t := range 3 {
				var ds []time.Duration
				for _, s := range res.perRoute[rt] {
					if s.at >= time.Duration(t)*third && s.at < time.Duration(t+1)*third {
						ds = append(ds, s.lat)
					}
				}
				total[t] += float64(len(ds)) / third.Seconds()
				if len(ds) == 0 {
					continue
				}
				slices.Sort(ds)
				p50 = append(p50, ms(ds[len(ds)/2]))
				p99 = append(p99, ms(ds[min(len(ds)-1, len(ds)*99/100)]))
			}
			errs += res.errors[rt]
			row := MixedRoute{Instances: instances, Route: rt, Requests: len(res.perRoute[rt]), Errors: res.errors[rt]}
			if all := res.perRoute[rt]; len(all) > 0 {
				ds := make([]time.Duration, len(all))
				for i, s := range all {
					ds[i] = s.lat
				}
				slices.Sort(ds)
				row.P50, row.P99 = ms(ds[len(ds)/2]), ms(ds[min(len(ds)-1, len(ds)*99/100)])
			}
			r.rep.Mixed = append(r.rep.Mixed, row)
			note := fmt.Sprintf("%d requests, %d errors", len(res.perRoute[rt]), res.errors[rt])
			r.figure(label+": p50 "+rt, "ms", p50, "", nil, note)
			r.figure(label+": p99 "+rt, "ms", p99, "", nil, "")
		}
		r.figure(label+": requests/s, all routes", "1/s", total, "", nil, "per third of the window")
		r.figure(label+": errors", "count", []float64{float64(errs)}, "0", func(m float64) bool { return m == 0 }, strings.Join(res.firstErr, "; "))
		r.logf("%s: %.0f requests/s (median third), %d errors %v", label, func() float64 { _, m, _ := stats(total); return m }(), errs, res.firstErr)
	}
	r.rep.note("Mixed load: %d simulated people per configuration (%d with an Einmal-PIN uploading %s files with create + one PATCH, "+
		"%d insured reading their Postfach list and thread and replying every second round, %d logging in with password + mTAN and out again, "+
		"rotating over %d accounts each so the per-account limits hold), think time 0.5–1.5 s (uploads 1–3 s, logins 1.75–5.25 s), each from its "+
		"own loopback address (127.x.y.z) so the per-address limits see %d people. Warm-up sign-ins are not measured. The window is %v; p50/p99 "+
		"and requests/s are min/median/max over its three thirds, errors are the whole window. The three instances share one PostgreSQL, MinIO "+
		"bucket, ClickHouse database and secret key; every request goes to the next instance (round-robin). The load generator runs on the same 2 cores.",
		plan.users(), plan.pinUsers, sizeLabel(plan.uploadSize), plan.postfachUsers, plan.loginUsers, plan.accountsPerLoginUser, plan.users(), plan.duration)
	return nil
}
