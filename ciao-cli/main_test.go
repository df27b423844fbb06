package main

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-cli/internal/client"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseGlobalPrecedence(t *testing.T) {
	env := map[string]string{
		"CIAO_CONTROLLER": "env-ctl", "CIAO_COMPUTEPORT": "9999", "CIAO_TENANT_ID": "env-tenant",
		"CIAO_USERNAME": "env-user", "CIAO_PASSWORD": "env-pw", "CIAO_IDENTITY": "https://id:35357",
		"CIAO_CA_CERT_FILE": "/env/ca.pem", "CIAO_TOKEN": "env-token", "CIAO_TENANT_NAME": "env-name",
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want config
		rest []string
	}{
		{"env only", []string{"instance", "list"}, env,
			config{Controller: "env-ctl", ComputePort: 9999, TenantID: "env-tenant", TenantName: "env-name", Username: "env-user",
				Password: "env-pw", Identity: "https://id:35357", CAFile: "/env/ca.pem", Token: "env-token"},
			[]string{"instance", "list"}},
		{"flags win", []string{"-controller", "flag-ctl", "-computeport=8774", "-tenant-id", "flag-tenant", "--token", "flag-token",
			"-username=u", "instance", "show", "-instance", "x"}, env,
			config{Controller: "flag-ctl", ComputePort: 8774, TenantID: "flag-tenant", TenantName: "env-name", Username: "u",
				Password: "env-pw", Identity: "https://id:35357", CAFile: "/env/ca.pem", Token: "flag-token"},
			[]string{"instance", "show", "-instance", "x"}},
		{"defaults", []string{"workload", "list"}, nil,
			config{ComputePort: DefaultComputePort}, []string{"workload", "list"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, rest, err := parseGlobal(tc.args, envOf(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c != tc.want {
				t.Errorf("config\n got %+v\nwant %+v", c, tc.want)
			}
			if strings.Join(rest, " ") != strings.Join(tc.rest, " ") {
				t.Errorf("rest = %q, want %q", rest, tc.rest)
			}
		})
	}
}

func TestParseGlobalErrors(t *testing.T) {
	var stderr bytes.Buffer
	if _, _, err := parseGlobal(nil, envOf(nil), &stderr); !errors.Is(err, errUsage) {
		t.Errorf("no command: err = %v, want usage", err)
	}
	if !strings.Contains(stderr.String(), "The commands are:") {
		t.Errorf("no command: usage missing: %q", stderr.String())
	}
	_, _, err := parseGlobal([]string{"instance", "list"}, envOf(map[string]string{"CIAO_COMPUTEPORT": "abc"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "CIAO_COMPUTEPORT") {
		t.Errorf("bad port: err = %v", err)
	}
	if _, _, err := parseGlobal([]string{"-nosuch", "instance"}, envOf(nil), io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("bad flag: err = %v", err)
	}
}

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct {
		c    config
		want string
	}{
		{config{Controller: "ciaovm", ComputePort: 8774}, "https://ciaovm:8774/v2.1"},
		{config{Controller: "https://127.0.0.1:1234/", ComputePort: 8774}, "https://127.0.0.1:1234/v2.1"},
	} {
		if got := tc.c.baseURL(); got != tc.want {
			t.Errorf("%+v: got %s, want %s", tc.c, got, tc.want)
		}
	}
}

func TestCheckCredentials(t *testing.T) {
	for _, tc := range []struct {
		c       config
		wantErr string
	}{
		{config{Controller: "c", Token: "t"}, ""},
		{config{Controller: "c", Identity: "i", Username: "u", Password: "p"}, ""},
		{config{Token: "t"}, "missing controller"},
		{config{Controller: "c", Username: "u"}, "missing identity URL, password"},
	} {
		err := tc.c.checkCredentials()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: err = %v, want %q", tc.c, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("multi-line error %q", err)
		}
	}
}

func TestSubcommandFlagsBeforeCredentials(t *testing.T) {
	// C1: -help and flag errors need no credentials.
	for _, args := range [][]string{
		{"instance", "add", "-help"}, {"instance", "list", "--help"}, {"workload", "list", "-bogus"},
		{"instance"}, {"instance", "nosuch"}, {"nosuch", "list"},
	} {
		var stderr bytes.Buffer
		err := runEnv(t.Context(), args, envOf(nil), io.Discard, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want usage", args, err)
		}
		if report(err, io.Discard) != 2 {
			t.Errorf("%q: exit status not 2", args)
		}
	}
}

// The help text must describe every flag the code defines.
func TestHelpListsEveryFlag(t *testing.T) {
	for _, c := range commands() {
		for _, s := range c.subs {
			var stderr bytes.Buffer
			runEnv(t.Context(), []string{c.name, s.name, "-help"}, envOf(nil), io.Discard, &stderr)
			if !strings.Contains(stderr.String(), s.desc) {
				t.Errorf("%s %s: help lacks description", c.name, s.name)
			}
			if s.data != "" && !strings.Contains(stderr.String(), "-f option operates on") {
				t.Errorf("%s %s: help lacks the -f data description", c.name, s.name)
			}
		}
	}
}

var (
	srv1 = client.Server{
		ID: "0b7c3ab1-9c07-4d58-9c5e-1a8f3d1b2a10", Status: "active", HostID: "4cb19522-1e18-439a-883a-f9b2a3a95f5e",
		TenantID: "f452bbc7-5076-44d5-922c-3b9d2ce1503f", Image: client.Link{ID: "df3768da-31f5-4ba6-82f0-127a1a705169"},
		Flavor:    client.Link{ID: "e35ed972-c46c-4aad-a1e7-ef103ae079a2"},
		Addresses: client.Addresses{Private: []client.PrivateAddress{{Addr: "172.16.0.2", OSEXTIPSMACMacAddr: "02:00:ac:10:00:02"}}},
		SSHIP:     "198.51.100.75", SSHPort: 33002,
	}
	srv2 = client.Server{
		ID: "5e1f0f4e-7d2b-4c8a-8d0b-1f3e2a9c7b55", Status: "pending",
		Addresses: client.Addresses{Private: []client.PrivateAddress{{Addr: "172.16.0.3"}}},
	}
)

// cli.md §6.4 table example, byte for byte (per-row flush, C4).
func TestInstanceTable(t *testing.T) {
	var b bytes.Buffer
	if err := table(&b, []string{"#", "UUID", "Status", "Private IP", "SSH IP", "SSH PORT"}, instanceRows([]client.Server{srv1, srv2})); err != nil {
		t.Fatal(err)
	}
	want := "# UUID                                 Status Private IP SSH IP        SSH PORT\n" +
		"1 0b7c3ab1-9c07-4d58-9c5e-1a8f3d1b2a10 active 172.16.0.2 198.51.100.75 33002\n" +
		"2 5e1f0f4e-7d2b-4c8a-8d0b-1f3e2a9c7b55 pending 172.16.0.3 N/A N/A\n"
	if b.String() != want {
		t.Errorf("table\n got %q\nwant %q", b.String(), want)
	}
	b.Reset()
	if err := table(&b, []string{"#"}, nil); err != nil || b.Len() != 0 {
		t.Errorf("empty table printed %q, %v", b.String(), err)
	}
}

// cli.md §6.4 instance block.
func TestInstanceBlock(t *testing.T) {
	var b bytes.Buffer
	writeInstance(&b, srv1)
	want := "\tUUID: 0b7c3ab1-9c07-4d58-9c5e-1a8f3d1b2a10\n\tStatus: active\n\tPrivate IP: 172.16.0.2\n" +
		"\tMAC Address: 02:00:ac:10:00:02\n\tCN UUID: 4cb19522-1e18-439a-883a-f9b2a3a95f5e\n" +
		"\tImage UUID: df3768da-31f5-4ba6-82f0-127a1a705169\n\tTenant UUID: f452bbc7-5076-44d5-922c-3b9d2ce1503f\n" +
		"\tSSH IP: 198.51.100.75\n\tSSH Port: 33002\n"
	if b.String() != want {
		t.Errorf("block\n got %q\nwant %q", b.String(), want)
	}
	b.Reset()
	writeInstance(&b, srv2)
	if strings.Contains(b.String(), "SSH") || strings.Count(b.String(), "\n") != 7 {
		t.Errorf("block without SSH IP: %q", b.String())
	}
}

func TestTemplates(t *testing.T) {
	servers := []client.Server{srv1, srv2}
	fl := []client.Flavor{{ID: "w1", Name: "Fedora 23 Cloud", Disk: "img", Vcpus: 2, RAM: 128}, {ID: "w2", Name: "Clear Cloud"}}
	for _, tc := range []struct {
		format string
		data   any
		want   string
	}{
		{`{{.SSHIP}}:{{.SSHPort}}`, srv1, "198.51.100.75:33002"},
		{`{{.Status}}`, srv1, "active"},
		{`{{range .}}{{println .Name}}{{end}}`, fl, "Fedora 23 Cloud\nClear Cloud\n"},
		{`{{len .}}`, fl, "2"},
		{`[{{range $i,$v := .}}{{if $i}},{{end}}"{{$v.ID | js}}"{{end}}]`, servers,
			`["0b7c3ab1-9c07-4d58-9c5e-1a8f3d1b2a10","5e1f0f4e-7d2b-4c8a-8d0b-1f3e2a9c7b55"]`},
		{`{{with index .Addresses.Private 0}}{{.Addr}} {{.OSEXTIPSMACMacAddr}}{{end}} {{.Flavor.ID}} {{.Image.ID}} {{.HostID}}`, srv1,
			"172.16.0.2 02:00:ac:10:00:02 e35ed972-c46c-4aad-a1e7-ef103ae079a2 df3768da-31f5-4ba6-82f0-127a1a705169 4cb19522-1e18-439a-883a-f9b2a3a95f5e"},
		{`{{len (filter . "Status" "pending")}}`, servers, "1"},
		{`{{select . "ID"}}`, fl, "w1\nw2\n"},
		{`{{select (filterContains . "Name" "Cloud") "ID"}}`, fl, "w1\nw2\n"},
		{`{{select (filterHasPrefix . "Name" "Clear") "ID"}}`, fl, "w2\n"},
		{`{{select (filterHasSuffix . "Name" "23 Cloud") "ID"}}`, fl, "w1\n"},
		{`{{select (filterFolded . "Name" "CLEAR CLOUD") "ID"}}`, fl, "w2\n"},
		{`{{select (filterRegexp . "Name" "^F.*[0-9]") "ID"}}`, fl, "w1\n"},
		{`{{select (head .) "ID"}}{{select (tail . 5) "ID"}}{{select (rows . 1 7) "ID"}}`, fl, "w1\nw1\nw2\nw2\n"},
		{`{{select (sort . "Vcpus") "ID"}}{{select (sort . "Name" "dsc") "ID"}}`, fl, "w2\nw1\nw1\nw2\n"},
		{`{{tojson (index . 1)}}`, []client.Tenant{{}, {ID: "a", Name: "b"}}, "{\n\t\"id\": \"a\",\n\t\"name\": \"b\"\n}"},
		// Go BAT templates of cli.md §10.3 over the admin records.
		{`{ {{- range $i, $c := .}}{{if $i}},{{end}}"{{$c.ID | js}}":{"tenant_id":"{{$c.TenantID | js}}","ip":"{{$c.IPv4 | js}}","geo":"{{$c.Geography | js}}","subnets":[{{range $j, $s := $c.Subnets}}{{if $j}},{{end}}"{{$s.Subnet | js}}"{{end}}]}{{end -}} }`,
			[]client.CNCI{{ID: "c1", TenantID: "t1", IPv4: "198.51.100.20", Subnets: []client.Subnet{{Subnet: "Subnet 172.16.0.0/24"}, {Subnet: "Subnet 172.16.1.0/24"}}}},
			`{"c1":{"tenant_id":"t1","ip":"198.51.100.20","geo":"","subnets":["Subnet 172.16.0.0/24","Subnet 172.16.1.0/24"]}}`},
		{`{"nodes":{{.TotalNodes}},"ready":{{.TotalNodesReady}},"full":{{.TotalNodesFull}},"offline":{{.TotalNodesOffline}},"maintenance":{{.TotalNodesMaintenance}}}`,
			client.ClusterStatus{TotalNodes: 3, TotalNodesReady: 1, TotalNodesFull: 1, TotalNodesMaintenance: 1}, `{"nodes":3,"ready":1,"full":1,"offline":0,"maintenance":1}`},
		{`[{{range $i,$v := .}}{{if $i}},{{end}}{"id":"{{$v.ID | js}}","name":"{{$v.Name | js}}"}{{end}}]`,
			[]client.Tenant{{ID: "t1", Name: "demo"}, {ID: "t2", Name: "o'brien"}}, `[{"id":"t1","name":"demo"},{"id":"t2","name":"o\'brien"}]`},
		{`{{range .}}{{.ID}} {{.Status}} {{.MemAvailable}}/{{.MemTotal}} {{.DiskAvailable}}/{{.DiskTotal}} {{.Load}} {{.OnlineCPUs}} {{.TotalInstances}} {{.TotalRunningInstances}} {{.TotalPendingInstances}} {{.TotalPausedInstances}} {{.Timestamp.IsZero}}{{end}}`,
			[]client.Node{{ID: "n1", Status: "READY", MemTotal: 3896, MemAvailable: 3000, DiskTotal: 500000, DiskAvailable: 256000, Load: 1, OnlineCPUs: 4, TotalInstances: 3, TotalRunningInstances: 2, TotalPendingInstances: 1}},
			"n1 READY 3000/3896 256000/500000 1 4 3 2 1 0 true"},
		{`{{range .}}{{.Label}}:{{.Instances}}{{end}}`, []client.TraceSummary{{Label: "boot10", Instances: 10}}, "boot10:10"},
		{`{{.NumInstances}} {{.TotalElapsed}} {{.AverageElapsed}} {{.AverageControllerElapsed}} {{.AverageLauncherElapsed}} {{.AverageSchedulerElapsed}} {{.VarianceController}} {{.VarianceLauncher}} {{.VarianceScheduler}}`,
			client.TraceData{NumInstances: 2, TotalElapsed: 1.5}, "2 1.5 0 0 0 0 0 0 0"},
		{`{{range .}}{{.VCPU}} {{.Memory}} {{.Disk}}{{end}}`, []client.Usage{{VCPU: 2, Memory: 256, Disk: 10}}, "2 256 10"},
	} {
		var b bytes.Buffer
		if err := render(&b, tc.format, tc.data); err != nil {
			t.Errorf("%s: %v", tc.format, err)
			continue
		}
		if b.String() != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.format, b.String(), tc.want)
		}
	}
	for _, bad := range []string{`{{.Status`, `{{.NoSuchField}}`, `{{filterRegexp . "ID" "("}}`, `{{head .}}`} {
		var b bytes.Buffer
		if err := render(&b, bad, srv1); err == nil || b.Len() != 0 {
			t.Errorf("%s: err = %v, output %q", bad, err, b.String())
		}
	}
}

func TestReportOneLine(t *testing.T) {
	var b bytes.Buffer
	if code := report(errors.New("a\nb"), &b); code != 1 || b.String() != "ciao-cli: a b\n" {
		t.Errorf("report = %d %q", code, b.String())
	}
	if code := report(nil, &b); code != 0 {
		t.Errorf("nil error: %d", code)
	}
}

// "ciao-cli <command> -help" lists exactly the command table's
// sub-commands; volume says it is not available.
func TestCommandHelpListsSubcommands(t *testing.T) {
	line := regexp.MustCompile(`(?m)^\t(\S+)$`)
	for _, c := range commands() {
		var stderr bytes.Buffer
		err := runEnv(t.Context(), []string{c.name, "-help"}, envOf(nil), io.Discard, &stderr)
		if report(err, io.Discard) != 2 {
			t.Errorf("%s -help: %v", c.name, err)
		}
		var got, want []string
		for _, m := range line.FindAllStringSubmatch(stderr.String(), -1) {
			got = append(got, m[1])
		}
		for _, s := range c.subs {
			want = append(want, s.name)
		}
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s -help lists %q, the table has %q", c.name, got, want)
		}
		if c.name == "volume" && !strings.Contains(stderr.String(), "volumes are not available") {
			t.Errorf("volume -help does not say volumes are unavailable:\n%s", stderr.String())
		}
	}
}
