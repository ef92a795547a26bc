"""CI files of the generated repo: hardened GitHub workflows, a pinned GitLab pipeline, or none.

Fast structural checks on a baked project; zizmor and check-jsonschema themselves run in
test_security_gates.py (they need the generated project's venv)."""

from __future__ import annotations

import re

import yaml

PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def workflows(project):
    return {p.name: p for p in sorted((project / ".github/workflows").glob("*.yml"))}


def steps(workflow):
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def test_github_workflows_are_hardened(bake):
    project = bake(ci_provider="github")
    found = workflows(project)
    assert set(found) == {"ci.yml", "codeql.yml"}
    for name, path in found.items():
        text = path.read_text()
        workflow = yaml.safe_load(text)
        assert workflow["permissions"] == {}, f"{name}: top-level permissions must be empty"
        for job_name, job in workflow["jobs"].items():
            granted = job.get("permissions", {})
            assert granted.get("contents") == "read", f"{name}:{job_name} {granted}"
            writes = {k for k, v in granted.items() if v == "write"}
            assert writes <= {"security-events"}, f"{name}:{job_name} writes {writes}"
        for step in steps(workflow):
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{name}: {step['uses']} is not pinned by SHA"
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
            assert "github.event" not in step.get("run", ""), f"{name}: event data in run:"
        # The version comment beside every SHA.
        for line in text.splitlines():
            if "uses:" in line:
                assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line
    ci = yaml.safe_load(found["ci.yml"].read_text())
    assert {"lint", "tests", "security", "pipeline"} <= set(ci["jobs"])
    runs = " ".join(s.get("run", "") for s in steps(ci))
    for command in ("make security", "make test", "make pipeline", "pre-commit run --all-files"):
        assert command in runs
    uses = {s["uses"].split("@")[0] for s in steps(yaml.safe_load(found["codeql.yml"].read_text()))
            if "uses" in s}
    assert {"github/codeql-action/init", "github/codeql-action/analyze"} <= uses
    dependabot = yaml.safe_load((project / ".github/dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in dependabot["updates"]} == {"pip", "github-actions"}
    assert not (project / ".gitlab-ci.yml").exists()


def test_gitlab_pipeline_parses_and_pins_its_image(bake):
    for version in ("3.11", "3.12", "3.13"):
        project = bake(ci_provider="gitlab", python_version=version)
        config = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
        assert config["stages"] == ["lint", "test", "security", "pipeline"]
        image = config["default"]["image"]
        assert re.fullmatch(rf"python:{version}-slim@sha256:[0-9a-f]{{64}}", image), image
        jobs = {k: v for k, v in config.items() if isinstance(v, dict) and "stage" in v}
        assert {j["stage"] for j in jobs.values()} == set(config["stages"])
        scripts = " ".join(" ".join(j["script"]) for j in jobs.values())
        for command in ("make security", "make test", "make pipeline", "pre-commit run --all-files"):
            assert command in scripts
        assert not (project / ".github").exists()


def test_no_ci_files_for_none(bake):
    project = bake(ci_provider="none")
    assert not (project / ".github").exists() and not (project / ".gitlab-ci.yml").exists()
    # The security program itself does not depend on the CI provider.
    for name in ("SECURITY.md", "CODEOWNERS", ".pre-commit-config.yaml", ".secrets.baseline"):
        assert (project / name).is_file()


def test_security_md_marks_the_placeholders_and_names_the_contact(bake):
    project = bake(author_email="sec@example.org")
    text = (project / "SECURITY.md").read_text()
    assert "sec@example.org" in text and "[TBD]" in text and "TEAM TO FILL IN" in text
    assert "sec@example.org" in (project / "CODEOWNERS").read_text()
