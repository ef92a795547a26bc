"""Validate the answers before cookiecutter writes anything.

Each rule prints one line naming the field, the value and the rule, then exits 1.
Cookiecutter removes the half-made output folder when this hook fails.
"""

import os
import sys

# Cookiecutter runs hooks from its temporary folder, which collects one file per hook run
# (thousands, over time): it is not a source of modules.
if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import keyword
import re

# Answers arrive as JSON strings so that quotes and non-ASCII letters survive intact.
ANSWERS = {
    "project_name": {{ cookiecutter.project_name | tojson }},
    "project_slug": {{ cookiecutter.project_slug | tojson }},
    "package_name": {{ cookiecutter.package_name | tojson }},
    "author_name": {{ cookiecutter.author_name | tojson }},
    "author_email": {{ cookiecutter.author_email | tojson }},
    "description": {{ cookiecutter.description | tojson }},
    "python_version": {{ cookiecutter.python_version | tojson }},
    "license": {{ cookiecutter.license | tojson }},
    "ci_provider": {{ cookiecutter.ci_provider | tojson }},
    "tracking": {{ cookiecutter.tracking | tojson }},
}

CHOICES = {
    "python_version": ("3.11", "3.12", "3.13"),
    "license": ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"),
    "ci_provider": ("github", "gitlab", "none"),
    "tracking": ("local", "server"),
}
FREE_TEXT = ("project_name", "author_name", "description")
# Distributions the generated project installs: a package with one of these names
# would shadow it on import.
DEPENDENCIES = {
    "art", "dvc", "mlflow", "numpy", "pandas", "pandera", "sklearn", "scipy",
    "skops", "model_signing", "starlette", "uvicorn", "limits", "pytest", "setuptools",
}
# BEGIN LOCKED_MODULES (scripts/gen_locked_modules.py; do not edit)
# 264 distributions of requirements/lock.txt, 272 top-level modules.
LOCKED_MODULES = frozenset(
    """
    _cffi_backend _distutils_hack _pytest _yaml aiobotocore aiohappyeyeballs aiohttp
    aiohttp_retry aioitertools aiosignal alembic amqp annotated_doc annotated_types antlr4
    anyio appdirs arrow art asn1crypto async_timeout asyncssh attr attrs babel backrefs bandit
    billiard binaryornot blake3 blinker boolean botocore c787785866c7b801238d__mypyc
    cachecontrol cachetools celery certifi cffi cfgv chardet charset_normalizer
    check_jsonschema click click_didyoumean click_plugins click_repl cloudpickle colorama
    configobj contourpy cookiecutter copying cruft cryptography cycler cyclonedx cyclonedx_py
    databricks dateutil defusedxml deprecated detect_secrets dictdiffer diskcache distlib
    distro dns docker dotenv dpath dulwich dvc dvc_data dvc_http dvc_objects dvc_render dvc_s3
    dvc_studio_client dvc_task email_validator entrypoints execnet fastapi fickling filelock
    flask flask_cors flatten_dict flufl fonttools fqdn frozenlist fsspec funcy ghp_import git
    gitdb google grandalf graphene graphql graphql_relay gto gunicorn h11 httpcore httptools
    httpx huey hydra id identify idna importlib_metadata in_toto_attestation iniconfig
    isoduration iterative_telemetry itsdangerous jinja2 jmespath joblib jsonpointer jsonschema
    jsonschema_specifications jwt kiwisolver kombu lark license_expression limits lxml mako
    markdown markdown_it markupsafe material materialx matplotlib mdurl mergedeep mkdocs
    mkdocs_get_deps mlflow model_signing mpl_toolkits msgpack multidict mypy_extensions
    narwhals networkx nodeenv numpy omegaconf openssl opentelemetry orjson packageurl packaging
    packaging_legacy_version paginate pandas pandera pathspec picklescan pil pillow pip pip_api
    pip_audit pip_requirements_parser platformdirs pluggy pre_commit pre_commit_hooks
    prettytable prompt_toolkit propcache psutil public py py_serializable pyarrow pyasn1
    pyasn1_modules pycparser pydantic pydantic_core pydantic_settings pydevd_plugins pydot
    pygit2 pygments pygtrie pylab pymdownx pyparsing pytest python_discovery pywin32 redis
    referencing regress rekor_types requests rfc3161_client rfc3339_validator rfc3986_validator
    rfc3987_syntax rfc8785 rich rpds ruamel ruff s3fs scikit_learn scipy scmrepo
    securesystemslib semver setuptools shellingham shortuuid shtab sigstore sigstore_models six
    sklearn skops slugify smmap sortedcontainers sqlalchemy sqlparse sqltrie starlette
    stevedore tabulate text_unidecode threadpoolctl tomli tomli_w tomlkit tqdm tuf typeguard
    typer typing_extensions typing_inspect typing_inspection tzdata tzlocal uri_template
    urllib3 uvicorn validate vine virtualenv voluptuous waitress watchdog wcwidth webcolors
    werkzeug wrapt xdist yaml yaml_env_tag yarl zc zipp
    """.split()
)
# END LOCKED_MODULES


SLUG = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
PACKAGE = re.compile(r"[a-z_][a-z0-9_]*")
# local@label.label...: a local part without spaces or <>"',;@, then two or more DNS labels of
# letters, digits and inner hyphens.
EMAIL = re.compile(r"[^\s@<>\"',;]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
# Names Windows refuses for a file or folder, whatever the case or extension.
WINDOWS_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)
# C0 and C1 controls, DEL, line/paragraph separators, and the bidi marks, embeddings,
# overrides and isolates that make text read differently from what it is.
INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
OUTSIDE_BMP = re.compile("[\U00010000-\U0010ffff\ud800-\udfff]")
# Jinja syntax that survived rendering (for instance from a raw block): it would be rendered
# again in the generated files. (The raw tags keep this file's own braces from being rendered.)
# {% raw %}
UNRENDERED = re.compile(r"\{\{|\{%|\{#")
UNRENDERED_RULE = ("holds Jinja syntax left after rendering ({{, {%, {#); cookiecutter renders "
                   "every answer with Jinja: remove the braces")
# {% endraw %}
MAX_NAME = 64  # project_slug and package_name: folder names, far below any file-system limit
MAX_TEXT = {"project_name": 100, "author_name": 100, "description": 500}


def fail(field, value, rule):
    import json

    # Invisible and direction-changing characters are shown as escapes: printed raw they would
    # break the one line, or reorder it on the terminal.
    shown = INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False))
    print(f"ERROR: {field}={shown}: {rule}", file=sys.stderr)
    sys.exit(1)


def check(answers):
    for field, value in answers.items():
        if UNRENDERED.search(value):
            fail(field, value, UNRENDERED_RULE)
    for field in FREE_TEXT:
        value = answers[field]
        if not value.strip():
            fail(field, value, "must not be empty")
        if INVISIBLE.search(value):
            fail(field, value, "must be a single line without control, line-separator or "
                 "bidirectional-override characters")
        if any(c in "<>" for c in value):
            fail(field, value, "must not contain '<' or '>' (they would be read as HTML in the docs)")
        if OUTSIDE_BMP.search(value):
            fail(field, value, "must not contain emoji or other characters outside the Basic Multilingual Plane")
        if len(value) > MAX_TEXT[field]:
            fail(field, value[:40] + "...", f"is {len(value)} characters long; at most {MAX_TEXT[field]}")

    slug = answers["project_slug"]
    name = answers["project_name"]
    if slug == "-" and not any(c.isascii() and c.isalnum() for c in name):
        # "-" is cookiecutter.json's stand-in when project_name gives no slug at all.
        fail("project_name", name, "has no ASCII letters or digits to make the "
             "folder name from; also answer project_slug (e.g. project_slug=fraud-model)")
    if not (SLUG.fullmatch(slug) and len(slug) <= MAX_NAME):
        fail("project_slug", slug, f"must be 1-{MAX_NAME} lowercase ASCII letters, digits and single "
             "hyphens, starting with a letter (it is both the folder and the distribution name)")
    if WINDOWS_RESERVED.fullmatch(slug):
        fail("project_slug", slug, "is a name Windows reserves for a device (con, prn, aux, nul, "
             "com1-9, lpt1-9); choose another name")

    package = answers["package_name"]
    if not (PACKAGE.fullmatch(package) and len(package) <= MAX_NAME):
        fail("package_name", package, f"must be a lowercase Python identifier (letters, digits, "
             f"underscores), at most {MAX_NAME} characters")
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        fail("package_name", package, "is a Python keyword; choose another name")
    if package.startswith("__") and package.endswith("__"):
        fail("package_name", package, "is a name Python gives special meaning (__main__, __init__, ...); "
             "choose another name")
    # sys.stdlib_module_names leaves out the `test` package; it is stdlib all the same.
    if package in sys.stdlib_module_names or package == "test":
        fail("package_name", package, "shadows a standard-library module; choose another name")
    if package in DEPENDENCIES or package.casefold() in LOCKED_MODULES:
        fail("package_name", package, "shadows a module of a dependency of the generated project "
             "(requirements/lock.txt); choose another name")
    if WINDOWS_RESERVED.fullmatch(package):
        fail("package_name", package, "is a name Windows reserves for a device (con, prn, aux, nul, "
             "com1-9, lpt1-9); choose another name")

    email = answers["author_email"]
    if not EMAIL.fullmatch(email):
        fail("author_email", email, "must be an email address like name@example.org")

    for field, allowed in CHOICES.items():
        if answers[field] not in allowed:
            fail(field, answers[field], f"must be one of {', '.join(allowed)}")


if __name__ == "__main__":
    check(ANSWERS)
