package consoletest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath returns the browser to drive: Debian's chromium, or another
// Chromium-like browser on PATH. Without one the test skips, unless
// PLUGINHOST_REQUIRE_BROWSER is set (CI), when it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("PLUGINHOST_REQUIRE_BROWSER") != "" {
		t.Fatal("no Chromium on PATH (chromium, chromium-browser, google-chrome) and PLUGINHOST_REQUIRE_BROWSER is set: install it (apt-get install chromium)")
	}
	t.Skip("no Chromium on PATH; set PLUGINHOST_REQUIRE_BROWSER=1 to fail instead")
	return ""
}

// artifacts returns the folder for the screenshots.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PLUGINHOST_CONSOLE_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// host is the example host, built and running on 127.0.0.1.
type host struct {
	base  string // http://127.0.0.1:port
	token string
}

var servingRE = regexp.MustCompile(`msg=serving addr=(127\.0\.0\.1:\d+)`)

// startHost builds examples/host and runs it on an SQLite file of its own,
// on a port of 127.0.0.1 the system picks, with a random admin token. It
// stops (SIGINT, then kill) at the end of the test.
func startHost(t *testing.T) *host {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "host")
	build := exec.Command("go", "build", "-o", bin, "./examples/host")
	build.Dir = filepath.Join("..", "..") // the repository's root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/host: %v\n%s", err, out)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-db", filepath.Join(dir, "host.db"))
	cmd.Env = append(os.Environ(), "PLUGINHOST_ADMIN_TOKEN="+token, "PLUGINHOST_SECRET_KEY=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addr := make(chan string, 1)
	var log strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			log.WriteString(line + "\n")
			if m := servingRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
	}()
	go func() { <-logDone; exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("host log:\n%s", log.String())
		}
	})
	select {
	case a := <-addr:
		return &host{base: "http://" + a, token: token}
	case err := <-exited:
		t.Fatalf("the host exited before serving: %v\n%s", err, log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the host did not serve within 60s")
	}
	return nil
}

// get requests path of the host, with the admin token when auth is true,
// and returns the status and body.
func (h *host) get(t *testing.T, path string, auth bool) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, body
}

// TestConsoleInChromium logs in to the example host's console at /admin/
// in headless Chromium, is refused a wrong token, sees the notes plugin's
// page in the navigation and opens it, disables notes from the page
// through the confirmation dialog (the notes API then answers 503, and its
// page leaves the navigation), enables it again with the keyboard only,
// changes the notes.max_body_length setting on the settings page and reads
// it back through the admin API, and saves screenshots.
func TestConsoleInChromium(t *testing.T) {
	browser := chromiumPath(t)
	out := artifacts(t)
	h := startHost(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // as root in CI
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, with no deadline
		t.Fatalf("start %s: %v", browser, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if text := m.String(); m.IsException() || strings.Contains(text, "Content Security Policy") || strings.Contains(text, "Refused to") {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, text))
				mu.Unlock()
			}
		}
	}()

	// fail ends the test with a screenshot of the page and what the
	// console's status line says.
	fail := func(format string, args ...any) {
		t.Helper()
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			path := filepath.Join(out, "failure.png")
			if os.WriteFile(path, png, 0o644) == nil {
				t.Logf("screenshot of the failure: %s", path)
			}
		}
		if live, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("live").textContent`)); err == nil {
			t.Logf("the console's status line: %q", live)
		}
		t.Fatalf(format, args...)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			fail("%s: %v", what, err)
		}
	}
	// until waits for a JavaScript condition of the page.
	until := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			fail("waiting for %s (%s): %v", what, expr, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(out, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}

	// A wrong token: the API answers 401 and the console stays on the
	// login form, saying so.
	do("open the console", chromedp.Navigate(h.base+"/admin/"), chromedp.WaitVisible(chromedp.ID("token")))
	do("log in with a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Click(chromedp.ID("login-submit")))
	until("the refusal", `document.getElementById("login-error").textContent.includes("refused")`)
	until("the login form still shown", `!document.getElementById("login-view").hidden && document.getElementById("app").hidden`)

	// The right token.
	do("log in", chromedp.SendKeys(chromedp.ID("token"), h.token), chromedp.KeyEvent("\r"))
	do("the plugins page", chromedp.WaitVisible(chromedp.ID("toggle-notes")))
	until("notes running", `document.querySelector('#plugin-notes [data-state]').dataset.state === "running"`)
	until("the notes page in the navigation", `!!document.querySelector('#plugin-nav a[data-plugin="notes"]')`)
	shot("console-plugins.png")

	// The notes plugin's page, in a frame of the console.
	do("open the notes page", chromedp.Click(chromedp.CSS(`#plugin-nav a[data-plugin="notes"]`)))
	until("the notes page loaded", `(() => { const f = document.querySelector("iframe.plugin-page");
		return !!f && !!f.contentDocument && !!f.contentDocument.querySelector("#notes li") &&
			f.contentDocument.querySelector("h1").textContent === "Notes"; })()`)
	shot("console-notes-page.png")

	// Disable notes from the page, through the confirmation dialog.
	do("back to the plugins", chromedp.Click(chromedp.CSS(`.side a[href="#plugins"]`)), chromedp.WaitVisible(chromedp.ID("toggle-notes")))
	do("disable notes", chromedp.Click(chromedp.ID("toggle-notes")))
	until("the confirmation dialog", `document.getElementById("confirm-dialog").open`)
	shot("console-confirm.png")
	do("confirm", chromedp.Click(chromedp.ID("confirm-yes")))
	until("notes disabled", `document.querySelector('#plugin-notes [data-state]').dataset.state === "disabled"`)
	if code, body := h.get(t, "/api/plugin/notes/notes", false); code != http.StatusServiceUnavailable {
		t.Fatalf("GET /api/plugin/notes/notes after disabling: %d %s; want 503", code, body)
	}
	if code, _ := h.get(t, "/api/plugin/notes/_console/index.html", false); code != http.StatusServiceUnavailable {
		t.Fatalf("the disabled plugin's page answers %d; want 503", code)
	}
	until("the notes page gone from the navigation", `!document.querySelector('#plugin-nav a[data-plugin="notes"]')`)

	// Enable it again with the keyboard alone: the button, Enter; in the
	// dialog the focus starts on Cancel, Tab moves to Enable, Enter.
	do("focus the enable button", chromedp.Focus(chromedp.ID("toggle-notes")))
	until("the button says Enable", `document.activeElement.id === "toggle-notes" && document.activeElement.textContent === "Enable"`)
	do("press Enter", chromedp.KeyEvent("\r"))
	until("the dialog, focus on Cancel", `document.getElementById("confirm-dialog").open && document.activeElement.id === "confirm-no"`)
	do("Tab to Enable", chromedp.KeyEvent("\t"))
	until("focus on Enable", `document.activeElement.id === "confirm-yes"`)
	do("press Enter", chromedp.KeyEvent("\r"))
	until("notes running again", `document.querySelector('#plugin-notes [data-state]').dataset.state === "running"`)
	if code, body := h.get(t, "/api/plugin/notes/notes", false); code != http.StatusOK {
		t.Fatalf("GET /api/plugin/notes/notes after enabling: %d %s; want 200", code, body)
	}

	// Change a setting on the settings page, then read it through the API.
	const key = "notes.max_body_length"
	input := chromedp.CSS(`input[data-key="` + key + `"]`)
	do("the settings page", chromedp.Click(chromedp.CSS(`.side a[href="#settings"]`)), chromedp.WaitVisible(input))
	until("a labelled number input", `(() => { const i = document.querySelector('input[data-key="`+key+`"]');
		return i.type === "number" && document.querySelector('label[for="' + i.id + '"]').textContent === "`+key+`"; })()`)
	do("type 42", chromedp.SetValue(input, ""), chromedp.SendKeys(input, "42"),
		chromedp.Click(chromedp.CSS(`form[data-key="`+key+`"] button[type=submit]`)))
	until("the save confirmed", `document.getElementById("live").textContent.includes("Saved `+key+` = 42")`)
	code, body := h.get(t, "/api/admin/settings/"+key, true)
	var got struct {
		Value any `json:"value"`
	}
	if err := json.Unmarshal(body, &got); code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/admin/settings/%s: %d %s (%v)", key, code, body, err)
	}
	if got.Value != 42.0 {
		t.Fatalf("%s reads %v through the API after the console set 42", key, got.Value)
	}
	shot("console-settings.png")

	// The plugins page shows notes' live metrics: its requests so far, per
	// route (the GET /notes above among them).
	do("the plugins page again", chromedp.Click(chromedp.CSS(`.side a[href="#plugins"]`)), chromedp.WaitVisible(chromedp.ID("toggle-notes")))
	until("notes' metrics, per route", `(() => { const m = document.querySelector('[data-metrics="notes"]');
		return !!m && m.textContent.includes("Requests") &&
			[...m.querySelectorAll("table.metrics td code")].some((c) => c.textContent === "/notes"); })()`)
	shot("console-metrics.png")

	// The events page lists what happened.
	do("the events page", chromedp.Click(chromedp.CSS(`.side a[href="#events"]`)))
	until("disabled and enabled events", `(() => { const t = document.getElementById("view").textContent;
		return t.includes("plugin disabled") && t.includes("plugin enabled") && t.includes("setting changed"); })()`)
	shot("console-events.png")

	// The page raised no exception and the browser refused nothing under
	// the Content-Security-Policy. (Failed requests, such as the 401 of the
	// wrong token or the 404 of a route the API lacks, are expected.)
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("the console's page logged errors:\n%s", strings.Join(problems, "\n"))
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("the test ran out of time")
	}
}
