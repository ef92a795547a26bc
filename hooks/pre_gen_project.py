"""Validate the answers before cookiecutter writes anything.

Each rule prints one line naming the field, the value and the rule, then exits 1.
Cookiecutter removes the half-made output folder when this hook fails.
"""

import os
import sys

# Cookiecutter runs hooks from its temporary folder, which collects one file per hook run
# (thousands, over time): it is not a source of modules, and listing it cost more than
# everything this hook checks.
if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import keyword

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


# Character classes by hand rather than with `re`: importing it would double this hook's
# start-up time, and the hook runs on every generation.
LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
ALNUM = LOWER + LOWER.upper() + DIGITS


def is_slug(value):
    """[a-z][a-z0-9]*(-[a-z0-9]+)*, at most 64 characters."""
    parts = value.split("-")
    return (0 < len(value) <= 64 and value[0] in LOWER
            and all(part and all(c in LOWER + DIGITS for c in part) for part in parts))


def is_package(value):
    """[a-z_][a-z0-9_]*"""
    return bool(value) and value[0] in LOWER + "_" and all(c in LOWER + DIGITS + "_" for c in value)


def is_email(value):
    """local@label.label...: a local part without spaces or <>"',;@, then two or more DNS
    labels of letters, digits and inner hyphens."""
    local, at, domain = value.rpartition("@")
    labels = domain.split(".")
    return (bool(at) and bool(local) and not any(c.isspace() or c in "@<>\"',;" for c in local)
            and len(labels) >= 2
            and all(label and label[0] != "-" and label[-1] != "-"
                    and all(c in ALNUM + "-" for c in label) for label in labels))


def fail(field, value, rule):
    import json

    print(f"ERROR: {field}={json.dumps(value, ensure_ascii=False)}: {rule}", file=sys.stderr)
    sys.exit(1)


def check(answers):
    for field in FREE_TEXT:
        value = answers[field]
        if not value.strip():
            fail(field, value, "must not be empty")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            fail(field, value, "must be a single line without control characters")
        if any(c in "<>" for c in value):
            fail(field, value, "must not contain '<' or '>' (they would be read as HTML in the docs)")
        if any(ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF for c in value):
            fail(field, value, "must not contain emoji or other characters outside the Basic Multilingual Plane")

    slug = answers["project_slug"]
    name = answers["project_name"]
    if slug == "-" and not any(c.isascii() and c.isalnum() for c in name):
        # "-" is cookiecutter.json's stand-in when project_name gives no slug at all.
        fail("project_name", name, "has no ASCII letters or digits to make the "
             "folder name from; also answer project_slug (e.g. project_slug=fraud-model)")
    if not is_slug(slug):
        fail("project_slug", slug, "must be 1-64 lowercase ASCII letters, digits and single hyphens, "
             "starting with a letter (it is both the folder and the distribution name)")

    package = answers["package_name"]
    if not is_package(package):
        fail("package_name", package, "must be a lowercase Python identifier (letters, digits, underscores)")
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        fail("package_name", package, "is a Python keyword; choose another name")
    # sys.stdlib_module_names leaves out the `test` package; it is stdlib all the same.
    if package in sys.stdlib_module_names or package == "test":
        fail("package_name", package, "shadows a standard-library module; choose another name")
    if package in DEPENDENCIES:
        fail("package_name", package, "shadows a dependency of the generated project; choose another name")

    email = answers["author_email"]
    if not is_email(email):
        fail("author_email", email, "must be an email address like name@example.org")

    for field, allowed in CHOICES.items():
        if answers[field] not in allowed:
            fail(field, answers[field], f"must be one of {', '.join(allowed)}")


if __name__ == "__main__":
    check(ANSWERS)
