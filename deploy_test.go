package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// The operator's files in deploy/: the Prometheus alert rules, their
// promtool cases, and the Grafana dashboard. promtool itself checks the
// PromQL in .ci/run; these tests hold what it cannot: that every metric
// named exists in the code, and every alert has a case that fires it.

// metricName matches a Keyplane metric in PromQL.
var metricName = regexp.MustCompile(`\bkeyplane_[a-z0-9_]+`)

// codeMetrics returns the names of the metrics the code registers: the
// "keyplane_…" string literals of its non-test Go files.
func codeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	literal := regexp.MustCompile(`"(keyplane_[a-z0-9_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range literal.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// checkMetrics fails for each Keyplane metric in expr that the code does
// not register (a histogram's _bucket, _sum and _count count as it).
func checkMetrics(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	for _, name := range metricName.FindAllString(expr, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && known[b] {
				base = b
			}
		}
		if !known[base] {
			t.Errorf("%s: %s is not a metric the code registers", where, name)
		}
	}
}

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// readYAML decodes the file at path; strict refuses a field into does not
// name, such as a misspelt "annotation".
func readYAML(t *testing.T, path string, into any, strict bool) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var opts []yaml.DecodeOption
	if strict {
		opts = append(opts, yaml.Strict())
	}
	if err := yaml.UnmarshalWithOptions(src, into, opts...); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestDeployAlertRules(t *testing.T) {
	var rules alertRules
	readYAML(t, "deploy/prometheus/alerts.yml", &rules, true)
	var cases ruleTests
	readYAML(t, "deploy/prometheus/alerts_test.yml", &cases, false)
	known := codeMetrics(t)

	fires := map[string]bool{}
	for _, tc := range cases.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	if !slices.Contains(cases.RuleFiles, "alerts.yml") {
		t.Errorf("alerts_test.yml does not load alerts.yml: rule_files %v", cases.RuleFiles)
	}

	seen := map[string]bool{}
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule without alert: %+v", g.Name, r)
				continue
			}
			names = append(names, r.Alert)
			if seen[r.Alert] {
				t.Errorf("%s: two rules of that name", r.Alert)
			}
			seen[r.Alert] = true
			if !strings.HasPrefix(r.Alert, "Keyplane") {
				t.Errorf("%s: an alert's name starts with Keyplane", r.Alert)
			}
			if strings.TrimSpace(r.Expr) == "" || r.For == "" {
				t.Errorf("%s: want expr and for", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a summary and a description", r.Alert)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %s", r.Alert, r.Expr)
			}
			checkMetrics(t, r.Alert, r.Expr, known)
			if !fires[r.Alert] {
				t.Errorf("%s: no case of alerts_test.yml makes it fire", r.Alert)
			}
		}
	}
	// The signals the issue names, each watched.
	for _, want := range []string{
		"KeyplaneHighErrorRate", "KeyplaneGraphQLInternalErrors", "KeyplaneAuthFailureSpike",
		"KeyplaneDatabaseUnavailable", "KeyplaneRedisBreakerOpen", "KeyplaneHighLatency",
	} {
		if !seen[want] {
			t.Errorf("no alert %s", want)
		}
	}
	for name := range fires {
		if !seen[name] {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml lacks", name)
		}
	}
	if len(names) == 0 {
		t.Fatal("no alerts")
	}
}

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

// readDashboard reads deploy/grafana/keyplane.json.
func readDashboard(t *testing.T) dashboard {
	t.Helper()
	src, err := os.ReadFile("deploy/grafana/keyplane.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(src, &d); err != nil {
		t.Fatalf("deploy/grafana/keyplane.json: %v", err)
	}
	return d
}

func TestDeployDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("want uid, title and schemaVersion: %q %q %d", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["job"] == "" || vars["instance"] == "" {
		t.Errorf("want the variables datasource, job and instance: %v", vars)
	}
	known := codeMetrics(t)
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource is not ${datasource}", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			if strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") || strings.Count(q.Expr, "{") != strings.Count(q.Expr, "}") {
				t.Errorf("panel %q: unbalanced %s", p.Title, q.Expr)
			}
			if !strings.Contains(q.Expr, `job=~"$job"`) || !strings.Contains(q.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %s does not select $job and $instance", p.Title, q.Expr)
			}
			checkMetrics(t, "panel "+p.Title, q.Expr, known)
		}
	}
	if queries == 0 {
		t.Fatal("no queries")
	}
}

// TestDeployDashboardPromQL parses every query of the dashboard with
// promtool, as recording rules, once Grafana's variables are filled in.
// Without promtool it skips, unless KEYPLANE_REQUIRE_PROMTOOL=1 (CI).
func TestDeployDashboardPromQL(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("KEYPLANE_REQUIRE_PROMTOOL") == "1" {
			t.Fatal("promtool is required (KEYPLANE_REQUIRE_PROMTOOL=1) but not on PATH")
		}
		t.Skip("promtool is not on PATH")
	}
	d := readDashboard(t)
	fill := strings.NewReplacer("$__rate_interval", "5m", "$job", ".*", "$instance", ".*")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			n++
			expr, _ := json.Marshal(fill.Replace(q.Expr)) // a JSON string is a YAML string
			b.WriteString("      - record: dashboard:query_" + strconv.Itoa(n) + "\n        expr: " + string(expr) + "\n")
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Tty         bool              `yaml:"tty"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

// The compose files keep the API off the network, check every service's
// health, and start each only once what it needs is healthy.
func TestDeployComposeFiles(t *testing.T) {
	keyplaneCheck := []string{"CMD", "/usr/local/bin/keyplane", "healthcheck"}
	for _, file := range []string{"docker-compose.yml", "docker-compose.replicas.yml"} {
		t.Run(file, func(t *testing.T) {
			var c composeFile
			readYAML(t, file, &c, false)
			var keyplanes []string
			for name, s := range c.Services {
				for _, p := range s.Ports {
					if !strings.HasPrefix(p, "127.0.0.1:") {
						t.Errorf("%s publishes %q on every interface; want 127.0.0.1:…", name, p)
					}
				}
				if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
					t.Errorf("%s has no healthcheck", name)
				}
				for dep, d := range s.DependsOn {
					if d.Condition != "service_healthy" {
						t.Errorf("%s depends on %s with condition %q, want service_healthy", name, dep, d.Condition)
					}
				}
				if s.Build != nil {
					keyplanes = append(keyplanes, name)
					if s.Healthcheck != nil && !slices.Equal(s.Healthcheck.Test, keyplaneCheck) {
						t.Errorf("%s: healthcheck %q, want %q", name, s.Healthcheck.Test, keyplaneCheck)
					}
					if _, ok := s.DependsOn["postgres"]; !ok {
						t.Errorf("%s does not wait for postgres", name)
					}
					// With a TTY, stderr is a terminal: the first key's box
					// would be kept by `docker compose logs`.
					if s.Tty {
						t.Errorf("%s: tty: true would put the first key in the logs", name)
					}
					if s.Environment["LOG_FORMAT"] != "json" {
						t.Errorf("%s: LOG_FORMAT %q, want json", name, s.Environment["LOG_FORMAT"])
					}
				}
			}
			if pg := c.Services["postgres"]; pg.Healthcheck == nil || !slices.Contains(pg.Healthcheck.Test, "pg_isready") {
				t.Errorf("postgres: want a pg_isready healthcheck")
			}
			if file == "docker-compose.replicas.yml" {
				if len(keyplanes) != 2 {
					t.Errorf("%d keyplane services, want 2", len(keyplanes))
				}
				for _, name := range keyplanes {
					s := c.Services[name]
					if s.Environment["REDIS_URL"] == "" || s.Environment["KEYPLANE_TRUSTED_PROXIES"] == "" {
						t.Errorf("%s: want REDIS_URL and KEYPLANE_TRUSTED_PROXIES", name)
					}
					if len(s.Ports) != 0 {
						t.Errorf("%s publishes %v; only the proxy should", name, s.Ports)
					}
					if _, ok := s.DependsOn["redis"]; !ok {
						t.Errorf("%s does not wait for redis", name)
					}
				}
				proxy := c.Services["proxy"]
				if len(proxy.Ports) != 1 || len(proxy.DependsOn) != 2 {
					t.Errorf("proxy: ports %v, depends_on %v; want one port in front of both replicas", proxy.Ports, proxy.DependsOn)
				}
				for _, v := range proxy.Volumes {
					if host, _, ok := strings.Cut(v, ":"); ok {
						if _, err := os.Stat(host); err != nil {
							t.Errorf("proxy mounts %s: %v", host, err)
						}
					}
				}
			}
		})
	}
}

// The image runs as a user other than root and checks its own health,
// in exec form, since it has no shell.
func TestDeployDockerfile(t *testing.T) {
	src, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var user, healthcheck, from string
	for _, line := range strings.Split(strings.ReplaceAll(string(src), "\\\n", " "), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			from = fields[1]
		case "USER":
			user = fields[1]
		case "HEALTHCHECK":
			healthcheck = line
		}
	}
	if !strings.HasPrefix(from, "gcr.io/distroless/static") {
		t.Errorf("the image is FROM %s, want distroless static", from)
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("USER %q, want a user other than root", user)
	}
	if !strings.Contains(healthcheck, `CMD ["/usr/local/bin/keyplane", "healthcheck"]`) {
		t.Errorf("HEALTHCHECK %q, want the exec form of keyplane healthcheck", healthcheck)
	}
}
