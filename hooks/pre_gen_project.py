"""Validate the answers before cookiecutter writes anything.

Each rule prints one line naming the field, the value and the rule, then exits 1.
Cookiecutter removes the half-made output folder when this hook fails.
"""

import keyword
import re
import sys

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
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", slug) or len(slug) > 64:
        fail("project_slug", slug, "must be 1-64 lowercase ASCII letters, digits and single hyphens, "
             "starting with a letter (it is both the folder and the distribution name)")

    package = answers["package_name"]
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", package):
        fail("package_name", package, "must be a lowercase Python identifier (letters, digits, underscores)")
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        fail("package_name", package, "is a Python keyword; choose another name")
    # sys.stdlib_module_names leaves out the `test` package; it is stdlib all the same.
    if package in sys.stdlib_module_names or package == "test":
        fail("package_name", package, "shadows a standard-library module; choose another name")
    if package in DEPENDENCIES:
        fail("package_name", package, "shadows a dependency of the generated project; choose another name")

    email = answers["author_email"]
    if not re.fullmatch(r"[^@\s<>\"',;]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+", email):
        fail("author_email", email, "must be an email address like name@example.org")

    for field, allowed in CHOICES.items():
        if answers[field] not in allowed:
            fail(field, answers[field], f"must be one of {', '.join(allowed)}")


if __name__ == "__main__":
    check(ANSWERS)
