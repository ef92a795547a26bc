#!/usr/bin/env bash
# Write the .env of the team stack with fresh random secrets (`make team-env`).
# Never overwrites an existing file: move it away first if you really mean to start over
# (the running stack keeps the passwords it was created with; see docs/team-stack.md).
set -euo pipefail
target=${1:-.env}
if [ -e "$target" ]; then
  echo "team-env: $target exists; not overwriting it (delete or move it first to write a new one)" >&2
  exit 1
fi
secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }  # 48 hex characters: safe in URLs and make
admin_password=$(secret)
dvc_secret=$(secret)
umask 077
tmp=$(mktemp "$target.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp" <<EOF
# Secrets of the team stack and this checkout's connection to it, written by make team-env.
# Gitignored: never commit it (make security fails if a secret is committed). Values must
# not contain spaces, quotes, '\$' or '#' (make and docker compose both read this file).

# --- The stack (deploy/compose.yaml reads these) ------------------------------------------
POSTGRES_PASSWORD=$(secret)
MINIO_ROOT_USER=minio-admin
MINIO_ROOT_PASSWORD=$(secret)
# MinIO account of the MLflow server (bucket mlflow only) and of DVC (bucket dvc only).
MLFLOW_S3_ACCESS_KEY=mlflow-server
MLFLOW_S3_SECRET_KEY=$(secret)
DVC_S3_ACCESS_KEY=dvc
DVC_S3_SECRET_KEY=$dvc_secret
# MLflow's basic-auth app: the admin account (created on the first start only) and the key
# that signs its CSRF tokens.
MLFLOW_AUTH_ADMIN_PASSWORD=$admin_password
MLFLOW_FLASK_SERVER_SECRET_KEY=$(secret)
# Host names the server answers to (add yours, comma-separated) and the published ports.
MLFLOW_SERVER_ALLOWED_HOSTS=localhost:*,127.0.0.1:*
MLFLOW_PUBLISH=127.0.0.1:5000
MINIO_PUBLISH=127.0.0.1:9000

# --- This checkout as a client (make exports these to every task) ------------------------
MLFLOW_TRACKING_URI=http://127.0.0.1:5000
MLFLOW_TRACKING_USERNAME=admin
MLFLOW_TRACKING_PASSWORD=$admin_password
AWS_ENDPOINT_URL_S3=http://127.0.0.1:9000
AWS_ACCESS_KEY_ID=dvc
AWS_SECRET_ACCESS_KEY=$dvc_secret
EOF
mv "$tmp" "$target"
trap - EXIT
echo "team-env: wrote $target (mode 600) with new random secrets; next: make team-up (docs/team-stack.md)"
