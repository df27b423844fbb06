package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium; the test skips without it, and
// fails under CI (scripts/install-test-deps.sh installs it).
func chromiumPath(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("chromium is not installed (scripts/install-test-deps.sh installs it)")
	}
	tb.Skip("chromium is not installed")
	return ""
}

// artifactDir is where screenshots go: $CIAO_TEST_ARTIFACTS, or
// $TMPDIR/ciao-webui-artifacts.
func artifactDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("CIAO_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ciao-webui-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// newBrowser starts headless Chromium with a fresh profile; it is stopped
// at cleanup.
func newBrowser(tb testing.TB, width, height int) context.Context {
	tb.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(tb)),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// The webui's certificate is self-signed, made at its start.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(width, height),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(tb.Logf))
	tb.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// page drives one browser tab through the steps of a test, saving a
// screenshot after each.
type page struct {
	t      *testing.T
	ctx    context.Context
	dir    string
	prefix string // of the screenshot names
	n      int
}

// do runs actions with a deadline (a step that never completes fails the
// test with its name, instead of hanging).
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.shot("FAILED-" + strings.ReplaceAll(what, " ", "-"))
		p.t.Fatalf("%s: %v", what, err)
	}
}

// clean removes the screenshots of an earlier run of the same test, which
// would otherwise mix with this run's.
func (p *page) clean() *page {
	old, _ := filepath.Glob(filepath.Join(p.dir, p.prefix+"[0-9][0-9]-*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	return p
}

// shot saves a full-page PNG as NN-name.png.
func (p *page) shot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p.n++
	path := filepath.Join(p.dir, fmt.Sprintf("%s%02d-%s.png", p.prefix, p.n, name))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Error(err)
	}
}

// text returns the text of the first element matching sel.
func (p *page) text(sel string) string {
	p.t.Helper()
	return get(p, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// get runs one action and returns its value.
func get[T any](p *page, what string, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.shot("FAILED-" + strings.ReplaceAll(what, " ", "-"))
		p.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// void drops an action's value.
func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

// js evaluates JavaScript for its effect.
func js(expr string) chromedp.Action[chromedp.Void] {
	return void(chromedp.Evaluate[any](expr))
}

// waitJS polls a JavaScript condition until it is true; a condition
// that throws (its element is not there yet) counts as false.
func waitJS(cond string) chromedp.Action[chromedp.Void] {
	cond = "(() => { try { return !!(" + cond + "); } catch (e) { return false; } })()"
	return void(chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(50*time.Second)))
}

func (p *page) signIn(user, pass, project string) {
	p.t.Helper()
	p.do("sign in as "+user,
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		js(fmt.Sprintf(`(() => { const f = document.querySelector("#signin-form"); f.user.value = %q; f.password.value = %q; f.project.value = %q; })()`, user, pass, project)),
		chromedp.Click(chromedp.CSS("#si-submit")))
}

// TestBrowser drives the UI in headless Chromium against a real
// controller, scheduler and simulated launchers: sign-in (a wrong password
// first), three instances launched and watched until running, one
// deleted, the instance and node pages with their charts, an API error
// and a launch over quota shown in words, a revoked (expired) token
// sending the user to sign-in and back to the same page, a tenant user
// refused the admin pages, and sign-out. Screenshots of every page go to
// $CIAO_TEST_ARTIFACTS (default $TMPDIR/ciao-webui-artifacts).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	chromiumPath(t)
	c := startCluster(t, 2)
	p := (&page{t: t, ctx: newBrowser(t, 1280, 900), dir: artifactDir(t)}).clean()
	t.Logf("screenshots in %s", p.dir)
	_, adminProject := c.token(t, adminUser, c.adminPass, "admin")

	p.do("open the UI", chromedp.Navigate(c.webURL+"/"), chromedp.WaitVisible(chromedp.CSS("#signin-form")))
	p.shot("signin")

	// A wrong password is refused in words, and nothing else is shown.
	p.signIn(adminUser, "not-the-password", "admin")
	p.do("wrong password refused", waitJS(`document.querySelector("#signin-msg").textContent.includes("Sign-in refused")`))
	if msg := p.text("#signin-msg"); !strings.Contains(msg, "user name, password or project is wrong") {
		t.Errorf("wrong password message: %q", msg)
	}
	p.shot("wrong-password")

	p.signIn(adminUser, c.adminPass, "admin")
	p.do("instance list", chromedp.WaitVisible(chromedp.CSS("#instances")),
		waitJS(`document.querySelector("#launch-workload").options.length > 1`),
		waitJS(`document.querySelector("#instances").dataset.rendered !== undefined`))
	if who := p.text("#who"); !strings.Contains(who, "admin") {
		t.Errorf("signed-in banner: %q", who)
	}
	p.shot("instances-empty")

	// Launch three and watch them reach running without reloading.
	p.do("launch three",
		js(`(() => { const s = document.querySelector("#launch-workload"); s.value = s.options[1].value; })()`),
		chromedp.SetValue(chromedp.CSS("#launch-count"), "3"),
		chromedp.Click(chromedp.CSS("#launch-submit")),
		waitJS(`document.querySelectorAll("#instance-rows tr[data-id]").length === 3`))
	p.shot("three-launched")
	p.do("three running", waitJS(`document.querySelectorAll("#instance-rows tr[data-status=active]").length === 3`))
	p.shot("three-running")

	// Delete one; the list follows.
	firstID := get(p, "first row", chromedp.AttributeValue(chromedp.CSS("#instance-rows tr[data-id]"), "data-id")).Value
	p.do("delete one",
		chromedp.Click(chromedp.CSS(`#instance-rows tr[data-id] button[data-act=delete]`)),
		waitJS(`document.querySelectorAll("#instance-rows tr[data-id]").length === 2`))
	p.shot("after-delete")

	// Stop one and restart it: the status follows live.
	p.do("stop one", chromedp.Click(chromedp.CSS(`#instance-rows tr[data-id] button[data-act=stop]`)),
		waitJS(`document.querySelectorAll("#instance-rows tr[data-status=exited]").length === 1`))
	p.shot("stopped")
	p.do("restart it", chromedp.Click(chromedp.CSS(`#instance-rows tr[data-status=exited] button[data-act=restart]`)),
		waitJS(`document.querySelectorAll("#instance-rows tr[data-status=active]").length === 2`))

	// Every control has a name a screen reader can say.
	unnamed := get(p, "control names", chromedp.Evaluate[[]string](`[...document.querySelectorAll("button, input, select, a")]
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.textContent.trim())
		.map(e => e.outerHTML.slice(0, 80))`))
	if len(unnamed) > 0 {
		t.Errorf("controls without a name: %q", unnamed)
	}

	// The instance page: facts, charts and events.
	id := get(p, "first row", chromedp.AttributeValue(chromedp.CSS("#instance-rows tr[data-id]"), "data-id")).Value
	p.do("open an instance",
		chromedp.Click(chromedp.CSS("#instance-rows tr[data-id] a")),
		waitJS(`document.querySelector("#instance-facts") && document.querySelector("#instance-facts").dataset.status === "active"`),
		chromedp.WaitVisible(chromedp.CSS("#chart-cpu canvas")))
	if id == firstID {
		t.Errorf("deleted instance %s still listed first", id)
	}
	p.do("instance charts fill", waitJS(`document.querySelector("#chart-cpu-summary").textContent.startsWith("Latest")`),
		waitJS(`document.querySelector("#chart-mem-summary").textContent.startsWith("Latest")`))
	p.shot("instance")

	// A phone-width view of the list.
	p.do("phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		waitJS(`document.querySelector("#chart-cpu canvas").clientWidth < 390`))
	p.shot("instance-phone")
	p.do("list at phone width", chromedp.Navigate(c.webURL+"/#/instances"), waitJS(`document.querySelectorAll("#instance-rows tr[data-status=active]").length === 2`))
	p.shot("instances-phone")
	p.do("laptop width", chromedp.EmulateViewport(1280, 900))

	// An API error: a workload the controller does not know.
	p.do("launch an unknown workload",
		js(`(() => { const s = document.querySelector("#launch-workload"); s.add(new Option("bogus", "00000000-0000-4000-8000-00000000dead")); s.value = "00000000-0000-4000-8000-00000000dead"; })()`),
		chromedp.SetValue(chromedp.CSS("#launch-count"), "1"),
		chromedp.Click(chromedp.CSS("#launch-submit")),
		waitJS(`document.querySelector("#launch-msg").textContent.includes("failed (HTTP")`))
	if msg := p.text("#launch-msg"); !strings.Contains(msg, "Launch of 1 instance failed") || !strings.Contains(msg, "00000000-0000-4000-8000-00000000dead") {
		t.Errorf("API error message: %q", msg)
	}
	p.shot("api-error")

	// The admin sets the project's instance quota to three, after a value
	// that is no number is refused.
	p.do("quota editor", chromedp.Navigate(c.webURL+"/#/admin/tenants/"+adminProject),
		chromedp.WaitVisible(chromedp.CSS(`#quota-form input[name="tenant-instances-quota"]`)),
		chromedp.SetValue(chromedp.CSS(`#quota-form input[name="tenant-instances-quota"]`), "lots"),
		chromedp.Click(chromedp.CSS("#quota-save")),
		waitJS(`document.querySelector("#quota-msg").textContent.includes("is not a whole number")`))
	p.shot("quota-bad-value")
	p.do("set the quota", chromedp.SetValue(chromedp.CSS(`#quota-form input[name="tenant-instances-quota"]`), "3"),
		chromedp.Click(chromedp.CSS("#quota-save")),
		waitJS(`document.querySelector("#quota-msg").textContent === "Quotas saved."`))
	p.shot("quota-set")

	// Over quota: two instances exist, the limit is three, three more are
	// asked for.
	p.do("back to the list", chromedp.Navigate(c.webURL+"/#/instances"),
		waitJS(`document.querySelector("#launch-workload").options.length > 1`))
	p.do("launch over quota",
		js(`(() => { const s = document.querySelector("#launch-workload"); s.value = s.options[1].value; })()`),
		chromedp.SetValue(chromedp.CSS("#launch-count"), "3"),
		chromedp.Click(chromedp.CSS("#launch-submit")),
		waitJS(`document.querySelector("#launch-msg").textContent.includes("In use now")`))
	if msg := p.text("#launch-msg"); !strings.Contains(msg, "Over quota: 3 more instances would exceed") || !strings.Contains(msg, "In use now: 2 of 3 instances") {
		t.Errorf("over-quota message: %q", msg)
	}
	p.shot("over-quota")
	p.do("quotas page", chromedp.Navigate(c.webURL+"/#/quotas"),
		waitJS(`document.querySelector("[data-quota=Instances]") && document.querySelector("[data-quota=Instances]").textContent.includes("2 of 3")`),
		// The controller's usage history of the project, one point a minute.
		waitJS(`document.querySelector("#chart-project-mem-summary").textContent.startsWith("Latest")`))
	p.shot("quotas")

	// Admin pages.
	p.do("nodes", chromedp.Navigate(c.webURL+"/#/admin/nodes"), waitJS(`document.querySelectorAll("#node-rows tr[data-id]").length === 2`),
		waitJS(`document.querySelector("#chart-cluster-running-summary").textContent.includes("Running: 2")`))
	p.shot("nodes")
	p.do("node chart", chromedp.Click(chromedp.CSS("#node-rows tr[data-id] a")),
		waitJS(`document.querySelector("#chart-node-mem-summary").textContent.startsWith("Latest")`),
		chromedp.WaitVisible(chromedp.CSS("#chart-node-mem canvas")))
	p.shot("node")
	p.do("tenants", chromedp.Navigate(c.webURL+"/#/admin/tenants"),
		waitJS(fmt.Sprintf(`document.querySelector("#tenant-rows").textContent.includes(%q)`, adminProject)))
	p.shot("tenants")
	p.do("cluster events", chromedp.Navigate(c.webURL+"/#/admin/events"), chromedp.WaitVisible(chromedp.CSS("#cluster-event-rows")))
	p.shot("cluster-events")
	p.do("cncis", chromedp.Navigate(c.webURL+"/#/admin/cncis"), waitJS(`document.querySelector("#live").textContent !== "Connecting…"`))
	p.shot("cncis")

	// An expired token: revoked behind the browser's back, the next live
	// update sends the user to sign-in, and back to the same page after.
	const listPage = "#/instances?page=0&per=50"
	p.do("list page", chromedp.Navigate(c.webURL+"/"+listPage), waitJS(`document.querySelectorAll("#instance-rows tr[data-id]").length === 2`))
	cookies := get(p, "read cookies", func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{})
	})
	var tok string
	for _, ck := range cookies.Cookies {
		if ck.Name == "ciao_token" {
			tok = ck.Value
			if !ck.HTTPOnly || !ck.Secure || ck.SameSite != network.CookieSameSiteStrict {
				t.Errorf("token cookie is not HttpOnly, Secure, SameSite=Strict: %+v", ck)
			}
		}
	}
	if tok == "" {
		t.Fatal("no ciao_token cookie")
	}
	if get(p, "document.cookie", chromedp.Evaluate[bool](`document.cookie.includes("ciao_token")`)) {
		t.Error("the token is readable from document.cookie")
	}
	c.revoke(t, tok)
	p.do("session expired", chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		waitJS(`document.querySelector("#signin-msg").textContent.includes("session has ended")`))
	p.shot("session-expired")
	p.signIn(adminUser, c.adminPass, "admin")
	p.do("back on the same page", chromedp.WaitVisible(chromedp.CSS("#instances")),
		waitJS(`document.querySelectorAll("#instance-rows tr[data-id]").length === 2`))
	if hash := get(p, "location", chromedp.Evaluate[string](`location.hash`)); hash != listPage {
		t.Errorf("after sign-in the page is %q, want %q", hash, listPage)
	}

	// Sign out: the token is revoked and the API refuses the old cookie.
	p.do("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		waitJS(`document.querySelector("#signin-msg").textContent.includes("signed out")`))
	p.shot("signed-out")
	status := get(p, "API after sign-out", chromedp.Evaluate[int](`fetch("/api/v2.1/tenants").then(r => r.status)`, chromedp.EvalAwaitPromise))
	if status != 401 {
		t.Errorf("API after sign-out: HTTP %d, want 401", status)
	}

	// A tenant user, with no project typed (their only one is taken), is
	// refused the admin pages in words.
	p.signIn(demoUser, demoPass, "")
	p.do("demo signed in", chromedp.WaitVisible(chromedp.CSS("#instances")),
		waitJS(`document.querySelector("#who").textContent.includes("demo")`))
	p.do("demo refused admin page", chromedp.Navigate(c.webURL+"/#/admin/tenants"),
		waitJS(`document.querySelector("#tenants-msg").textContent.includes("not allowed")`))
	p.shot("tenant-user-refused")
}

// TestBrowserTokenExpiry lets a real token expire (the controller issues
// them for 3 s here): the next live update returns the user to sign-in
// with the reason in words, and signing in again returns to the page.
func TestBrowserTokenExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	chromiumPath(t)
	c := startCluster(t, 0, "-token-ttl", "3s")
	p := (&page{t: t, ctx: newBrowser(t, 1280, 900), dir: artifactDir(t), prefix: "expiry-"}).clean()
	const quotasPage = "#/quotas"
	// Keyboard only: the user field has the focus; Tab moves on, Enter
	// submits.
	p.do("sign in with the keyboard", chromedp.Navigate(c.webURL+"/"+quotasPage), chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		waitJS(`document.activeElement && document.activeElement.id === "si-user"`),
		chromedp.KeyEvent(adminUser+"\t"+c.adminPass+"\tadmin\r"))
	p.do("quotas shown", waitJS(`document.querySelector("[data-quota=Instances]") !== null`))
	p.shot("signed-in")
	// No clock is asserted: the page is polled until the expiry shows.
	p.do("token expired", chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		waitJS(`document.querySelector("#signin-msg").textContent.includes("session has ended")`))
	if msg := p.text("#signin-msg"); !strings.Contains(msg, "expired or was revoked") {
		t.Errorf("expiry message: %q", msg)
	}
	p.shot("expired")
	p.signIn(adminUser, c.adminPass, "admin")
	p.do("back on the quotas page", waitJS(`document.querySelector("[data-quota=Instances]") !== null`))
	if hash := get(p, "location", chromedp.Evaluate[string](`location.hash`)); hash != quotasPage {
		t.Errorf("after sign-in the page is %q, want %q", hash, quotasPage)
	}
}
