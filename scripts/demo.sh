#!/usr/bin/env bash
# make demo: generate a project with the default answers, set it up, run its pipeline and
# every check, then say where to look.
set -euo pipefail
out=${1:-build/demo}
template=$(pwd)
project="$out/secure-ml-project"
mkdir -p "$out"
rm -rf "$project"   # only the demo's own output folder is replaced
step() { printf '\n==> %s\n' "$*"; }

step "cookiecutter --no-input $template  ->  $project"
cookiecutter --no-input -o "$out" "$template"
cd "$project"
step "make setup"
make setup
step "make pipeline"
make pipeline
step "git commit dvc.lock (the accepted first run: make compare and dvc metrics diff compare against it)"
git add dvc.lock
git -c maintenance.auto=false commit --quiet --no-verify -m "First pipeline run: dvc.lock" \
  || echo "demo: no git identity here: dvc.lock is staged; commit it to compare runs against it"
step "make check (docs, tests, security gates, controls: each test runs once)"
# make check treats the audit gate here exactly as anywhere: when the vulnerability service
# cannot be reached the audit did not run, and make check fails saying so. The demo goes on
# in that one case (every other gate passed), and says it again at the end.
audit_not_run=
if ! make check; then
  if python3 -c 'import json, sys; sys.exit(not json.load(open("reports/check.json"))["only_the_audit_failed"])' 2>/dev/null; then
    audit_not_run=1
  else
    echo "demo: make check failed (see its summary above)" >&2
    exit 1
  fi
fi
step "make attack-demo (each attack of the guide against a scratch copy, and what stopped it)"
make attack-demo

run_id=$(python3 -c 'import json; print(json.load(open("reports/mlflow_run.json"))["run_id"])')
here=$(pwd)
cat <<MSG

==> Demo finished in $here
  MLflow run:   $run_id   (store: $here/mlflow.db)
  Metrics:      $here/reports/metrics.json   (make compare: what changed since the last commit)
  Plots:        cd $here && make plots   then open dvc_plots/index.html (offline page)
  MLflow UI:    cd $here && make ui   then open http://127.0.0.1:5000   (PORT= to change)
  Docs site:    $here/site/index.html   (model card: site/model-card/index.html)
  Try:          dvc exp run -S train.C=0.1 && make compare   (an experiment beside HEAD)
MSG
if [ -n "$audit_not_run" ]; then
  banner=$(printf '!%.0s' {1..78})
  cat <<MSG

$banner
!! THE DEPENDENCY AUDIT DID NOT RUN: its vulnerability service (PyPI) did not answer here,
!! so make check FAILED on that gate alone; every other gate passed. The packages in
!! requirements/lock.txt were NOT checked for known vulnerabilities. Run make security
!! where PyPI answers (or SECURITY_AUDIT_OFFLINE_OK=1 make check to accept the gap loudly).
$banner
MSG
fi
