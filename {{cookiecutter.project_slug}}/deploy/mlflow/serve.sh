#!/bin/sh
# Start the team's MLflow tracking server: PostgreSQL for runs and the model registry,
# S3-compatible storage for artifacts (proxied: clients need no S3 credentials), and MLflow's
# basic-auth app in front of every request. The container of deploy/compose.yaml runs this
# script; the template's tests run the same script on 127.0.0.1.
#
# Everything comes from the environment, so no secret is on the command line (`ps` shows it)
# or in a file of the repository:
#   MLFLOW_BACKEND_STORE_URI       postgresql+psycopg:// URL of the database `mlflow`
#   MLFLOW_AUTH_DATABASE_URI       the same for the database `mlflow_auth` (users, permissions)
#   MLFLOW_ARTIFACTS_DESTINATION   s3://BUCKET/PREFIX
#   MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   the S3 side
#   MLFLOW_AUTH_ADMIN_PASSWORD     the admin password, used only to create the admin user on the
#                                  first start (MLflow ships none and refuses to start without it)
#   MLFLOW_FLASK_SERVER_SECRET_KEY signs the auth app's CSRF tokens
# Optional: MLFLOW_HOST (0.0.0.0), MLFLOW_PORT (5000), MLFLOW_WORKERS (1),
#   MLFLOW_AUTH_DEFAULT_PERMISSION (READ), MLFLOW_SERVER_ALLOWED_HOSTS (MLflow's default:
#   localhost and private addresses).
set -eu

missing=""
for name in MLFLOW_BACKEND_STORE_URI MLFLOW_AUTH_DATABASE_URI MLFLOW_ARTIFACTS_DESTINATION \
    MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || missing="$missing $name"
done
if [ -n "$missing" ]; then
  echo "serve.sh: not set:$missing (make team-env writes them into .env; see docs/team-stack.md)" >&2
  exit 2
fi

# The auth app reads its settings from an INI file; write it where only this user can read it
# (it holds the auth database's password) and delete it when the server stops.
umask 077
config=$(mktemp "${TMPDIR:-/tmp}/mlflow-auth.XXXXXX")
trap 'rm -f "$config"' EXIT
cat > "$config" <<EOF
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = ${MLFLOW_AUTH_DATABASE_URI}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
export MLFLOW_AUTH_CONFIG_PATH="$config"
# One worker uses about 0.5 GB; MLflow's default of four, about 2.4 GB. The job runner is for
# MLflow's GenAI jobs, which this stack does not use.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
export MLFLOW_DISABLE_TELEMETRY=true

# Not `exec`: the trap above must run to delete the config file. Forward stop signals instead.
mlflow server \
  --app-name basic-auth \
  --serve-artifacts \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-1}" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null' TERM INT
status=0
wait "$server" || status=$?
# A signal interrupts the first wait: wait again for the server to finish stopping.
if kill -0 "$server" 2>/dev/null; then wait "$server" || status=$?; fi
exit "$status"
