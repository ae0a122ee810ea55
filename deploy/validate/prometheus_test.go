package validate

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	promql "github.com/prometheus/prometheus/promql/parser"
	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

const (
	prometheusRuleFile = "deploy/prometheus/prometheusrule.yaml"
	plainRulesFile     = "deploy/prometheus/simlookup.rules.yml"
)

func loadPrometheusRule(t *testing.T) monitoringv1.PrometheusRule {
	t.Helper()
	var pr monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(readFile(t, prometheusRuleFile), &pr); err != nil {
		t.Fatalf("%s does not decode strictly into monitoringv1.PrometheusRule: %v", prometheusRuleFile, err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Fatalf("%s is %s %s", prometheusRuleFile, pr.APIVersion, pr.Kind)
	}
	return pr
}

// plainRules renders the groups of a PrometheusRule as a Prometheus rules file.
func plainRules(t *testing.T, pr monitoringv1.PrometheusRule) []byte {
	t.Helper()
	type rule struct {
		Alert       string            `yaml:"alert,omitempty"`
		Record      string            `yaml:"record,omitempty"`
		Expr        string            `yaml:"expr"`
		For         string            `yaml:"for,omitempty"`
		Labels      map[string]string `yaml:"labels,omitempty"`
		Annotations map[string]string `yaml:"annotations,omitempty"`
	}
	type group struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	}
	var out struct {
		Groups []group `yaml:"groups"`
	}
	for _, g := range pr.Spec.Groups {
		pg := group{Name: g.Name}
		for _, r := range g.Rules {
			pr := rule{Alert: r.Alert, Record: r.Record, Expr: r.Expr.String(), Labels: r.Labels, Annotations: r.Annotations}
			if r.For != nil {
				pr.For = string(*r.For)
			}
			pg.Rules = append(pg.Rules, pr)
		}
		out.Groups = append(out.Groups, pg)
	}
	var b bytes.Buffer
	b.WriteString("# Generated from prometheusrule.yaml by `go test -run TestPrometheus -update` in deploy/validate. Do not edit.\n")
	b.WriteString("# Plain Prometheus rules file: rule_files: [simlookup.rules.yml] (docker-compose.yml's monitoring profile loads it).\n")
	enc := yamlv3.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPrometheusRules: the PrometheusRule decodes strictly into the
// operator's types; its rules, as the plain rules file, load with
// Prometheus' own rule-file parser (PromQL and templates included); every
// alert has a severity and a summary.
func TestPrometheusRules(t *testing.T) {
	pr := loadPrometheusRule(t)
	writeOrCompare(t, plainRulesFile, plainRules(t, pr))

	groups, errs := rulefmt.Parse(readFile(t, plainRulesFile), false, model.UTF8Validation, promql.NewParser(promql.Options{}), slog.Default())
	for _, err := range errs {
		t.Errorf("%s: %v", plainRulesFile, err)
	}
	if groups == nil {
		t.FailNow()
	}
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("alert %s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s has no summary", r.Alert)
			}
		}
	}
	// The alerts the deployment promises.
	for _, want := range []string{
		"SimlookupWorkerPaused",             // credentials refused
		"SimlookupConsumerLagGrowing",       // consumer lag growing
		"SimlookupSinkNotCommitting",        // sink not committing
		"SimlookupSinkLagApproachingMaxAge", // sink lag vs results MaxAge
		"SimlookupDeadLetters",              // DLQ receiving messages
	} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestPrometheusAlertMetricsExist: every metric an alert uses is defined by
// simlookup's code (prometheus.*Opts literals in the main module), so a
// renamed metric cannot silently disarm an alert.
func TestPrometheusAlertMetricsExist(t *testing.T) {
	defined := definedMetrics(t)
	if len(defined) == 0 {
		t.Fatal("found no metric definitions in the main module")
	}
	used := map[string][]string{}
	p := promql.NewParser(promql.Options{})
	for _, g := range loadPrometheusRule(t).Spec.Groups {
		for _, r := range g.Rules {
			expr, err := p.ParseExpr(r.Expr.String())
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			promql.Inspect(expr, func(n promql.Node, _ []promql.Node) error {
				if vs, ok := n.(*promql.VectorSelector); ok && strings.HasPrefix(vs.Name, "simlookup_") {
					used[vs.Name] = append(used[vs.Name], r.Alert)
				}
				return nil
			})
		}
	}
	var names []string
	for name := range used {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && defined[b] != "" {
				base = b
			}
		}
		if defined[base] == "" {
			t.Errorf("alerts %v use %s, which no code defines", used[name], name)
		} else {
			t.Logf("%s (defined in %s) used by %v", name, defined[base], used[name])
		}
	}
}

// definedMetrics finds Namespace/Subsystem/Name of every prometheus.XxxOpts
// literal in the main module's non-test Go files, resolving string
// constants declared in the same file. A Name that is not a constant (a
// helper's parameter) is resolved against the string literals passed to
// calls in the same file.
func definedMetrics(t *testing.T) map[string]string {
	t.Helper()
	root := repoRoot(t)
	defined := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "deploy":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Contains(src, []byte("prometheus.")) {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return nil // someone's file mid-edit; not ours to judge
		}
		rel, _ := filepath.Rel(root, path)
		consts := map[string]string{}
		var callArgs []string
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, name := range n.Names {
					if i < len(n.Values) {
						if s, ok := stringLit(n.Values[i]); ok {
							consts[name.Name] = s
						}
					}
				}
			case *ast.CallExpr:
				for _, a := range n.Args {
					if s, ok := stringLit(a); ok {
						callArgs = append(callArgs, s)
					}
				}
			}
			return true
		})
		value := func(e ast.Expr) (string, bool) {
			if s, ok := stringLit(e); ok {
				return s, true
			}
			if id, ok := e.(*ast.Ident); ok {
				s, ok := consts[id.Name]
				return s, ok
			}
			return "", false
		}
		ast.Inspect(f, func(n ast.Node) bool {
			cl, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := cl.Type.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" {
				return true
			}
			var ns, sub, name string
			var nameKnown bool
			for _, el := range cl.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				key, _ := kv.Key.(*ast.Ident)
				if key == nil {
					continue
				}
				v, ok := value(kv.Value)
				switch key.Name {
				case "Namespace":
					ns = v
				case "Subsystem":
					sub = v
				case "Name":
					name, nameKnown = v, ok
				}
			}
			full := func(name string) string {
				var parts []string
				for _, p := range []string{ns, sub, name} {
					if p != "" {
						parts = append(parts, p)
					}
				}
				return strings.Join(parts, "_")
			}
			if nameKnown {
				defined[full(name)] = rel
			} else {
				for _, a := range callArgs {
					if isMetricName(a) {
						defined[full(a)] = rel
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return defined
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

func isMetricName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
