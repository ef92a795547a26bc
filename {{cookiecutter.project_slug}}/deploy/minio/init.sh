#!/bin/sh
# One-shot set-up of MinIO for the team stack (the minio-init service of compose.yaml runs it
# after every `docker compose up`; each step is idempotent):
# - buckets `mlflow` (MLflow's artifacts) and `dvc` (the DVC remote), with versioning on, so an
#   overwritten or deleted object can be restored;
# - one account per client, each limited to its own bucket: the MLflow server never sees the
#   DVC data and a DVC user cannot touch MLflow's artifacts or administer MinIO.
set -eu
mc alias set team http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
for bucket in mlflow dvc; do
  mc mb --ignore-existing "team/$bucket"
  mc version enable "team/$bucket"
  mc admin policy create team "$bucket-bucket" "/init/$bucket-bucket-policy.json"
done
attach() {  # user, secret, policy: create or update the user, then attach the policy once
  mc admin user add team "$1" "$2" >/dev/null
  if ! mc admin user info team "$1" | grep -q "$3"; then
    mc admin policy attach team "$3" --user "$1"
  fi
}
attach "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY" mlflow-bucket
attach "$DVC_S3_ACCESS_KEY" "$DVC_S3_SECRET_KEY" dvc-bucket
echo "minio-init: buckets mlflow and dvc ready; accounts $MLFLOW_S3_ACCESS_KEY and $DVC_S3_ACCESS_KEY set"
