-- Runs once, when the PostgreSQL volume is first created (as POSTGRES_USER, who owns it).
-- MLflow's runs and registry live in the database `mlflow`; its basic-auth app keeps users and
-- permissions in a database of its own, so each has its own schema migrations.
CREATE DATABASE mlflow_auth;
