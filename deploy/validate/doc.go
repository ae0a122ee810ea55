// Package validate checks the deployment files of simlookup without running
// them (CI has no Docker engine and no cluster):
//
//   - docker-compose.yml loads and validates with compose-go, the loader of
//     docker compose itself;
//   - the Dockerfile parses with BuildKit's parser and keeps its promises
//     (multi-stage, static, non-root, one entrypoint);
//   - deploy/kubernetes builds with kustomize, and every object decodes
//     strictly (unknown fields are errors) into the k8s.io/api types; the
//     KEDA ScaledObject validates against KEDA's CRD schema;
//   - deploy/prometheus decodes into the Prometheus Operator's types, and the
//     rules load with Prometheus' own rule-file parser;
//   - deploy/nats/*.json are exactly the stream and consumer configurations
//     of package schemas and of `simlookup streams --dry-run`;
//   - every SIMLOOKUP_* variable the files set is a flag of the command it is
//     given to (read from the command's --help), and every metric the alerts
//     use is defined in the code.
//
// It is a separate module so that these heavy dependencies stay out of the
// main module. Run with `go test ./...` in deploy/validate; regenerate the
// generated files (deploy/nats/*.json, deploy/prometheus/simlookup.rules.yml)
// with `go test -run 'TestNATS|TestPrometheus' -update`.
package validate
