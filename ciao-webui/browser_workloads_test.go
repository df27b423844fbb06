package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserWorkloads drives the workloads page as a tenant user in
// headless Chromium against a real controller and a simulated launcher:
// two refused definitions show the controller's message beside the field
// at fault with the form kept, a docker workload is created from the
// form and listed, an instance of it is launched from its row, deleting
// the workload while the instance lives shows the controller's 409 in
// words (naming the instance), and after the instance is deleted the
// workload is. A submit that meets an expired session keeps what was
// typed for the form shown after signing in again.
func TestBrowserWorkloads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	chromiumPath(t)
	c := startCluster(t, 1)
	p := (&page{t: t, ctx: newBrowser(t, 1280, 1000), dir: artifactDir(t), prefix: "workloads-"}).clean()

	p.do("open the workloads page", chromedp.Navigate(c.webURL+"/#/workloads"))
	p.signIn(demoUser, demoPass, "")
	p.do("workloads listed", waitJS(`document.querySelector("#workload-rows").dataset.loaded !== undefined`),
		waitJS(`document.querySelector("#wl-config").value.startsWith("#cloud-config")`))
	if get(p, "public checkbox", chromedp.Evaluate[bool](`document.querySelector("#wl-public") !== null`)) {
		t.Error("a tenant user is offered the public checkbox")
	}
	if n := get(p, "delete on public rows", chromedp.Evaluate[int](`document.querySelectorAll("#workload-rows tr[data-visibility=public] button[data-act=delete]").length`)); n != 0 {
		t.Errorf("a tenant user is offered Delete on %d public workloads", n)
	}
	p.shot("page")

	// Every control has a name a screen reader can say.
	unnamed := get(p, "control names", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#view button, #view input, #view select, #view textarea, #view a")]
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.textContent.trim())
		.map(e => e.outerHTML.slice(0, 80))`))
	if len(unnamed) > 0 {
		t.Errorf("controls without a name: %q", unnamed)
	}

	// What the form can tell itself is not sent: no description.
	p.do("no description", chromedp.Click(chromedp.CSS("#wl-submit")),
		waitJS(`document.querySelector("#wl-description-err").textContent === "Enter a description."`),
		waitJS(`document.activeElement.id === "wl-description"`))

	// Refused by the controller: an image reference with a space. The
	// message is beside the image field, which is marked; nothing typed
	// is lost.
	const desc = "webui test server"
	p.do("fill the form", js(fmt.Sprintf(`(() => {
		document.querySelector("#wl-description").value = %q;
		document.querySelector("#wl-image-name").value = "ubuntu latest";
		document.querySelector("#wl-config").value += "# kept\n";
	})()`, desc)),
		chromedp.Click(chromedp.CSS("#wl-submit")),
		waitJS(`document.querySelector("#wl-image-name-err").textContent !== ""`))
	if msg := p.text("#wl-image-name-err"); !strings.HasPrefix(msg, `image_name "ubuntu latest" is not an image reference`) {
		t.Errorf("image name error: %q", msg)
	}
	if msg := p.text("#wl-msg"); !strings.Contains(msg, "Creating the workload failed (HTTP 400 Bad Request)") {
		t.Errorf("form message: %q", msg)
	}
	kept := get(p, "form after the error", chromedp.Evaluate[[]any](`[document.querySelector("#wl-description").value,
		document.querySelector("#wl-config").value.endsWith("# kept\n"), document.querySelector("#wl-image-name").getAttribute("aria-invalid"),
		document.activeElement.id]`))
	if fmt.Sprint(kept) != fmt.Sprint([]any{desc, true, "true", "wl-image-name"}) {
		t.Errorf("form after the error (description, config kept, invalid, focus): %v", kept)
	}
	p.shot("bad-image-name")

	// Out of the controller's bounds: too many vCPUs.
	p.do("too many vcpus", js(`document.querySelector("#wl-image-name").value = "ubuntu:latest"`),
		chromedp.SetValue(chromedp.CSS("#wl-vcpus"), "5000"),
		chromedp.Click(chromedp.CSS("#wl-submit")),
		waitJS(`document.querySelector("#wl-vcpus-err").textContent !== ""`))
	if msg := p.text("#wl-vcpus-err"); !strings.HasPrefix(msg, "requirements.vcpus 5000 not in 1..1024") {
		t.Errorf("vcpus error: %q", msg)
	}
	if get(p, "old error cleared", chromedp.Evaluate[string](`document.querySelector("#wl-image-name-err").textContent`)) != "" {
		t.Error("the image name's error stayed after it was fixed")
	}
	p.shot("bad-vcpus")

	// Created and listed as the project's own.
	p.do("create", chromedp.SetValue(chromedp.CSS("#wl-vcpus"), "1"),
		chromedp.Click(chromedp.CSS("#wl-submit")),
		waitJS(fmt.Sprintf(`[...document.querySelectorAll("#workload-rows tr[data-visibility=private]")].some(r => r.textContent.includes(%q))`, desc)))
	if msg := p.text("#wl-msg"); !strings.Contains(msg, "Created private workload “"+desc+"”") {
		t.Errorf("created message: %q", msg)
	}
	wl := get(p, "new workload's id", chromedp.AttributeValue(chromedp.CSS("#workload-rows tr[data-visibility=private]"), "data-id")).Value
	p.shot("created")
	p.do("phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	p.shot("created-phone")
	p.do("laptop width", chromedp.EmulateViewport(1280, 1000))

	// Launched from its row: the launch form has it chosen.
	row := fmt.Sprintf(`#workload-rows tr[data-id=%q]`, wl)
	p.do("launch it", chromedp.Click(chromedp.CSS(row+" a[data-act=launch]")),
		waitJS(fmt.Sprintf(`document.querySelector("#launch-workload").value === %q`, wl)),
		chromedp.Click(chromedp.CSS("#launch-submit")),
		waitJS(`document.querySelectorAll("#instance-rows tr[data-status=active]").length === 1`))
	inst := get(p, "instance id", chromedp.AttributeValue(chromedp.CSS("#instance-rows tr[data-id]"), "data-id")).Value
	p.shot("launched")

	// In use: the 409 is shown in words, naming the instance; the
	// workload stays.
	p.do("delete while in use", chromedp.Navigate(c.webURL+"/#/workloads"),
		chromedp.Click(chromedp.CSS(row+" button[data-act=delete]")),
		chromedp.Click(chromedp.CSS(row+" button[data-act=confirm-delete]")),
		waitJS(`document.querySelector("#workloads-msg").textContent.includes("in use")`))
	if msg := p.text("#workloads-msg"); !strings.Contains(msg, "is in use and was not deleted: 1 instance of this project still uses it ("+inst+")") ||
		!strings.Contains(msg, "The controller said: workload "+wl+" is used by instances") {
		t.Errorf("in-use message: %q", msg)
	}
	p.shot("in-use")

	// The instance deleted, the workload goes.
	p.do("delete the instance", chromedp.Navigate(c.webURL+"/#/instances"),
		chromedp.Click(chromedp.CSS(`#instance-rows tr[data-id] button[data-act=delete]`)),
		waitJS(`document.querySelectorAll("#instance-rows tr[data-id]").length === 0`))
	p.do("delete the workload", chromedp.Navigate(c.webURL+"/#/workloads"),
		chromedp.Click(chromedp.CSS(row+" button[data-act=delete]")),
		chromedp.Click(chromedp.CSS(row+" button[data-act=confirm-delete]")),
		waitJS(`document.querySelector("#workloads-msg").textContent.startsWith("Deleted workload")`),
		waitJS(fmt.Sprintf(`document.querySelector(%q) === null`, row)))
	p.shot("deleted")

	// The session ends while the form is filled in: after signing in
	// again the form has what was typed.
	p.do("fill the form again", js(`(() => {
		document.querySelector("#wl-description").value = "typed before expiry";
		document.querySelector("#wl-vcpus").value = "3";
		document.querySelector("#wl-config").value += "# mine\n";
	})()`))
	cookies := get(p, "read cookies", func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{})
	})
	for _, ck := range cookies.Cookies {
		if ck.Name == "ciao_token" {
			c.revoke(t, ck.Value)
		}
	}
	p.do("submit after expiry", chromedp.Click(chromedp.CSS("#wl-submit")), chromedp.WaitVisible(chromedp.CSS("#signin-form")))
	p.signIn(demoUser, demoPass, "")
	p.do("form restored", waitJS(`document.querySelector("#wl-description") && document.querySelector("#wl-description").value === "typed before expiry"`))
	restored := get(p, "restored form", chromedp.Evaluate[[]any](`[document.querySelector("#wl-vcpus").value,
		document.querySelector("#wl-config").value.endsWith("# mine\n"), document.querySelector("#wl-msg").textContent.includes("what you typed is back")]`))
	if fmt.Sprint(restored) != fmt.Sprint([]any{"3", true, true}) {
		t.Errorf("restored form (vcpus, config, message): %v", restored)
	}
	p.shot("restored")
}

// TestBrowserPublicWorkload: an administrator creates a public qemu
// workload from the form, its disk image chosen from the image service's
// list; every project sees it, and the administrator deletes it.
func TestBrowserPublicWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	chromiumPath(t)
	c := startCluster(t, 0, "-image-dir", filepath.Join(t.TempDir(), "images"))
	tok, _ := c.token(t, adminUser, c.adminPass, "admin")
	img := c.uploadImage(t, tok, "webui-test-disk", []byte("not really a disk"))
	p := (&page{t: t, ctx: newBrowser(t, 1280, 1000), dir: artifactDir(t), prefix: "public-workload-"}).clean()

	p.do("open the workloads page", chromedp.Navigate(c.webURL+"/#/workloads"))
	p.signIn(adminUser, c.adminPass, "admin")
	const desc = "webui public vm"
	p.do("fill the form", waitJS(`document.querySelector("#wl-public") !== null`),
		js(fmt.Sprintf(`(() => {
			const t = document.querySelector("#wl-type"); t.value = "qemu"; t.dispatchEvent(new Event("change"));
			document.querySelector("#wl-description").value = %q;
		})()`, desc)),
		chromedp.WaitVisible(chromedp.CSS("#wl-image-id")),
		waitJS(fmt.Sprintf(`[...document.querySelector("#wl-image-id").options].some(o => o.value === %q)`, img)),
		js(fmt.Sprintf(`document.querySelector("#wl-image-id").value = %q`, img)),
		chromedp.Click(chromedp.CSS("#wl-public")))
	p.shot("form")
	p.do("create", chromedp.Click(chromedp.CSS("#wl-submit")),
		waitJS(fmt.Sprintf(`[...document.querySelectorAll("#workload-rows tr[data-visibility=public]")].some(r => r.textContent.includes(%q))`, desc)))
	if msg := p.text("#wl-msg"); !strings.Contains(msg, "Created public workload “"+desc+"”") {
		t.Errorf("created message: %q", msg)
	}
	wl := get(p, "new workload", chromedp.Evaluate[string](fmt.Sprintf(
		`[...document.querySelectorAll("#workload-rows tr[data-visibility=public]")].find(r => r.textContent.includes(%q)).dataset.id`, desc)))
	row := fmt.Sprintf(`#workload-rows tr[data-id=%q]`, wl)
	if cells := p.text(row); !strings.Contains(cells, "qemu") || !strings.Contains(cells, img) || !strings.Contains(cells, "Public") {
		t.Errorf("public workload row: %q", cells)
	}
	p.shot("created")

	// Another project sees it.
	demoTok, demoProject := c.token(t, demoUser, demoPass, "demo")
	req, _ := http.NewRequest(http.MethodGet, c.ctlURL+"/"+demoProject+"/workloads/"+wl, nil)
	req.Header.Set("X-Auth-Token", demoTok)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		Workload struct {
			Visibility string `json:"visibility"`
			ImageID    string `json:"image_id"`
		} `json:"workload"`
	}
	if err := decodeJSON(resp, &shown); err != nil || shown.Workload.ImageID != img || shown.Workload.Visibility != "public" {
		t.Errorf("the demo project's view of the public workload: %+v %v", shown, err)
	}

	p.do("delete it", chromedp.Click(chromedp.CSS(row+" button[data-act=delete]")),
		chromedp.Click(chromedp.CSS(row+" button[data-act=confirm-delete]")),
		waitJS(`document.querySelector("#workloads-msg").textContent.startsWith("Deleted workload")`),
		waitJS(fmt.Sprintf(`document.querySelector(%q) === null`, row)))
	p.shot("deleted")
}

// uploadImage creates a public image with data through the image API and
// returns its id.
func (c *cluster) uploadImage(tb testing.TB, tok, name string, data []byte) string {
	tb.Helper()
	do := func(method, path, ctype string, body []byte, out any) {
		tb.Helper()
		req, _ := http.NewRequest(method, c.ctlURL+path, bytes.NewReader(body))
		req.Header.Set("X-Auth-Token", tok)
		req.Header.Set("Content-Type", ctype)
		resp, err := c.client.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		if out == nil {
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				tb.Fatalf("%s %s: HTTP %d", method, path, resp.StatusCode)
			}
			return
		}
		if err := decodeJSON(resp, out); err != nil {
			tb.Fatalf("%s %s: %v", method, path, err)
		}
	}
	var img struct{ ID string }
	b, _ := json.Marshal(map[string]string{"name": name, "disk_format": "raw", "container_format": "bare", "visibility": "public"})
	do(http.MethodPost, "/v2/images", "application/json", b, &img)
	do(http.MethodPut, "/v2/images/"+img.ID+"/file", "application/octet-stream", data, nil)
	return img.ID
}
