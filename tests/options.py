"""Named option sets: each answer of every choice appears at least once."""

DEFAULTS: dict = {}

OPTION_SETS = {
    "defaults": DEFAULTS,
    "gitlab": {"ci_provider": "gitlab", "license": "Apache-2.0"},
    "no-ci": {"ci_provider": "none", "license": "BSD-3-Clause"},
    "team-server": {"tracking": "server", "license": "Proprietary", "python_version": "3.12"},
    "py313": {"python_version": "3.13"},
    "unicode-names": {
        "project_name": "Détection d'Anomalies",
        "author_name": "O'Brien \"Ó\" Núñez",
        "description": "Trains a model; says \"hello\" & handles 'quotes' \\ backslashes.",
    },
}

# Files every generated project has, whatever the answers.
COMMON_FILES = {
    ".dvc/.gitignore",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    ".python-version",
    "LICENSE",
    "Makefile",
    "README.md",
    "controls.yaml",
    "docs/index.md",
    "dvc.yaml",
    "mkdocs.yml",
    "params.yaml",
    "pyproject.toml",
    "reference/data_profile.json",
    "requirements/bootstrap.txt",
    "requirements/lock.txt",
    "scripts/controls.py",
    "scripts/setup.sh",
    "src/{package}/__init__.py",
    "src/{package}/__main__.py",
    "src/{package}/cli.py",
    "src/{package}/config.py",
    "src/{package}/data.py",
    "src/{package}/evaluate.py",
    "src/{package}/inference.py",
    "src/{package}/model_io.py",
    "src/{package}/serve.py",
    "src/{package}/tracking.py",
    "src/{package}/train.py",
    "src/{package}/validate.py",
    "tests/conftest.py",
    "tests/integration/test_pipeline.py",
    "tests/security/serve_support.py",
    "tests/security/test_inference_http.py",
    "tests/security/test_inference_predict.py",
    "tests/security/test_serve_uvicorn.py",
    "tests/unit/test_data.py",
    "tests/unit/test_train.py",
    "tests/unit/test_validate.py",
}
# Files that depend on one answer.
BY_ANSWER = {
    ("ci_provider", "github"): set(),
    ("ci_provider", "gitlab"): set(),
    ("ci_provider", "none"): set(),
    ("tracking", "local"): set(),
    ("tracking", "server"): set(),
}

# Bad answers: (answers, words the one-line error must contain).
BAD_ANSWERS = [
    ({"package_name": "json"}, ["package_name", "json", "standard-library"]),
    ({"package_name": "random"}, ["package_name", "random", "standard-library"]),
    ({"package_name": "test"}, ["package_name", "test", "standard-library"]),
    ({"package_name": "class"}, ["package_name", "class", "keyword"]),
    ({"package_name": "match"}, ["package_name", "match", "keyword"]),
    ({"package_name": "my-package"}, ["package_name", "my-package", "identifier"]),
    ({"package_name": "1abc"}, ["package_name", "1abc", "identifier"]),
    ({"package_name": "mlflow"}, ["package_name", "mlflow", "dependency"]),
    ({"project_slug": "My_Project"}, ["project_slug", "My_Project", "lowercase"]),
    ({"project_slug": "has space"}, ["project_slug", "has space", "lowercase"]),
    ({"project_slug": "-leading"}, ["project_slug", "-leading", "lowercase"]),
    ({"project_slug": "trailing-"}, ["project_slug", "trailing-", "lowercase"]),
    ({"author_email": "not-an-email"}, ["author_email", "not-an-email", "email"]),
    ({"author_email": "a@b"}, ["author_email", "a@b", "email"]),
    ({"author_email": "two@@example.com"}, ["author_email", "two@@example.com", "email"]),
    ({"python_version": "3.8"}, ["python_version", "3.8"]),
    ({"python_version": "2.7"}, ["python_version", "2.7"]),
    ({"license": "GPL"}, ["license", "GPL"]),
    ({"ci_provider": "jenkins"}, ["ci_provider", "jenkins"]),
    ({"tracking": "cloud"}, ["tracking", "cloud"]),
    ({"project_name": "Evil <script>"}, ["project_name", "<"]),
    ({"author_name": "Line\nBreak"}, ["author_name", "single line"]),
]
