package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"postbox/auth"
	"postbox/mailbox"
)

// The access matrix: every route of the real router (enumerated from
// Fiber, so a new route without a row fails TestAccessMatrixCoversEveryRoute)
// against every kind of principal. One table declares each cell.
//
// Principals (columns):
//
//	anon      no cookie
//	erika     insured person of Kasse A with an account: owns every object below
//	pin       Einmal-PIN session of Erika (no account)
//	max       another insured person of Kasse A
//	otto      insured person of Kasse B
//	sachb     caseworker of Kasse A in team Krankengeld (Erika's team)
//	hilfe     caseworker of Kasse A in team Hilfsmittel (another team)
//	leitung   team lead of Kasse A in team Krankengeld
//	pruefer   auditor of Kasse A
//	lebadmin  provider admin of Kasse A
//	sachbB    caseworker of Kasse B
//
// Cells (answer classes):
//
//	2xx    success
//	3xx    a redirect that is not the login page
//	login  401 problem+json (API) or 303 to /anmelden?weiter=… (page)
//	404    not found: no such route for this role, or another person's
//	       or Kasse's object; never 403 and never 200 for those
//	ok     allowed: the request reached the handler, which answered 2xx,
//	       3xx or refused the (empty) input with 400/409/412/415/422/428
//	4xx    refused input before any access decision (public routes)
//
// Object routes carry real ids of Erika's objects (or of objects of her
// Kasse for staff routes), so max, otto, hilfe and sachbB prove there is no
// IDOR. Every unsafe method is also sent without the CSRF token by every
// principal with a session; that must answer 403 (csrfExempt lists where a
// session is not the credential).
var principals = []string{"anon", "erika", "pin", "max", "otto", "sachb", "hilfe", "leitung", "pruefer", "lebadmin", "sachbB"}

// accessMatrix: "METHOD[,METHOD] /route/:pattern" → path with {object}
// placeholders and the cells as "name[,name]=class … *=class" (* is
// everyone not named; anon must be named).
var accessMatrix = map[string]matrixRow{
	// Operations and public pages.
	"GET /healthz":          {path: "/healthz", cells: "anon=2xx *=2xx"},
	"GET /readyz":           {path: "/readyz", cells: "anon=2xx *=2xx"},
	"GET /metrics":          {path: "/metrics", cells: "anon=2xx *=2xx"},
	"GET /static/*":         {path: "{asset}", cells: "anon=2xx *=2xx"},
	"GET /":                 {path: "/", cells: "anon=2xx pin=2xx *=3xx"}, // a login goes to its start page
	"GET /barrierefreiheit": {path: "/barrierefreiheit", cells: "anon=2xx *=2xx"},

	// Einmal-PIN desk API: only the PIN session acts here, an account
	// login in the same browser has no say (sessionKindOf).
	"POST /api/pin-login":  {path: "/api/pin-login", cells: "anon=pub *=pub", body: `{"kasse":"{kasse}","kvnr":"","pin":""}`},
	"GET /api/pin-session": {path: "/api/pin-session", cells: "anon=login pin=2xx *=login"},
	"POST /api/pin-logout": {path: "/api/pin-logout", cells: "anon=2xx *=2xx"},
	"GET /api/draft":       {path: "/api/draft", cells: "anon=login pin=2xx *=login"},
	"PUT /api/draft":       {path: "/api/draft", cells: "anon=login pin=ok *=login", body: `{"subject":"Matrix"}`},
	"POST /api/submit":     {path: "/api/submit", cells: "anon=login pin=ok *=login", body: `{"draft_id":"{draft}"}`}, // 409: its upload is unfinished
	// Caseworker routes of the desk: a PIN letter, a file of a Vorgang.
	"POST /api/pins": {path: "/api/pins", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=ok *=404",
		body: `{"kvnr":"{erikaKVNR}","case_type":"krankengeld","request_text":""}`},
	// Every caseworker of Erika's Kasse may download (Vorgänge are not
	// team-bound); another Kasse's may not.
	"GET /api/vorgaenge/:id/files/:fileId": {path: "/api/vorgaenge/{vorgang}/files/{file}", cells: "anon=login pin=login sachb,hilfe,leitung=2xx *=404"},

	// tus uploads: an insured person's, by PIN session or account; an
	// upload belongs to its person.
	// Staff get 403 from the upload engine (a principal without a person,
	// refused before any upload is looked up, so the answer is the same for
	// every id): the one place a role refusal is not 404.
	// The list answers 401 to a login without a person (staff).
	"GET /api/uploads,/api/uploads/":                            {path: "/api/uploads", cells: "anon=login erika,pin,max,otto=2xx *=login"},
	"HEAD /api/uploads,/api/uploads/":                           {path: "/api/uploads", cells: "anon=login erika,pin,max,otto=4xx *=forbid"}, // 405
	"OPTIONS /api/uploads,/api/uploads/,/api/uploads/:id":       {path: "/api/uploads/{upload}", cells: "anon=2xx *=2xx"},                    // tus discovery
	"POST /api/uploads,/api/uploads/":                           {path: "/api/uploads", cells: "anon=login erika,pin,max,otto=ok *=forbid"},
	"HEAD /api/uploads/:id":                                     {path: "/api/uploads/{upload}", cells: "anon=login erika,pin=2xx max,otto=404 *=forbid"},
	"GET /api/uploads/:id":                                      {path: "/api/uploads/{upload}", cells: "anon=login erika,pin,max,otto=4xx *=forbid"}, // 405: tus reads with HEAD
	"PATCH /api/uploads/:id":                                    {path: "/api/uploads/{upload}", cells: "anon=login erika,pin=ok max,otto=404 *=forbid", body: "%PDF-1.4 matrix"},
	"DELETE /api/uploads/:id":                                   {path: "/api/uploads/{upload}", cells: "anon=login erika,pin=ok max,otto=404 *=forbid"}, // pin after erika: 410
	"PUT,DELETE,PATCH,CONNECT,TRACE /api/uploads,/api/uploads/": {path: "/api/uploads", cells: "anon=login erika,pin,max,otto=4xx *=forbid"},
	"PUT,CONNECT,TRACE,POST /api/uploads/:id":                   {path: "/api/uploads/{upload}", cells: "anon=login erika,pin,max,otto=4xx *=forbid"},

	// Postfach API: objects are Erika's thread in team Krankengeld.
	"GET /api/postfach/topics":                   {path: "/api/postfach/topics", cells: "anon=login pin=login pruefer=404 *=2xx"},
	"GET /api/postfach/teams":                    {path: "/api/postfach/teams", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=2xx *=404"},
	"GET /api/postfach/threads":                  {path: "/api/postfach/threads", cells: "anon=login pin=login pruefer=404 *=2xx"},
	"POST /api/postfach/threads":                 {path: "/api/postfach/threads", cells: "anon=login pin=login pruefer=404 *=ok"},
	"GET /api/postfach/threads/:id":              {path: "/api/postfach/threads/{thread}", cells: "anon=login pin=login erika,sachb,leitung=2xx *=404"},
	"POST /api/postfach/threads/:id/messages":    {path: "/api/postfach/threads/{thread}/messages", cells: "anon=login pin=login erika,sachb,leitung=ok *=404", body: `{"body":"Matrix"}`},
	"POST /api/postfach/threads/:id/read":        {path: "/api/postfach/threads/{thread}/read", cells: "anon=login pin=login erika,sachb,leitung=ok *=404", body: `{"read":true}`},
	"POST /api/postfach/threads/:id/assign":      {path: "/api/postfach/threads/{thread}/assign", cells: "anon=login pin=login sachb,leitung=ok *=404", body: `{"account_id":"{sachbAccount}"}`},
	"POST /api/postfach/threads/:id/state":       {path: "/api/postfach/threads/{thread}/state", cells: "anon=login pin=login sachb,leitung=ok *=404", body: `{"state":"open"}`},
	"POST /api/postfach/threads/:id/archive":     {path: "/api/postfach/threads/{thread}/archive", cells: "anon=login pin=login erika=ok *=404", body: `{"archived":false}`},
	"POST /api/postfach/threads/:id/legal-hold":  {path: "/api/postfach/threads/{thread}/legal-hold", cells: "anon=login pin=login leitung=ok *=404", body: `{"hold":false}`},
	"GET /api/postfach/attachments/:id":          {path: "/api/postfach/attachments/{attachment}", cells: "anon=login pin=login erika,sachb,leitung=2xx *=404"},
	"POST /api/postfach/attachments":             {path: "/api/postfach/attachments", cells: "anon=login pin=login pruefer=404 *=ok"},
	"POST /api/postfach/documents":               {path: "/api/postfach/documents", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=ok *=404"},
	"GET /api/postfach/export":                   {path: "/api/postfach/export", cells: "anon=login pin=login erika,max,otto,lebadmin=2xx *=404"},
	"GET /api/postfach/notifications/failed":     {path: "/api/postfach/notifications/failed", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=2xx *=404"},
	"POST /api/postfach/notifications/:id/retry": {path: "/api/postfach/notifications/{notification}/retry", cells: "anon=login pin=login sachb,leitung=ok *=404"},

	// Pages. A PIN session is no login for them (pin = anon).
	"POST /abmelden":                              {path: "/abmelden", cells: "anon=3xx *=3xx"},
	"GET /einmal-pin/:kasse":                      {path: "/einmal-pin/{kasse}", cells: "anon=2xx pin=3xx *=2xx"}, // an open PIN session goes on to the upload
	"POST /einmal-pin/:kasse":                     {path: "/einmal-pin/{kasse}", cells: "anon=pub *=pub"},
	"GET /einmal-pin/:kasse/hochladen":            {path: "/einmal-pin/{kasse}/hochladen", cells: "anon=3xx pin=2xx *=3xx"},
	"POST /einmal-pin/:kasse/hochladen":           {path: "/einmal-pin/{kasse}/hochladen", cells: "anon=3xx pin=ok *=3xx", body: "_csrf={pinCSRF}"}, // the page's form field, not the header
	"GET /einmal-pin/:kasse/eingangsbestaetigung": {path: "/einmal-pin/{kasse}/eingangsbestaetigung", cells: "anon=3xx *=3xx"},
	"POST /einmal-pin/:kasse/abmelden":            {path: "/einmal-pin/{kasse}/abmelden", cells: "anon=3xx *=3xx", body: "_csrf={pinCSRF}"},
	"GET /anmelden":                               {path: "/anmelden", cells: "anon=2xx pin=2xx *=3xx"},
	"POST /anmelden":                              {path: "/anmelden", cells: "anon=pub *=pub"},
	"GET /anmelden/sicherheitscode":               {path: "/anmelden/sicherheitscode", cells: "anon=3xx *=3xx"},
	"POST /anmelden/sicherheitscode":              {path: "/anmelden/sicherheitscode", cells: "anon=3xx *=3xx"},
	"POST /anmelden/mtan":                         {path: "/anmelden/mtan", cells: "anon=3xx *=3xx"},
	"GET /anmelden/sicherheitsfrage":              {path: "/anmelden/sicherheitsfrage", cells: "anon=3xx *=3xx"},
	"POST /anmelden/sicherheitsfrage":             {path: "/anmelden/sicherheitsfrage", cells: "anon=3xx *=3xx"},
	"GET /anmelden/einwilligung":                  {path: "/anmelden/einwilligung", cells: "anon=3xx *=3xx"},
	"POST /anmelden/einwilligung":                 {path: "/anmelden/einwilligung", cells: "anon=3xx *=3xx"},
	"GET /postfach":                               {path: "/postfach", cells: "anon=login pin=login erika,max,otto,lebadmin=2xx *=404"},
	"GET /postfach/neu":                           {path: "/postfach/neu", cells: "anon=login pin=login erika,max,otto,lebadmin=2xx *=404"},
	"POST /postfach/neu":                          {path: "/postfach/neu", cells: "anon=login pin=login erika,max,otto,lebadmin=ok *=404"},
	"GET /postfach/:id":                           {path: "/postfach/{thread}", cells: "anon=login pin=login erika=2xx *=404"},
	"POST /postfach/:id/antwort":                  {path: "/postfach/{thread}/antwort", cells: "anon=login pin=login erika=ok *=404"},
	"POST /postfach/:id/ablage":                   {path: "/postfach/{thread}/ablage", cells: "anon=login pin=login erika=ok *=404", body: "archiv=nein"},
	"GET /team":                                   {path: "/team", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=2xx *=404"},
	"GET /team/nachrichten/:id":                   {path: "/team/nachrichten/{thread}", cells: "anon=login pin=login sachb,leitung=2xx *=404"},
	"POST /team/nachrichten/:id/antwort":          {path: "/team/nachrichten/{thread}/antwort", cells: "anon=login pin=login sachb,leitung=ok *=404"},
	"POST /team/nachrichten/:id/status":           {path: "/team/nachrichten/{thread}/status", cells: "anon=login pin=login sachb,leitung=ok *=404", body: "status=open"},
	"POST /team/nachrichten/:id/uebernehmen":      {path: "/team/nachrichten/{thread}/uebernehmen", cells: "anon=login pin=login sachb,leitung=ok *=404"},
	"POST /team/nachrichten/:id/aufbewahrung":     {path: "/team/nachrichten/{thread}/aufbewahrung", cells: "anon=login pin=login leitung=ok *=404", body: "aufbewahren=nein"},
	"GET /team/neue-nachricht":                    {path: "/team/neue-nachricht", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=2xx *=404"},
	"POST /team/neue-nachricht":                   {path: "/team/neue-nachricht", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=ok *=404"},
	"GET /team/benachrichtigungen":                {path: "/team/benachrichtigungen", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=2xx *=404"},
	"POST /team/benachrichtigungen/:id/erneut":    {path: "/team/benachrichtigungen/{notification2}/erneut", cells: "anon=login pin=login sachb,leitung=ok *=404"},
	"GET /team/einmal-pin":                        {path: "/team/einmal-pin", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=2xx *=404"},
	"POST /team/einmal-pin":                       {path: "/team/einmal-pin", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=ok *=404"},
	"GET /team/vorgaenge":                         {path: "/team/vorgaenge", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=2xx *=404"},
	"GET /team/vorgaenge/:id":                     {path: "/team/vorgaenge/{vorgang}", cells: "anon=login pin=login sachb,hilfe,leitung=2xx *=404"},
	"POST /team/vorgaenge/:id/status":             {path: "/team/vorgaenge/{vorgang}/status", cells: "anon=login pin=login sachb,hilfe,leitung=ok *=404", body: "status=in_bearbeitung&reason=Matrix&from=eingegangen"},
	"GET /vorgaenge":                              {path: "/vorgaenge", cells: "anon=login pin=login erika,max,otto=2xx *=404"},
	"GET /vorgaenge/:id":                          {path: "/vorgaenge/{vorgang}", cells: "anon=login pin=login erika=2xx *=404"},
	"GET /team/konten":                            {path: "/team/konten", cells: "anon=login pin=login sachb,hilfe,leitung,sachbB=2xx *=404"},
	"GET /team/konten/:id":                        {path: "/team/konten/{account}", cells: "anon=login pin=login sachb,hilfe,leitung=2xx *=404"},
	"POST /team/konten/:id/sperren":               {path: "/team/konten/{lockTarget}/sperren", cells: "anon=login pin=login sachb,hilfe,leitung=ok *=404"},
	"POST /team/konten/:id/entsperren":            {path: "/team/konten/{lockTarget}/entsperren", cells: "anon=login pin=login sachb,hilfe,leitung=ok *=404"},
	"GET /konto":                                  {path: "/konto", cells: "anon=login pin=login *=2xx"},
	"POST /konto/bestaetigen":                     {path: "/konto/bestaetigen", cells: "anon=login pin=login *=ok"},
	"POST /konto/bestaetigen/mtan":                {path: "/konto/bestaetigen/mtan", cells: "anon=login pin=login *=ok"},
	"POST /konto/daten":                           {path: "/konto/daten", cells: "anon=login pin=login *=ok"},
	"POST /konto/mobilnummer":                     {path: "/konto/mobilnummer", cells: "anon=login pin=login *=ok"},
	"POST /konto/mobilnummer/bestaetigen":         {path: "/konto/mobilnummer/bestaetigen", cells: "anon=login pin=login *=ok"},
	"POST /konto/geraete":                         {path: "/konto/geraete", cells: "anon=login pin=login *=ok"},
	// Removing a device needs a fresh step-up first (403 for everyone
	// here); the owner check behind it is not reached by this matrix.
	"POST /konto/geraete/:id/entfernen": {path: "/konto/geraete/{device}/entfernen", cells: "anon=login pin=login *=ok"},
	"GET /konto/geraete/aktivieren":     {path: "/konto/geraete/aktivieren", cells: "anon=login pin=login *=2xx"},
	"POST /konto/geraete/aktivieren":    {path: "/konto/geraete/aktivieren", cells: "anon=login pin=login *=ok"},
	// Erika's device is active, not being set up: 404 for her as well.
	"GET /konto/geraete/:id/einrichten":        {path: "/konto/geraete/{device}/einrichten", cells: "anon=login pin=login *=404"},
	"POST /konto/geraete/:id/einrichten":       {path: "/konto/geraete/{device}/einrichten", cells: "anon=login pin=login *=404"},
	"GET /konto/geraete/:id/qr.png":            {path: "/konto/geraete/{device}/qr.png", cells: "anon=login pin=login *=404"},
	"POST /konto/versandart":                   {path: "/konto/versandart", cells: "anon=login pin=login erika,max,otto=ok *=404"},
	"POST /konto/passwort":                     {path: "/konto/passwort", cells: "anon=login pin=login *=ok"},
	"POST /konto/abmelden-ueberall":            {path: "/konto/abmelden-ueberall", cells: "anon=login pin=login *=ok"},
	"POST /konto/beenden":                      {path: "/konto/beenden", cells: "anon=login pin=login *=ok"},
	"GET /verwaltung/benutzer":                 {path: "/verwaltung/benutzer", cells: "anon=login pin=login lebadmin=2xx *=404"},
	"POST /verwaltung/benutzer":                {path: "/verwaltung/benutzer", cells: "anon=login pin=login lebadmin=ok *=404"},
	"POST /verwaltung/benutzer/:id/erneut":     {path: "/verwaltung/benutzer/{invited}/erneut", cells: "anon=login pin=login lebadmin=ok *=404"},
	"POST /verwaltung/benutzer/:id/widerrufen": {path: "/verwaltung/benutzer/{invited}/widerrufen", cells: "anon=login pin=login lebadmin=ok *=404"},
	"GET /pruefung":                            {path: "/pruefung", cells: "anon=login pin=login pruefer=2xx *=404"},
	"GET /registrierung":                       {path: "/registrierung", cells: "anon=2xx *=2xx"},
	"POST /registrierung":                      {path: "/registrierung", cells: "anon=pub *=pub"},
	"GET /registrierung/mobil":                 {path: "/registrierung/mobil", cells: "anon=3xx *=3xx"},
	"POST /registrierung/mobil":                {path: "/registrierung/mobil", cells: "anon=3xx *=3xx"},
	"GET /registrierung/bestaetigen":           {path: "/registrierung/bestaetigen", cells: "anon=2xx *=2xx"},
	"POST /registrierung/bestaetigen":          {path: "/registrierung/bestaetigen", cells: "anon=pub *=pub"},
	"GET /passwort/vergessen":                  {path: "/passwort/vergessen", cells: "anon=2xx *=2xx"},
	"POST /passwort/vergessen":                 {path: "/passwort/vergessen", cells: "anon=pub *=pub"},
	"POST /passwort/vergessen/antwort":         {path: "/passwort/vergessen/antwort", cells: "anon=pub *=pub"},
	"GET /passwort/neu":                        {path: "/passwort/neu", cells: "anon=2xx *=2xx"},
	"POST /passwort/neu":                       {path: "/passwort/neu", cells: "anon=pub *=pub"},
	"GET /konto/email/bestaetigen":             {path: "/konto/email/bestaetigen", cells: "anon=2xx *=2xx"}, // the mailed link's page
	"POST /konto/email/bestaetigen":            {path: "/konto/email/bestaetigen", cells: "anon=pub *=pub"},
	"GET /einladung":                           {path: "/einladung", cells: "anon=2xx *=2xx"},
	"POST /einladung":                          {path: "/einladung", cells: "anon=pub *=pub"},

	// Accounts API. Login and registration steps are public; a logged-in
	// principal gets the same refusal as anyone.
	"POST /api/auth/login":                   {path: "/api/auth/login", cells: "anon=pub *=pub"},
	"POST /api/auth/login/mtan":              {path: "/api/auth/login/mtan", cells: "anon=pub *=pub"},
	"POST /api/auth/login/second-factor":     {path: "/api/auth/login/second-factor", cells: "anon=pub *=pub"},
	"POST /api/auth/login/security-question": {path: "/api/auth/login/security-question", cells: "anon=pub *=pub"},
	"POST /api/auth/login/consent":           {path: "/api/auth/login/consent", cells: "anon=pub *=pub"},
	"GET /api/auth/session":                  {path: "/api/auth/session", cells: "anon=2xx *=2xx"},
	"POST /api/auth/logout":                  {path: "/api/auth/logout", cells: "anon=2xx *=2xx"},
	"GET /api/auth/security-questions":       {path: "/api/auth/security-questions", cells: "anon=2xx *=2xx"},
	"GET /api/auth/consent":                  {path: "/api/auth/consent", cells: "anon=2xx *=2xx"},
	"POST /api/auth/register":                {path: "/api/auth/register", cells: "anon=pub *=pub"},
	"POST /api/auth/register/mobile":         {path: "/api/auth/register/mobile", cells: "anon=pub *=pub"},
	"POST /api/auth/register/confirm-email":  {path: "/api/auth/register/confirm-email", cells: "anon=pub *=pub"},
	"POST /api/auth/password/forgot":         {path: "/api/auth/password/forgot", cells: "anon=pub *=pub"},
	"POST /api/auth/password/forgot/answer":  {path: "/api/auth/password/forgot/answer", cells: "anon=pub *=pub"},
	"POST /api/auth/password/reset":          {path: "/api/auth/password/reset", cells: "anon=pub *=pub"},
	"POST /api/auth/devices/activate":        {path: "/api/auth/devices/activate", cells: "anon=pub *=pub"},
	"POST /api/auth/devices/confirm":         {path: "/api/auth/devices/confirm", cells: "anon=pub *=pub"},
	"POST /api/auth/email/confirm":           {path: "/api/auth/email/confirm", cells: "anon=pub *=pub"},
	"POST /api/auth/invitation/complete":     {path: "/api/auth/invitation/complete", cells: "anon=pub *=pub"},
	// Staff of Erika's Kasse (any team) may see and lock accounts.
	"GET /api/auth/accounts/:id":          {path: "/api/auth/accounts/{account}", cells: "anon=login pin=login sachb,hilfe,leitung=2xx *=404"},
	"POST /api/auth/accounts/:id/lock":    {path: "/api/auth/accounts/{lockTarget}/lock", cells: "anon=login pin=login sachb,hilfe,leitung=ok *=404"},
	"POST /api/auth/accounts/:id/unlock":  {path: "/api/auth/accounts/{lockTarget}/unlock", cells: "anon=login pin=login sachb,hilfe,leitung=ok *=404"},
	"POST /api/auth/accounts/:id/end":     {path: "/api/auth/accounts/{endTarget}/end", cells: "anon=login pin=login sachb,hilfe,leitung=ok *=404"},
	"GET /api/account":                    {path: "/api/account", cells: "anon=login pin=login *=2xx"},
	"POST /api/account/logout-everywhere": {path: "/api/account/logout-everywhere", cells: "anon=login pin=login *=ok"},
	"POST /api/account/password":          {path: "/api/account/password", cells: "anon=login pin=login *=ok"},
	"POST /api/account/step-up/mtan":      {path: "/api/account/step-up/mtan", cells: "anon=login pin=login *=ok"},
	"POST /api/account/step-up":           {path: "/api/account/step-up", cells: "anon=login pin=login *=ok"},
	"GET /api/account/devices":            {path: "/api/account/devices", cells: "anon=login pin=login *=2xx"},
	"POST /api/account/devices":           {path: "/api/account/devices", cells: "anon=login pin=login *=ok"},
	// Step-up first (403 for everyone here), see /konto/geraete/:id/entfernen.
	"DELETE /api/account/devices/:id":     {path: "/api/account/devices/{device}", cells: "anon=login pin=login *=ok"},
	"POST /api/account/mobile":            {path: "/api/account/mobile", cells: "anon=login pin=login *=ok"},
	"POST /api/account/mobile/confirm":    {path: "/api/account/mobile/confirm", cells: "anon=login pin=login *=ok"},
	"PATCH /api/account/profile":          {path: "/api/account/profile", cells: "anon=login pin=login *=ok"},
	"POST /api/account/security-question": {path: "/api/account/security-question", cells: "anon=login pin=login *=ok"},
	"POST /api/account/consent/revoke":    {path: "/api/account/consent/revoke", cells: "anon=login pin=login *=ok"},
	"POST /api/account/end":               {path: "/api/account/end", cells: "anon=login pin=login *=ok"},
	"GET /api/account/users":              {path: "/api/account/users", cells: "anon=login pin=login lebadmin=2xx *=404"},
	"POST /api/account/users":             {path: "/api/account/users", cells: "anon=login pin=login lebadmin=ok *=404"},
	"POST /api/account/users/:id/resend":  {path: "/api/account/users/{invited}/resend", cells: "anon=login pin=login lebadmin=ok *=404"},
	"POST /api/account/users/:id/revoke":  {path: "/api/account/users/{invited}/revoke", cells: "anon=login pin=login lebadmin=ok *=404"},

	// Vorgänge and audit API.
	"GET /api/vorgaenge/":            {path: "/api/vorgaenge/", cells: "anon=login pin=login pruefer,lebadmin=404 *=2xx"},
	"GET /api/vorgaenge/:id":         {path: "/api/vorgaenge/{vorgang}", cells: "anon=login pin=login erika,sachb,hilfe,leitung=2xx *=404"},
	"POST /api/vorgaenge/:id/status": {path: "/api/vorgaenge/{vorgang}/status", cells: "anon=login pin=login sachb,hilfe,leitung=ok *=404", body: `{"status":"in_bearbeitung","reason":"Matrix"}`},
	"GET /api/audit/events":          {path: "/api/audit/events", cells: "anon=login pin=login pruefer=2xx *=404"},
	"GET /api/audit/export.csv":      {path: "/api/audit/export.csv", cells: "anon=login pin=login pruefer=2xx *=404"},
	"GET /api/audit/export.ndjson":   {path: "/api/audit/export.ndjson", cells: "anon=login pin=login pruefer=2xx *=404"},
	"GET /api/audit/counts":          {path: "/api/audit/counts", cells: "anon=login pin=login pruefer=2xx *=404"},
}

// matrixRow is one route's row: the path with object placeholders, the
// cells, and for unsafe methods a well-formed body (JSON under /api/,
// form fields elsewhere) so the refusal cannot come from input checks
// that run before the access check.
type matrixRow struct{ path, cells, body string }

// csrfExempt are cells ("row principal") where a session cookie goes
// without the CSRF token on an unsafe route, and why.
var csrfExempt = map[string]string{
	"POST /api/pin-login pin":     "a new PIN login replaces the old session; the login checks the Origin instead",
	"POST /einmal-pin/:kasse pin": "the PIN login form, as above",
}

// runsLast are rows whose allowed requests end the principal's account.
// and the logouts that end the shared PIN session.
var runsLast = map[string]bool{"POST /api/account/end": true, "POST /api/pin-logout": true, "POST /einmal-pin/:kasse/abmelden": true, "POST /abmelden": true}

// sessionActs tells whether the principal's session is a credential on a
// path. The PIN session acts only on the desk (PIN API and pages) and the
// uploads; an account session everywhere but the desk. Elsewhere the
// cookie is ignored, the request is anonymous and needs no CSRF token.
func sessionActs(who, path string) bool {
	desk := false
	for _, p := range []string{"/api/pin-", "/api/draft", "/api/submit", "/einmal-pin/"} {
		desk = desk || strings.HasPrefix(path, p)
	}
	if who == "pin" {
		return desk || strings.HasPrefix(path, TusPath)
	}
	return !desk
}

type route struct{ method, path string }

func (r route) String() string { return r.method + " " + r.path }

// routesOf lists the router's routes (HEAD of a GET route included: Fiber
// adds it, and it answers like the GET).
func routesOf(w *fullWorld) []route {
	seen := map[route]bool{}
	var out []route
	for _, r := range w.srv.App().GetRoutes(true) {
		rt := route{r.Method, r.Path}
		if !seen[rt] {
			seen[rt] = true
			out = append(out, rt)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// matrixIndex maps each route to its row key; keys list methods and paths
// comma-separated.
func matrixIndex(t *testing.T) map[route]string {
	t.Helper()
	idx := map[route]string{}
	for key := range accessMatrix {
		methods, paths, ok := strings.Cut(key, " ")
		if !ok {
			t.Fatalf("bad matrix key %q", key)
		}
		for _, m := range strings.Split(methods, ",") {
			for _, p := range strings.Split(paths, ",") {
				r := route{m, p}
				if other, dup := idx[r]; dup {
					t.Fatalf("%s is in two rows: %q and %q", r, other, key)
				}
				idx[r] = key
			}
		}
	}
	return idx
}

// rowFor finds the row of a route; HEAD falls back to the GET row.
func rowFor(idx map[route]string, r route) (string, bool) {
	if k, ok := idx[r]; ok {
		return k, true
	}
	if r.method == "HEAD" {
		k, ok := idx[route{"GET", r.path}]
		return k, ok
	}
	return "", false
}

// cellsOf parses "a,b=class *=class" into one class per principal.
func cellsOf(t *testing.T, key, spec string) map[string]string {
	t.Helper()
	out := map[string]string{}
	def := ""
	for _, f := range strings.Fields(spec) {
		names, class, ok := strings.Cut(f, "=")
		if !ok || !slices.Contains([]string{"2xx", "3xx", "login", "404", "ok", "4xx", "pub", "forbid"}, class) {
			t.Fatalf("row %q: bad cell %q", key, f)
		}
		for _, n := range strings.Split(names, ",") {
			if n == "*" {
				def = class
				continue
			}
			if !slices.Contains(principals, n) {
				t.Fatalf("row %q: unknown principal %q", key, n)
			}
			out[n] = class
		}
	}
	if _, ok := out["anon"]; !ok {
		t.Fatalf("row %q does not declare anon", key)
	}
	for _, p := range principals {
		if _, ok := out[p]; !ok {
			if def == "" {
				t.Fatalf("row %q: no cell for %s and no *", key, p)
			}
			out[p] = def
		}
	}
	return out
}

// Every route of the router has a row, and every row names a route: a new
// route fails here until its access is declared.
func TestAccessMatrixCoversEveryRoute(t *testing.T) {
	w := newFullWorld(t)
	idx := matrixIndex(t)
	used := map[route]bool{}
	for _, r := range routesOf(w) {
		key, ok := rowFor(idx, r)
		if !ok {
			t.Errorf("route %s has no row in accessMatrix", r)
			continue
		}
		used[route{strings.SplitN(key, " ", 2)[0], r.path}] = true
		if _, ok := idx[r]; ok {
			used[r] = true
		}
		cellsOf(t, key, accessMatrix[key].cells)
	}
	for r := range idx {
		if !used[r] {
			t.Errorf("accessMatrix row %q names %s, which the router does not serve", idx[r], r)
		}
	}
}

// matrixObjects are Erika's objects (and objects of her Kasse) the rows'
// placeholders stand for.
type matrixObjects map[string]string

func (w *fullWorld) matrixObjects() matrixObjects {
	t := w.t
	ctx := context.Background()
	obj := matrixObjects{"kasse": w.kasseA.ID}
	erika := mailbox.Actor{Principal: w.people["erika"]}

	// A Postfach thread of Erika's with an attachment, in team Krankengeld.
	up, err := w.mail.Upload(ctx, erika, "befund.pdf", strings.NewReader(string(pdfBytes(3000))))
	if err != nil {
		t.Fatal(err)
	}
	th, _, err := w.mail.StartThread(ctx, erika, mailbox.NewThread{Topic: "krankengeld", Subject: "Frage zum Krankengeld", Body: "Hallo", Uploads: []string{up.ID}})
	if err != nil {
		t.Fatal(err)
	}
	obj["thread"] = th.ID
	var attID string
	if err := w.db.DB().QueryRowContext(ctx, "SELECT a.id FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.thread_id = ?", th.ID).Scan(&attID); err != nil {
		t.Fatalf("attachment of the thread: %v", err)
	}
	obj["attachment"] = attID

	// A submission with the Einmal-PIN: a Vorgang with a file.
	tok, csrf := w.pinSession(w.erika)
	w.tusCreate(tok, "AU.pdf", pdfBytes(4000))
	resp, body := w.do(fullRequest{method: "GET", path: "/api/draft", pinToken: tok})
	draftID := regexp.MustCompile(`"draft":\{[^}]*"id":"([^"]+)"`).FindSubmatch(body)
	if resp.StatusCode != 200 || draftID == nil {
		t.Fatalf("draft: %d %s", resp.StatusCode, body)
	}
	resp, body = w.do(fullRequest{method: "PUT", path: "/api/draft", pinToken: tok, csrf: csrf, ctype: "application/json",
		body: []byte(`{"case_type":"krankengeld","subject":"AU","message":"Anbei die AU."}`)})
	if resp.StatusCode != 200 {
		t.Fatalf("save draft: %d %s", resp.StatusCode, body)
	}
	resp, body = w.do(fullRequest{method: "POST", path: "/api/submit", pinToken: tok, csrf: csrf, ctype: "application/json",
		body: []byte(`{"draft_id":"` + string(draftID[1]) + `"}`)})
	var rec struct {
		Vorgang struct{ ID string }   `json:"vorgang"`
		Files   []struct{ ID string } `json:"files"`
	}
	if err := json.Unmarshal(body, &rec); resp.StatusCode != 200 || err != nil || rec.Vorgang.ID == "" || len(rec.Files) != 1 {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	obj["vorgang"], obj["file"] = rec.Vorgang.ID, rec.Files[0].ID

	// An unfinished upload in a new PIN session of Erika's (the one the
	// matrix uses).
	obj["pinToken"], obj["pinCSRF"] = w.pinSession(w.erika)
	obj["upload"] = w.tusCreateDeferred(obj["pinToken"])
	_, body = w.do(fullRequest{method: "GET", path: "/api/draft", pinToken: obj["pinToken"]})
	if d := regexp.MustCompile(`"draft":\{[^}]*"id":"([^"]+)"`).FindSubmatch(body); d != nil {
		obj["draft"] = string(d[1])
	} else {
		t.Fatalf("draft of the matrix PIN session: %s", body)
	}

	// Two failed notification mails of team Krankengeld (to Erika, to
	// Max), one for the API's retry and one for the page's.
	if _, _, err := w.mail.StartThread(ctx, mailbox.Actor{Principal: w.people["sachb"]}, mailbox.NewThread{Topic: "krankengeld",
		Subject: "Rückfrage", Body: "Bitte melden Sie sich.", OwnerKind: mailbox.OwnerPerson, OwnerID: w.max.ID}); err != nil {
		t.Fatal(err)
	}
	jobs := w.failMails()
	if len(jobs) < 2 {
		t.Fatalf("%d notification mails, want 2", len(jobs))
	}
	obj["notification"], obj["notification2"] = jobs[0].ID, jobs[1].ID
	obj["erikaKVNR"], obj["sachbAccount"] = w.erika.KVNR, w.people["sachb"].AccountID

	// Accounts: Erika's (read), and targets for lock/unlock and end.
	obj["account"] = w.people["erika"].AccountID
	obj["lockTarget"] = w.extraAccount("ziel1")
	obj["endTarget"] = w.extraAccount("ziel2")

	// Erika's authenticator device.
	if _, err := w.auth.PrepareDemoAccount(ctx, w.kasseA.ID, w.people["erika"].AccountID, "", ""); err != nil {
		t.Fatal(err)
	}
	devs, err := w.auth.ListDevices(ctx, w.people["erika"])
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices: %v %d", err, len(devs))
	}
	obj["device"] = devs[0].ID

	// A provider user the admin invited.
	inv, err := w.auth.InviteUser(ctx, auth.Meta{}, w.people["lebadmin"], auth.Invitation{Salutation: "Frau", GivenName: "Petra", FamilyName: "Praxis", Email: "petra@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	obj["invited"] = inv

	// A static asset the start page links.
	_, home := w.do(fullRequest{method: "GET", path: "/"})
	a := regexp.MustCompile(`(/static/[^"]+\.css)`).FindSubmatch(home)
	if a == nil {
		t.Fatalf("start page links no stylesheet")
	}
	obj["asset"] = string(a[1])
	return obj
}

func (o matrixObjects) fill(t *testing.T, path string) string {
	t.Helper()
	out := regexp.MustCompile(`\{[a-zA-Z0-9]+\}`).ReplaceAllStringFunc(path, func(ph string) string {
		v, ok := o[ph[1:len(ph)-1]]
		if !ok {
			t.Fatalf("no object for %s", ph)
		}
		return v
	})
	return out
}

// classOf tells the answer class of a response.
func classOf(status int, location, body string) string {
	switch {
	case status == 403 && strings.Contains(body, "kein gültiges Sicherheitsmerkmal"): // the CSRF refusal, JSON or page
		return "403"
	case status == 403:
		return "4xx:403" // a refusal by the handler (e.g. step-up needed), not CSRF
	case status >= 200 && status < 300:
		return "2xx"
	case status == 401 || (status == 303 || status == 302) && strings.HasPrefix(location, LoginPath+"?weiter="):
		return "login"
	case status >= 300 && status < 400:
		return "3xx"
	case status == 404:
		return "404"
	case status == 403:
		return "403"
	case status >= 500:
		return fmt.Sprint(status)
	}
	return "4xx:" + fmt.Sprint(status)
}

// matches reports whether an observed class fits the declared one.
func matches(want, got string) bool {
	switch want {
	case "ok":
		return got == "2xx" || got == "3xx" || slices.Contains([]string{"4xx:400", "4xx:403", "4xx:409", "4xx:410", "4xx:412", "4xx:415", "4xx:422", "4xx:428", "4xx:429"}, got)
	case "forbid":
		return got == "4xx:403"
	case "4xx":
		return strings.HasPrefix(got, "4xx:") && got != "4xx:403"
	case "pub":
		return got == "2xx" || got == "3xx" || got == "404" || got == "login" || strings.HasPrefix(got, "4xx:") && got != "4xx:403"
	}
	return want == got
}

func unsafeRoute(m string) bool { return unsafeMethod(m) }

// TestAccessMatrix tries every cell. Order: every safe request first, then
// every unsafe request without CSRF token (must be 403 with a session),
// then the unsafe requests of principals who must be refused (nothing may
// change), and last the allowed unsafe requests.
func TestAccessMatrix(t *testing.T) {
	w := newFullWorld(t)
	obj := w.matrixObjects()
	idx := matrixIndex(t)
	routes := routesOf(w)

	type cell struct {
		r       route
		key     string
		who     string
		want    string
		path    string
		tusCall bool
	}
	var safe, refused, allowed []cell
	for _, r := range routes {
		key, ok := rowFor(idx, r)
		if !ok {
			continue // TestAccessMatrixCoversEveryRoute reports it
		}
		cells := cellsOf(t, key, accessMatrix[key].cells)
		for _, who := range principals {
			c := cell{r: r, key: key, who: who, want: cells[who], path: obj.fill(t, accessMatrix[key].path),
				tusCall: strings.HasPrefix(r.path, TusPath)}
			switch {
			case !unsafeRoute(r.method):
				safe = append(safe, c)
			case c.want == "ok" || c.want == "2xx" || c.want == "3xx" || c.want == "pub":
				allowed = append(allowed, c)
			default:
				refused = append(refused, c)
			}
		}
	}
	send := func(c cell, withCSRF bool) (int, string, string) {
		req := fullRequest{method: c.r.method, path: c.path, accept: "text/html"}
		if strings.HasPrefix(c.path, "/api/") {
			req.accept = "application/json"
		}
		if c.r.method != "GET" && c.r.method != "HEAD" {
			body := obj.fill(t, accessMatrix[c.key].body)
			if !withCSRF { // a form's _csrf field goes too
				body = strings.ReplaceAll(body, obj["pinCSRF"], "")
			}
			req.ctype, req.body = "application/x-www-form-urlencoded", []byte(body)
			if strings.HasPrefix(c.path, "/api/") {
				if body == "" {
					body = "{}"
				}
				req.ctype, req.body = "application/json", []byte(body)
			}
		}
		if c.tusCall {
			req.header = map[string]string{"Tus-Resumable": "1.0.0", "Upload-Offset": "0"}
			req.ctype = "application/offset+octet-stream"
			req.body = []byte(accessMatrix[c.key].body)
		}
		switch c.who {
		case "anon":
		case "pin":
			req.pinToken = obj["pinToken"]
			if withCSRF {
				req.csrf = obj["pinCSRF"]
			}
		default:
			req.session = w.session(c.who)
			if withCSRF {
				req.csrf = auth.CSRFToken(req.session)
			}
		}
		resp, body := w.do(req)
		return resp.StatusCode, resp.Header.Get("Location"), string(body)
	}
	failures := 0
	observed, bad := map[string]string{}, map[string]bool{}
	check := func(phase string, c cell, want string, withCSRF bool) {
		t.Helper()
		status, loc, body := send(c, withCSRF)
		got := classOf(status, loc, body)
		observed[c.key+" "+c.r.method+" "+c.who] = got
		if !matches(want, got) {
			bad[c.key] = true
			failures++
			if len(body) > 200 {
				body = body[:200]
			}
			t.Errorf("%s: %s %s as %s: got %s (%d %s), want %s\n\t%.200s", phase, c.r.method, c.path, c.who, got, status, loc, want, body)
		}
	}

	for _, c := range safe {
		check("safe", c, c.want, false)
	}
	// Without the CSRF token: 403 for every session; anonymous requests
	// carry no token anyway and are tried in the next phase.
	for _, c := range append(append([]cell(nil), refused...), allowed...) {
		switch {
		case c.who == "anon":
			continue
		case c.who == "pin" && c.tusCall:
			// The PIN session may upload with Tus-Resumable instead of the
			// token (a header no cross-site form or simple request can
			// send); its cells run with the token below.
			continue
		case csrfExempt[c.key+" "+c.who] != "":
			continue // its with-token cell covers it
		case !sessionActs(c.who, c.r.path):
			check("no CSRF token", c, c.want, false) // the cookie is no credential here
			continue
		}
		check("no CSRF token", c, "403", false)
	}
	before := w.counts()
	for _, c := range refused {
		check("refused", c, c.want, true)
	}
	if after := w.counts(); !mapsEqual(before, after) {
		t.Errorf("refused requests changed stored data:\nbefore %v\nafter  %v", before, after)
	}
	// Ending one's own account ends the principal: run it last.
	sort.SliceStable(allowed, func(i, j int) bool { return !runsLast[allowed[i].key] && runsLast[allowed[j].key] })
	for _, c := range allowed {
		check("allowed", c, c.want, true)
		if strings.Contains(c.key, "retry") || strings.Contains(c.key, "erneut") && strings.Contains(c.key, "benachrichtigungen") {
			w.failMails() // the next principal finds the notification failed again
		}
	}
	for key := range bad {
		var cells []string
		for _, who := range principals {
			var got []string
			for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"} {
				if g, ok := observed[key+" "+m+" "+who]; ok {
					got = append(got, m+":"+g)
				}
			}
			cells = append(cells, who+"="+strings.Join(got, "/"))
		}
		t.Logf("observed %q: %s", key, strings.Join(cells, " "))
	}
	t.Logf("%d routes, %d principals, %d cells tried (%d safe, %d refused, %d allowed), %d failures",
		len(routes), len(principals), len(safe)+len(refused)+len(allowed), len(safe), len(refused), len(allowed), failures)
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// stepUpSession starts a session for one of the world's accounts, gives
// the account an authenticator app and confirms the session with its
// current code, as "Sicherheitscode bestätigen" does.
func (w *fullWorld) stepUpSession(name string) string {
	w.t.Helper()
	ctx := context.Background()
	p := w.people[name]
	dl, err := w.auth.PrepareDemoAccount(ctx, p.TenantID, p.AccountID, "", "")
	if err != nil {
		w.t.Fatal(err)
	}
	u, _ := url.Parse(dl.OTPAuthURI)
	code, err := totp.GenerateCode(u.Query().Get("secret"), time.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	session := w.session(name)
	resp, body := w.do(fullRequest{method: "POST", path: "/api/account/step-up", session: session, csrf: auth.CSRFToken(session),
		ctype: "application/json", body: []byte(`{"method":"totp","code":"` + code + `"}`)})
	if resp.StatusCode != 200 {
		w.t.Fatalf("step-up of %s: %d %s", name, resp.StatusCode, body)
	}
	return session
}

// Removing a device needs a fresh step-up, so the matrix (plain sessions)
// only sees 403 there. With a step-up, another person's device (same
// Kasse or another) is 404 and stays active; the owner may remove it.
func TestDeviceRemovalIsOwnerChecked(t *testing.T) {
	w := newFullWorld(t)
	ctx := context.Background()
	if _, err := w.auth.PrepareDemoAccount(ctx, w.kasseA.ID, w.people["erika"].AccountID, "0151 2345678", ""); err != nil {
		t.Fatal(err)
	}
	devs, err := w.auth.ListDevices(ctx, w.people["erika"])
	if err != nil || len(devs) != 1 {
		t.Fatalf("Erika's devices: %v %v", devs, err)
	}
	device := devs[0].ID
	for _, who := range []string{"max", "otto", "sachb"} {
		session := w.stepUpSession(who)
		for _, req := range []fullRequest{
			{method: "DELETE", path: "/api/account/devices/" + device, accept: "application/json"},
			{method: "POST", path: "/konto/geraete/" + device + "/entfernen", accept: "text/html", ctype: "application/x-www-form-urlencoded"},
		} {
			req.session, req.csrf = session, auth.CSRFToken(session)
			if resp, body := w.do(req); resp.StatusCode != 404 {
				t.Errorf("%s %s as %s (stepped up): %d, want 404: %.200s", req.method, req.path, who, resp.StatusCode, body)
			}
		}
	}
	if devs, _ := w.auth.ListDevices(ctx, w.people["erika"]); len(devs) != 1 || devs[0].Status != auth.DeviceActive {
		t.Fatalf("Erika's device after the others tried: %+v", devs)
	}
	// Erika herself (with an mTAN number left as second factor) may. Her
	// step-up gives her a new authenticator (the old one is replaced).
	session := w.stepUpSession("erika")
	devs, _ = w.auth.ListDevices(ctx, w.people["erika"])
	for _, d := range devs {
		if d.Status == auth.DeviceActive {
			device = d.ID
		}
	}
	if resp, body := w.do(fullRequest{method: "DELETE", path: "/api/account/devices/" + device, session: session, csrf: auth.CSRFToken(session),
		accept: "application/json"}); resp.StatusCode >= 300 {
		t.Fatalf("Erika removes her own device: %d %s", resp.StatusCode, body)
	}
}
