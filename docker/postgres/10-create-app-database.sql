-- Run once by the postgres image on an empty volume (/docker-entrypoint-initdb.d), as
-- POSTGRES_USER. POSTGRES_DB (mlflow) holds MLflow's tracking and registry; this second database
-- holds the project's own tables: the online feature store and the monitoring/alert history.
CREATE DATABASE passos;
